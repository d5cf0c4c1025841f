package redisstore

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/toutiao-reco/toutiao-reco/pkg/certs"
	"github.com/toutiao-reco/toutiao-reco/pkg/certs/certstest"
	"github.com/toutiao-reco/toutiao-reco/pkg/feed"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage"
)

// TestOpenSpeaksTLSAndReadsThePasswordFile: with storage.redis.tls the client's
// connections complete a verified TLS handshake, and password_file is read at
// Open (a missing one fails it, naming the key).
func TestOpenSpeaksTLSAndReadsThePasswordFile(t *testing.T) {
	ca, addr, handshakes := certstest.NewServer(t, "redis")
	password := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(password, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := Config{Addrs: []string{addr}, PasswordFile: password, DialTimeout: time.Second, ReadTimeout: 200 * time.Millisecond, WriteTimeout: 200 * time.Millisecond,
		TLS: certs.Client{Enabled: true, CAFile: ca.File}}
	sets, closeSets, err := Open(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := closeSets(); err != nil {
			t.Error(err)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	// The server is no Redis: the call fails after the handshake.
	_, _ = sets.Top(ctx, storage.HotList, feed.ChannelAll, 1)
	select {
	case err := <-handshakes:
		if err != nil {
			t.Errorf("the server's TLS handshake with the Redis client: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Error("the Redis client made no TLS handshake")
	}

	cfg.PasswordFile = filepath.Join(t.TempDir(), "missing")
	if _, _, err := Open(cfg, nil); err == nil || !strings.Contains(err.Error(), "password_file") {
		t.Errorf("Open with a missing password_file: %v, want an error naming it", err)
	}
	cfg.Password = "x"
	if err := cfg.Validate(); err == nil {
		t.Error("password and password_file together validate")
	}
}
