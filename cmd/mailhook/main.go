// Command mailhook is the inbound mail gateway: one binary whose
// subcommands run the server and help operate it. It only wires the
// packages together.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// command is one subcommand.
type command struct {
	name    string
	summary string
	run     func(args []string, stdin io.Reader, stdout, stderr io.Writer) int
}

var commands = map[string]command{}

func register(c command) { commands[c.name] = c }

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run dispatches to a subcommand and returns the exit code.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	name := args[0]
	rest := args[1:]
	// two-word commands: "route test", "queue stats", "user add"...
	if len(rest) > 0 {
		if c, ok := commands[name+" "+rest[0]]; ok {
			return c.run(rest[1:], stdin, stdout, stderr)
		}
	}
	c, ok := commands[name]
	if !ok {
		fmt.Fprintf(stderr, "mailhook: unknown command %q\n\n", strings.Join(args[:min(2, len(args))], " "))
		usage(stderr)
		return 2
	}
	return c.run(rest, stdin, stdout, stderr)
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: mailhook COMMAND [flags]   (every command takes --config FILE)")
	fmt.Fprintln(w)
	for _, n := range slices.Sorted(maps.Keys(commands)) {
		fmt.Fprintf(w, "  %-22s %s\n", n, commands[n].summary)
	}
}

// newFlags makes a flag set with the --config flag every command takes.
func newFlags(name string, stderr io.Writer) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet("mailhook "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	def := os.Getenv("MAILHOOK_CONFIG")
	if def == "" {
		def = "./config.yaml"
	}
	cfg := fs.String("config", def, "config file (or $MAILHOOK_CONFIG)")
	return fs, cfg
}

// parseFlags parses args, allowing flags after positional arguments
// ("route test FILE --rcpt A").
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func exitErr(stderr io.Writer, err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	fmt.Fprintf(stderr, "mailhook: %v\n", err)
	return 1
}

func init() {
	register(command{name: "version", summary: "print the version", run: func(args []string, _ io.Reader, stdout, _ io.Writer) int {
		fmt.Fprintf(stdout, "mailhook %s\n", version)
		return 0
	}})
}
