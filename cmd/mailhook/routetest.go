package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/mailhook/mailhook/deliver"
	"github.com/mailhook/mailhook/deliver/webhook"
	"github.com/mailhook/mailhook/inbound"
	"github.com/mailhook/mailhook/ingest"
	"github.com/mailhook/mailhook/parse"
	"github.com/mailhook/mailhook/route"
)

func init() {
	register(command{name: "route test", summary: "show which rule takes a message, why, and the webhook JSON", run: routeTest})
}

// routeTest runs a message file through the same parse, routing and
// planning as the server, without verification (the auth results are taken
// from --auth, "none" by default) and prints the outcome.
func routeTest(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs, path := newFlags("route test", stderr)
	rcpt := fs.String("rcpt", "", "envelope recipient (required)")
	from := fs.String("from", "", "envelope sender (default: the From address)")
	authFlag := fs.String("auth", "", "verification results to assume, like spf=pass,dkim=pass,dmarc=fail,dmarc_policy=reject")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return exitErr(stderr, err)
	}
	if len(pos) != 1 || *rcpt == "" {
		fmt.Fprintln(stderr, "usage: mailhook route test FILE.eml --rcpt ADDR [--from ADDR] [--auth spf=pass,...] [--config FILE]")
		return 2
	}
	cfg, err := loadConfig(*path, stderr)
	if err != nil {
		return 1
	}
	raw, err := os.ReadFile(pos[0])
	if err != nil {
		return exitErr(stderr, err)
	}
	msg, err := parse.Parse(bytes.NewReader(raw), parseOptions(cfg))
	if err != nil {
		return exitErr(stderr, err)
	}
	res, err := assumedAuth(*authFlag, cfg.Hostname)
	if err != nil {
		return exitErr(stderr, err)
	}
	mailFrom := *from
	if mailFrom == "" && msg.From != nil {
		mailFrom = msg.From.Address
	}
	pol, err := buildPolicy(cfg)
	if err != nil {
		return exitErr(stderr, err)
	}
	now := time.Now().UTC()
	mail := &inbound.Mail{
		ID: "route-test", StableID: "route-test", ReceivedAt: now,
		Envelope: inbound.Envelope{MailFrom: mailFrom, RcptTo: []string{*rcpt}, ClientIP: "192.0.2.1", Helo: "route-test.invalid"},
		Auth:     res, Message: msg, RawSize: int64(len(raw)),
	}
	w := stdout
	fmt.Fprintf(w, "recipient   %s\nsender      %s\n", *rcpt, mailFrom)
	at := strings.LastIndexByte(*rcpt, '@')
	if at < 0 || !pol.Domains[strings.ToLower((*rcpt)[at+1:])] {
		fmt.Fprintf(w, "refused at RCPT: 554 5.7.1 relay access denied (%q is not in domains)\n", (*rcpt)[at+1:])
		return 1
	}
	if rr, ok := pol.Router.(ingest.RcptRejecter); ok {
		if a, ok := rr.RejectAtRcpt(*rcpt, mailFrom); ok {
			fmt.Fprintf(w, "refused at RCPT by rule %s: %d %d.%d.%d %s\n", a.Rule, a.RejectCode, a.RejectEnhanced[0], a.RejectEnhanced[1], a.RejectEnhanced[2], a.RejectText)
			return 1
		}
	}
	if !pol.Router.AcceptsEnvelope(*rcpt, mailFrom) {
		fmt.Fprintln(w, "refused at RCPT: 550 5.1.1 no rule could take this recipient")
		return 1
	}
	d := pol.Router.Decide(mail, *rcpt)
	mail.Reply, mail.ReplyRcpt = route.ReplyOf([]route.Decision{d})
	if !d.Matched() {
		fmt.Fprintln(w, "accepted at RCPT, refused at end of data: 550 5.7.1 no rule takes this message")
		return 1
	}
	fmt.Fprintf(w, "rules       %s\n", strings.Join(d.Rules, ", "))
	for _, why := range d.Why {
		fmt.Fprintf(w, "why         %s\n", why)
	}
	for _, a := range d.Actions {
		fmt.Fprintf(w, "action      %s\n", describeAction(a))
		if a.Kind == route.ActReject {
			fmt.Fprintf(w, "refused at end of data: %d %d.%d.%d %s\n", a.RejectCode, a.RejectEnhanced[0], a.RejectEnhanced[1], a.RejectEnhanced[2], a.RejectText)
			return 1
		}
	}
	for _, job := range deliver.Plan(mail, []route.Decision{d}, now) {
		if job.Kind != deliver.KindWebhook {
			continue
		}
		var rawR io.Reader
		if cfg.Webhooks[job.Target].Raw {
			rawR = bytes.NewReader(raw)
		}
		body, err := webhook.BuildEvent(job, mail, rawR)
		if err != nil {
			return exitErr(stderr, err)
		}
		var pretty bytes.Buffer
		if err := json.Indent(&pretty, body, "", "  "); err != nil {
			return exitErr(stderr, err)
		}
		mode := ""
		if cfg.Webhooks[job.Target].Mode == "sync" {
			mode = ", sync: during DATA, its answer is the SMTP reply"
		}
		fmt.Fprintf(w, "\nwebhook %s (%s%s) would receive:\n%s\n", job.Target, cfg.Webhooks[job.Target].URL, mode, pretty.String())
	}
	return 0
}

func describeAction(a route.Action) string {
	switch a.Kind {
	case route.ActWebhook:
		return "webhook " + a.Webhook
	case route.ActMailbox:
		if a.Folder != "" {
			return "mailbox " + a.Mailbox + " folder " + a.Folder
		}
		return "mailbox " + a.Mailbox
	case route.ActForward:
		return "forward to " + strings.Join(a.Forward, ", ")
	case route.ActReject:
		return fmt.Sprintf("reject %d %d.%d.%d %s", a.RejectCode, a.RejectEnhanced[0], a.RejectEnhanced[1], a.RejectEnhanced[2], a.RejectText)
	case route.ActDrop:
		return "drop"
	}
	return string(a.Kind)
}

// assumedAuth builds verification results from "spf=pass,dmarc=fail,...".
func assumedAuth(s, host string) (*inbound.Auth, error) {
	r := &inbound.Auth{SPF: inbound.SPFResult{Result: "none"}, DKIM: []inbound.DKIMResult{},
		DMARC: inbound.DMARCResult{Result: "none", Policy: "none"}}
	for _, kv := range strings.Split(s, ",") {
		if strings.TrimSpace(kv) == "" {
			continue
		}
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok {
			return nil, fmt.Errorf("--auth: %q is not key=value", kv)
		}
		switch k {
		case "spf":
			r.SPF.Result = inbound.Verdict(v)
		case "dkim":
			r.DKIM = []inbound.DKIMResult{{Result: inbound.Verdict(v)}}
		case "dmarc":
			r.DMARC.Result = inbound.Verdict(v)
		case "dmarc_policy":
			r.DMARC.Policy = v
		default:
			return nil, errors.New("--auth: keys are spf, dkim, dmarc, dmarc_policy")
		}
	}
	r.Quarantine = r.DMARC.Result == inbound.Fail && r.DMARC.Policy == "quarantine"
	r.AuthenticationResults = fmt.Sprintf("%s; spf=%s; dkim=%s; dmarc=%s (assumed by route test)", host, r.SPF.Result, r.Summary()["dkim"], r.DMARC.Result)
	return r, nil
}
