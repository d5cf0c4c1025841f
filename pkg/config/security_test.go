package config

import (
	"strings"
	"testing"
)

// TestSecurityKeys covers the keys of DESIGN.md §10: the defaults keep
// everything off, and the keys that go together are checked together.
func TestSecurityKeys(t *testing.T) {
	def := Default()
	if def.Server.TLS.Enabled() || def.Server.Authz.Enabled || def.Clients.TLS.Enabled || def.Server.PprofAddr != "" {
		t.Errorf("defaults turn security on (%+v, %+v, %+v, pprof %q): make run must stay plain", def.Server.TLS, def.Server.Authz, def.Clients.TLS, def.Server.PprofAddr)
	}
	for _, tt := range []struct {
		name    string
		change  func(*Config)
		wantErr string // "" is valid
	}{
		{"pprof on loopback", func(c *Config) { c.Server.PprofAddr = "127.0.0.1:6060" }, ""},
		{"pprof on localhost", func(c *Config) { c.Server.PprofAddr = "localhost:6060" }, ""},
		{"pprof on ::1", func(c *Config) { c.Server.PprofAddr = "[::1]:6060" }, ""},
		{"pprof on every interface", func(c *Config) { c.Server.PprofAddr = "0.0.0.0:6060" }, "server.pprof_addr must be a loopback address"},
		{"pprof on no host", func(c *Config) { c.Server.PprofAddr = ":6060" }, "server.pprof_addr must be a loopback address"},
		{"pprof on a pod address", func(c *Config) { c.Server.PprofAddr = "10.0.0.7:6060" }, "server.pprof_addr must be a loopback address"},
		{"server cert without key", func(c *Config) { c.Server.TLS.CertFile = "/tls/tls.crt" }, "server.tls: cert_file and key_file go together"},
		{"authz without a way to know callers", func(c *Config) { c.Server.Authz.Enabled = true }, "server.authz.enabled needs"},
		{"authz by mTLS", func(c *Config) {
			c.Server.TLS.CertFile, c.Server.TLS.KeyFile, c.Server.TLS.ClientCAFile = "a", "b", "ca"
			c.Server.Authz.Enabled = true
		}, ""},
		{"authz by tokens", func(c *Config) { c.Server.Authz.Enabled, c.Server.Authz.TokensDir = true, "/tokens" }, ""},
		{"tokens without authz", func(c *Config) { c.Server.Authz.TokensDir = "/tokens" }, "takes effect only with server.authz.enabled"},
		{"client TLS files without enabled", func(c *Config) { c.Clients.TLS.CAFile = "/tls/ca.crt" }, "clients.tls: ca_file"},
		{"redis password twice", func(c *Config) {
			c.Storage.Sets = "redis"
			c.Storage.Redis.Password, c.Storage.Redis.PasswordFile = "x", "/secrets/redis"
		}, "password and password_file"},
		{"kafka TLS half a pair", func(c *Config) {
			c.Storage.Log.Backend = "kafka"
			c.Storage.Log.Kafka.TLS.Enabled, c.Storage.Log.Kafka.TLS.KeyFile = true, "k"
		}, "cert_file and key_file go together"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Default()
			tt.change(&cfg)
			err := cfg.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Validate = %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("Validate = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}
