package config

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
)

// Fingerprint returns, for each key of c, a hash of its value: what
// Changed compares, and what a running server can compare with a file
// without either side showing its values (secrets among them). Maps of
// sections are keyed by their names (webhooks.tickets.url); lists, like
// routes and mailbox.users, count as one key.
func Fingerprint(c *Config) map[string]string {
	out := map[string]string{}
	var walk func(prefix string, v reflect.Value)
	walk = func(prefix string, v reflect.Value) {
		t := v.Type()
		for i := range t.NumField() {
			tag, _, _ := strings.Cut(t.Field(i).Tag.Get("mapstructure"), ",")
			if tag == "" || tag == "-" {
				continue
			}
			key, fv := prefix+tag, v.Field(i)
			switch {
			case fv.Kind() == reflect.Struct:
				walk(key+".", fv)
			case fv.Kind() == reflect.Map && fv.Type().Elem().Kind() == reflect.Struct && fv.Type().Key().Kind() == reflect.String:
				for _, name := range fv.MapKeys() {
					walk(key+"."+name.String()+".", fv.MapIndex(name))
				}
			default:
				b, _ := json.Marshal(fv.Interface())
				sum := sha256.Sum256(append([]byte(key+"="), b...))
				out[key] = hex.EncodeToString(sum[:])
			}
		}
	}
	walk("", reflect.ValueOf(*c))
	return out
}

// Changed lists, sorted, the keys whose fingerprints differ between a and
// b, including keys only one of them has.
func Changed(a, b map[string]string) []string {
	var keys []string
	for k, v := range a {
		if b[k] != v {
			keys = append(keys, k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}
