package config

import (
	"fmt"
	"reflect"
	"slices"
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
			env := EnvPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
			table = append(table, EnvVar{Key: key, Env: env, field: f})
		}
	}
	walk(reflect.ValueOf(cfg).Elem(), "")
	return table
}

// EnvPrefix starts the name of every configuration variable. The environment
// holds no other variable with this prefix: applyEnv rejects one, as the YAML
// decoder rejects an unknown key, so a misspelt override cannot leave its key at
// the default unnoticed. The test harness's variables are RECOTEST_*, the
// scripts' cache root RECOSCRIPTS_CACHE.
const EnvPrefix = "RECO_"

// applyEnv sets every key whose environment variable is present in environ. A
// RECO_* variable that is no key's is an error naming the closest known one.
func applyEnv(cfg *Config, environ []string) error {
	table := EnvTable(cfg)
	known := make(map[string]bool, len(table))
	for _, e := range table {
		known[e.Env] = true
	}
	vars := map[string]string{}
	var unknown []string
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(k, EnvPrefix) {
			continue
		}
		if !known[k] && !slices.Contains(unknown, k) {
			unknown = append(unknown, k)
		}
		vars[k] = v
	}
	if len(unknown) > 0 {
		return unknownEnvError(table, unknown)
	}
	for _, e := range table {
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

// unknownEnvError names every unknown variable, sorted, each with the known
// variable nearest to it by edit distance.
func unknownEnvError(table []EnvVar, unknown []string) error {
	slices.Sort(unknown)
	msgs := make([]string, len(unknown))
	for i, name := range unknown {
		msgs[i] = "unknown environment variable " + name
		if e, ok := closestEnv(table, name); ok {
			msgs[i] += fmt.Sprintf(": did you mean %s (%s)?", e.Env, e.Key)
		} else {
			msgs[i] += " (no config key is close)"
		}
	}
	return fmt.Errorf("%s; every %s* variable must be a config key (`reco config env` lists them)", strings.Join(msgs, "; "), EnvPrefix)
}

// closestEnv is the entry of table whose variable is nearest to name: one that
// contains name's words, or is contained in them, before any other (the
// harness's RECO_HBASE_THRIFT means RECO_STORAGE_HBASE_THRIFT_ADDR, not the
// fewer edits away RECO_CACHE_TTL), then the fewest edits, then table order.
// It finds none when the nearest is neither such a match nor a typo away (at
// most a third of the name's edits, or 2): a suggestion must be worth reading.
func closestEnv(table []EnvVar, name string) (EnvVar, bool) {
	body := strings.TrimPrefix(name, EnvPrefix)
	best, bestDist, bestSub := -1, 0, false
	for i, e := range table {
		known := strings.TrimPrefix(e.Env, EnvPrefix)
		sub := body != "" && (strings.Contains(known, body) || strings.Contains(body, known))
		d := levenshtein(name, e.Env)
		if best < 0 || sub && !bestSub || sub == bestSub && d < bestDist {
			best, bestDist, bestSub = i, d, sub
		}
	}
	if best < 0 || !bestSub && bestDist > max(2, len(body)/3) {
		return EnvVar{}, false
	}
	return table[best], true
}

// levenshtein is the edit distance between a and b (insertions, deletions and
// substitutions of bytes; variable names are ASCII).
func levenshtein(a, b string) int {
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

// Value is the key's current value in its environment form: what its variable
// would be set to for the same result (durations as 5s or 30m, lists
// comma-separated). Applied to config.Default() it gives the defaults.
func (e EnvVar) Value() string {
	f := e.field
	switch {
	case f.Type() == durationType:
		return shortDuration(time.Duration(f.Int()))
	case f.Kind() == reflect.String:
		return f.String()
	case f.CanInt():
		return strconv.FormatInt(f.Int(), 10)
	case f.Kind() == reflect.Slice && f.Type().Elem().Kind() == reflect.String:
		return strings.Join(f.Interface().([]string), ",")
	case f.Kind() == reflect.Bool:
		return strconv.FormatBool(f.Bool())
	}
	return fmt.Sprint(f.Interface())
}

// shortDuration writes d as time.Duration.String does, without zero trailing
// units: 30m rather than 30m0s, 1h rather than 1h0m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
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
