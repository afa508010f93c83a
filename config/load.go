package config

import (
	"fmt"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"
)

// EnvPrefix prefixes every environment override: smtp.listen is
// MAILHOOK_SMTP_LISTEN.
const EnvPrefix = "MAILHOOK"

// Default returns the configuration with every default set. It is the one
// place defaults live.
func Default() Config {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	return Config{
		Hostname: host,
		DataDir:  "./data",
		Log:      Log{Level: "info", Format: "text"},
		SMTP: SMTP{
			Listen:              ":2525",
			MaxMessageBytes:     25 << 20,
			MaxRecipients:       100,
			MaxLineLength:       4096,
			MaxErrors:           10,
			MaxCommands:         1000,
			MaxConnections:      1000,
			MaxConnectionsPerIP: 20,
			ReadTimeout:         5 * time.Minute, // RFC 5321 §4.5.3.2 minimums
			WriteTimeout:        5 * time.Minute,
			ShutdownTimeout:     30 * time.Second,
			MaxSessionTime:      10 * time.Minute,
			MinDataRate:         500,
		},
		Verify: Verify{
			EnforceDMARC:   true,
			LookupTimeout:  5 * time.Second,
			MessageTimeout: 20 * time.Second,
			OnTempError:    "accept",
			MultipleFrom:   "reject",
			Rspamd:         defaultRspamd(),
		},
		Parse: Parse{
			// Attachments up to this size travel base64 in the webhook JSON;
			// larger ones get a signed URL (admin.public_url). It also
			// bounds what parsing holds per attachment in flight.
			InlineLimit:     1 << 20,
			MaxDepth:        20,
			MaxParts:        500,
			MaxHeaderBytes:  1 << 20,
			MaxDecodedBytes: 64 << 20,
		},
		Queue: Queue{
			Backend: "embedded",
			Redis:   Redis{Addr: "127.0.0.1:6379", Prefix: "mailhook", Shards: 1},
			Retry: Retry{
				// The Standard Webhooks retry guidance.
				Schedule: []time.Duration{5 * time.Second, 5 * time.Minute, 30 * time.Minute,
					2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 14 * time.Hour, 20 * time.Hour, 24 * time.Hour},
				MaxAge: 96 * time.Hour,
			},
			Concurrency: Concurrency{Webhook: 32, Relay: 8, Mailbox: 4},
			Lease:       2 * time.Minute,
			DedupWindow: 24 * time.Hour,
		},
		Relay: Relay{TLS: "opportunistic", MaxReceived: 30, Timeout: 5 * time.Minute},
		Mailbox: Mailbox{
			IMAPListen: ":1143",
			POP3Listen: ":1110",
		},
		Node:      Node{Roles: []string{RoleMX, RoleDeliver, RoleMailbox}},
		Admin:     Admin{Listen: "127.0.0.1:8025"},
		Retention: 7 * 24 * time.Hour,
	}
}

// A Check validates a part of the configuration that the package using it
// compiles, like the routes (route.CheckConfig), and reports every problem
// with its key, as Validate does for the rest. Load runs the checks it is
// given after Validate, so one run lists every problem of the file.
type Check func(*Config) ValidationErrors

// Load reads the YAML file at path, applies MAILHOOK_* environment
// overrides and defaults, and validates the result with Validate and
// checks. The error, if any, is a ValidationErrors listing every problem
// with its key.
func Load(path string, checks ...Check) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return LoadBytes(data, checks...)
}

// LoadBytes is Load for configuration held in memory.
func LoadBytes(yaml []byte, checks ...Check) (*Config, error) {
	v := viper.New()
	v.SetConfigType("yaml")
	def := Default()
	applyDefaults(v, def)
	if err := v.ReadConfig(strings.NewReader(string(yaml))); err != nil {
		return nil, ValidationErrors{{Key: "(file)", Reason: "not valid YAML: " + err.Error()}}
	}

	var errs ValidationErrors
	settings := v.AllSettings()
	// Values of the wrong kind are reported and pruned, so that decoding
	// and validation can still report every other problem at once.
	check("", settings, reflect.TypeOf(def), &errs)

	cfg := Config{}
	dc := &mapstructure.DecoderConfig{
		Result:           &cfg,
		WeaklyTypedInput: true,
		ErrorUnused:      true,
		DecodeHook: mapstructure.ComposeDecodeHookFunc(
			mapstructure.StringToTimeDurationHookFunc(),
			mapstructure.StringToSliceHookFunc(","),
			stringListHook(),
		),
	}
	dec, err := mapstructure.NewDecoder(dc)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if err := dec.Decode(settings); err != nil {
		return nil, ValidationErrors{{Key: "(decode)", Reason: err.Error()}}
	}
	normalize(&cfg)
	errs = append(errs, cfg.Validate()...)
	for _, c := range checks {
		errs = append(errs, c(&cfg)...)
	}
	if len(errs) > 0 {
		sortErrors(errs)
		return &cfg, errs
	}
	return &cfg, nil
}

// normalize lower-cases names that viper lower-cases as map keys, so that
// routes can refer to them in any case.
func normalize(c *Config) {
	for i := range c.Routes {
		for j := range c.Routes[i].Actions {
			a := &c.Routes[i].Actions[j]
			a.Webhook = strings.ToLower(a.Webhook)
		}
	}
	for i, d := range c.Domains {
		c.Domains[i] = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(d), "."))
	}
}

// FieldError is one configuration problem.
type FieldError struct {
	Key    string
	Reason string
}

func (e FieldError) Error() string { return e.Key + ": " + e.Reason }

// ValidationErrors are all the problems found in a configuration.
type ValidationErrors []FieldError

func (es ValidationErrors) Error() string {
	var b strings.Builder
	for i, e := range es {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

func sortErrors(es ValidationErrors) {
	sort.SliceStable(es, func(i, j int) bool { return es[i].Key < es[j].Key })
}

var durationType = reflect.TypeOf(time.Duration(0))

// eachLeaf calls fn with the dotted key and value of every leaf of the
// struct v: its fields that are not structs themselves (a duration is a
// leaf), following the mapstructure tags.
func eachLeaf(v reflect.Value, prefix string, fn func(key string, f reflect.StructField, fv reflect.Value)) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("mapstructure")
		if tag == "" || tag == "-" {
			continue
		}
		key := join(prefix, tag)
		if f.Type.Kind() == reflect.Struct && f.Type != durationType {
			eachLeaf(v.Field(i), key, fn)
			continue
		}
		fn(key, f, v.Field(i))
	}
}

// applyDefaults gives viper a default for every set leaf of def, and binds
// every scalar or list leaf to its MAILHOOK_* environment variable (maps and
// lists of structs, like webhooks and routes, have no single variable).
func applyDefaults(v *viper.Viper, def Config) {
	eachLeaf(reflect.ValueOf(def), "", func(key string, f reflect.StructField, fv reflect.Value) {
		k := f.Type.Kind()
		if k == reflect.Map || (k == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct) {
			return
		}
		_ = v.BindEnv(key, EnvPrefix+"_"+strings.ToUpper(strings.ReplaceAll(key, ".", "_")))
		if fv.IsZero() {
			return
		}
		if d, ok := fv.Interface().([]time.Duration); ok {
			s := make([]string, len(d))
			for i, x := range d {
				s[i] = x.String()
			}
			v.SetDefault(key, s)
			return
		}
		v.SetDefault(key, fv.Interface())
	})
}

func join(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

// check walks the raw settings against the Config type, reporting unknown
// keys and values of the wrong kind with their full key path, all at once.
func check(path string, val any, t reflect.Type, errs *ValidationErrors) (ok bool) {
	ok = true
	bad := func(reason string) { *errs = append(*errs, FieldError{Key: path, Reason: reason}); ok = false }
	if val == nil {
		return true
	}
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == durationType:
		switch x := val.(type) {
		case string:
			if _, err := time.ParseDuration(strings.TrimSpace(x)); err != nil {
				bad(fmt.Sprintf("%q is not a duration (like 30s, 5m, 2h)", x))
			}
		case int, int64, float64, time.Duration:
		default:
			bad(fmt.Sprintf("%v is not a duration (like 30s, 5m, 2h)", val))
		}
	case t == stringListType:
		switch x := val.(type) {
		case string:
		case []any:
			for i, e := range x {
				if _, isStr := e.(string); !isStr {
					*errs = append(*errs, FieldError{Key: fmt.Sprintf("%s[%d]", path, i), Reason: "must be a string"})
					ok = false
				}
			}
		default:
			bad("must be a string or a list of strings")
		}
	case t.Kind() == reflect.Struct:
		m, isMap := val.(map[string]any)
		if !isMap {
			bad("must be a mapping of keys")
			return
		}
		fields := map[string]reflect.Type{}
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if tag := f.Tag.Get("mapstructure"); tag != "" && tag != "-" {
				fields[tag] = f.Type
			}
		}
		for k, sub := range m {
			ft, known := fields[k]
			if !known {
				*errs = append(*errs, FieldError{Key: join(path, k), Reason: "unknown key" + suggest(k, fields)})
				delete(m, k)
				continue
			}
			if !check(join(path, k), sub, ft, errs) {
				delete(m, k)
			}
		}
	case t.Kind() == reflect.Map:
		m, isMap := val.(map[string]any)
		if !isMap {
			bad("must be a mapping")
			return
		}
		for k, sub := range m {
			if !check(join(path, k), sub, t.Elem(), errs) {
				delete(m, k)
			}
		}
	case t.Kind() == reflect.Slice:
		switch x := val.(type) {
		case []any:
			for i, e := range x {
				ok = check(fmt.Sprintf("%s[%d]", path, i), e, t.Elem(), errs) && ok
			}
		case []string:
			for i, e := range x {
				ok = check(fmt.Sprintf("%s[%d]", path, i), e, t.Elem(), errs) && ok
			}
		case string:
			if t.Elem().Kind() == reflect.Struct {
				bad("must be a list")
				return
			}
			for i, e := range strings.Split(x, ",") {
				ok = check(fmt.Sprintf("%s[%d]", path, i), strings.TrimSpace(e), t.Elem(), errs) && ok
			}
		default:
			bad("must be a list")
		}
	case t.Kind() == reflect.Bool:
		switch x := val.(type) {
		case bool:
		case string:
			if _, err := strconv.ParseBool(x); err != nil {
				bad(fmt.Sprintf("%q is not true or false", x))
			}
		default:
			bad("must be true or false")
		}
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Int64:
		switch x := val.(type) {
		case int, int64, int32, uint64, uint32, uint:
		case float64:
			if x != float64(int64(x)) {
				bad("must be a whole number")
			}
		case string:
			if _, err := strconv.ParseInt(strings.TrimSpace(x), 10, 64); err != nil {
				bad(fmt.Sprintf("%q is not a whole number", x))
			}
		default:
			bad("must be a whole number")
		}
	case t.Kind() == reflect.String:
		switch val.(type) {
		case map[string]any, []any:
			bad("must be a single value, not a list or mapping")
		}
	}
	return ok
}

// suggest names a close known key for a misspelt one.
func suggest(k string, fields map[string]reflect.Type) string {
	best, bestD := "", 3
	for f := range fields {
		if d := distance(k, f); d < bestD {
			best, bestD = f, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// distance is the Levenshtein distance of a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
