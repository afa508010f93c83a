package config

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// configKey is one key of the config struct and its default.
type configKey struct {
	name string
	def  reflect.Value // zero for keys inside maps and lists
}

// configKeys lists every key of Config by reflection over the mapstructure
// tags, so a key added to the struct is listed without anyone touching
// this test: maps of structs give NAME (webhooks.NAME.url), lists of
// structs give [] (mailbox.users[].name).
func configKeys() []configKey {
	var out []configKey
	var walk func(prefix string, v reflect.Value)
	walk = func(prefix string, v reflect.Value) {
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			tag, opts, _ := strings.Cut(f.Tag.Get("mapstructure"), ",")
			fv := v.Field(i)
			if strings.Contains(opts, "squash") {
				walk(prefix, fv)
				continue
			}
			if tag == "" || tag == "-" {
				continue
			}
			key := prefix + tag
			ft := f.Type
			for ft.Kind() == reflect.Pointer && ft.Elem().Kind() == reflect.Struct {
				ft = ft.Elem()
				fv = reflect.New(ft).Elem()
			}
			switch {
			case ft.Kind() == reflect.Struct:
				walk(key+".", fv)
			case ft.Kind() == reflect.Map && ft.Elem().Kind() == reflect.Struct:
				walk(key+".NAME.", reflect.New(ft.Elem()).Elem())
			case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
				walk(key+"[].", reflect.New(ft.Elem()).Elem())
			default:
				out = append(out, configKey{name: key, def: fv})
			}
		}
	}
	walk("", reflect.ValueOf(Default()))
	return out
}

// referenceRows reads docs/config.md's tables: key to default cell.
func referenceRows(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "docs", "config.md"))
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 4 || !strings.HasPrefix(strings.TrimSpace(cells[1]), "`") {
			continue
		}
		rows[strings.Trim(strings.TrimSpace(cells[1]), "`")] = strings.TrimSpace(cells[2])
	}
	return rows
}

// TestConfigReference: every key of the config struct is in
// docs/config.md, and each documented default in `code` is the one
// config.Default() holds.
func TestConfigReference(t *testing.T) {
	rows := referenceRows(t)
	keys := configKeys()
	if len(keys) < 90 {
		t.Fatalf("found only %d keys by reflection: is the walk broken?", len(keys))
	}
	var missing []string
	for _, k := range keys {
		cell, ok := rows[k.name]
		if !ok {
			missing = append(missing, k.name)
			continue
		}
		if err := checkDefault(k, cell); err != nil {
			t.Errorf("docs/config.md: %s: %v", k.name, err)
		}
	}
	if len(missing) > 0 {
		t.Errorf("docs/config.md does not document %d key(s) of the config struct (add a row `| `key` | default | what it does |`):\n  %s",
			len(missing), strings.Join(missing, "\n  "))
	}
	var names []string
	for _, k := range keys {
		names = append(names, k.name)
	}
	for name := range rows {
		if !slices.Contains(names, name) {
			t.Errorf("docs/config.md documents %s, which the config struct does not have", name)
		}
	}
}

// checkDefault compares a documented default with the struct's. A default
// the code leaves zero may be described in words (10s (when 0)); a
// non-zero one must be given in `code`, except the host name.
func checkDefault(k configKey, cell string) error {
	v := k.def
	literal := strings.HasPrefix(cell, "`")
	if !literal {
		if v.IsValid() && !v.IsZero() && k.name != "hostname" {
			return fmt.Errorf("default %q: write the default %v in `code`", cell, v.Interface())
		}
		return nil
	}
	doc, _, _ := strings.Cut(strings.TrimPrefix(cell, "`"), "`")
	if !v.IsValid() {
		return nil
	}
	want := fmt.Sprint(v.Interface())
	got, err := parseLike(v, doc)
	if err != nil {
		return fmt.Errorf("default `%s`: %v", doc, err)
	}
	if !reflect.DeepEqual(got, v.Interface()) && !(v.IsZero() && reflect.ValueOf(got).IsZero()) {
		return fmt.Errorf("documented default `%s`, the code's is %s", doc, want)
	}
	return nil
}

// parseLike parses s as a value of v's type.
func parseLike(v reflect.Value, s string) (any, error) {
	if s == `""` {
		s = ""
	}
	list := func() []string {
		s = strings.Trim(s, "[]")
		if strings.TrimSpace(s) == "" {
			return nil
		}
		var out []string
		for _, p := range strings.Split(s, ",") {
			out = append(out, strings.TrimSpace(p))
		}
		return out
	}
	switch x := v.Interface().(type) {
	case time.Duration:
		return time.ParseDuration(s)
	case []time.Duration:
		var out []time.Duration
		for _, p := range list() {
			d, err := time.ParseDuration(p)
			if err != nil {
				return nil, err
			}
			out = append(out, d)
		}
		return out, nil
	case string:
		return s, nil
	case bool:
		return strconv.ParseBool(s)
	case int:
		return strconv.Atoi(s)
	case int64:
		return strconv.ParseInt(s, 10, 64)
	case []string:
		return list(), nil
	default:
		if v.Kind() == reflect.Map && (s == "{}" || s == "") {
			return reflect.Zero(v.Type()).Interface(), nil
		}
		if v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.String {
			out := reflect.MakeSlice(v.Type(), 0, 0)
			for _, p := range list() {
				out = reflect.Append(out, reflect.ValueOf(p).Convert(v.Type().Elem()))
			}
			if out.Len() == 0 {
				return reflect.Zero(v.Type()).Interface(), nil
			}
			return out.Interface(), nil
		}
		return nil, fmt.Errorf("cannot check a default of type %T", x)
	}
}
