package hbase

import (
	"context"
	"testing"
	"time"

	"github.com/toutiao-reco/toutiao-reco/pkg/certs"
	"github.com/toutiao-reco/toutiao-reco/pkg/certs/certstest"
)

// TestGatewayConnectionsSpeakTLS: with storage.hbase.tls every connection to
// the gateway (a TLS proxy in front of it) completes a verified handshake first.
func TestGatewayConnectionsSpeakTLS(t *testing.T) {
	ca, addr, handshakes := certstest.NewServer(t, "hbase-thrift")
	for _, tt := range []struct {
		name   string
		caFile string
		ok     bool
	}{
		{"the gateway's CA", ca.File, true},
		{"another CA", certstest.NewCA(t, "other CA").File, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{ThriftAddr: addr, PoolSize: 1, Timeout: time.Second, DialTimeout: time.Second, IdleTimeout: time.Second,
				TLS: certs.Client{Enabled: true, CAFile: tt.caFile}}
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			p := newPool(cfg)
			var err error
			if p.tls, err = certs.NewClient(cfg.TLS, nil); err != nil {
				t.Fatal(err)
			}
			c, err := p.dial(context.Background())
			if got := <-handshakes; (err == nil) != tt.ok || (got == nil) != tt.ok {
				t.Fatalf("dial: %v, server's handshake: %v; want success %v", err, got, tt.ok)
			}
			if c != nil {
				_ = c.nc.Close() // the handshake was the test
			}
		})
	}
}
