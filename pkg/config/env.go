package config

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// EnvVar is one configuration key and the environment variable that overrides it.
type EnvVar struct {
	Key   string // e.g. storage.hbase.thrift_addr
	Env   string // e.g. RECO_STORAGE_HBASE_THRIFT_ADDR
	field reflect.Value
}

// EnvTable lists every key of cfg with its environment variable. It is derived
// from the yaml tags, so a new key cannot miss its override.
func EnvTable(cfg *Config) []EnvVar {
	var table []EnvVar
	var walk func(v reflect.Value, prefix string)
	walk = func(v reflect.Value, prefix string) {
		t := v.Type()
		for i := range t.NumField() {
			key := prefix + t.Field(i).Tag.Get("yaml")
			f := v.Field(i)
			if f.Kind() == reflect.Struct {
				walk(f, key+".")
				continue
			}
			env := "RECO_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
			table = append(table, EnvVar{Key: key, Env: env, field: f})
		}
	}
	walk(reflect.ValueOf(cfg).Elem(), "")
	return table
}

// applyEnv sets every key whose environment variable is present in environ.
func applyEnv(cfg *Config, environ []string) error {
	vars := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "RECO_") {
			vars[k] = v
		}
	}
	for _, e := range EnvTable(cfg) {
		s, ok := vars[e.Env]
		if !ok {
			continue
		}
		if err := set(e.field, s); err != nil {
			return fmt.Errorf("invalid %s (from %s=%q): %w", e.Key, e.Env, s, err)
		}
	}
	return nil
}

var durationType = reflect.TypeOf(time.Duration(0))

func set(f reflect.Value, s string) error {
	switch {
	case f.Type() == durationType:
		d, err := time.ParseDuration(s)
		if err != nil {
			return err
		}
		f.SetInt(int64(d))
	case f.Kind() == reflect.String:
		f.SetString(s)
	case f.CanInt():
		n, err := strconv.ParseInt(s, 10, f.Type().Bits())
		if err != nil {
			return err
		}
		f.SetInt(n)
	case f.Kind() == reflect.Slice && f.Type().Elem().Kind() == reflect.String:
		// A list is comma-separated: RECO_STORAGE_REDIS_ADDRS=a:6379,b:6379.
		var parts []string
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				parts = append(parts, p)
			}
		}
		f.Set(reflect.ValueOf(parts))
	case f.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return err
		}
		f.SetBool(b)
	default:
		return fmt.Errorf("config field of type %s has no environment form", f.Type())
	}
	return nil
}
