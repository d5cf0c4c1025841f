package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestAdminWhileServeHoldsTheEmbeddedFile: `reco admin bootstrap` against the
// embedded file a `reco serve` holds (make run) fails naming that process,
// not with bbolt's bare "timeout".
func TestAdminWhileServeHoldsTheEmbeddedFile(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "reco.db")
	env := []string{"RECO_STORAGE_EMBEDDED_PATH=" + db, "RECO_STORAGE_EMBEDDED_NO_SYNC=true", "RECO_STORAGE_LOG_EMBEDDED_DIR=" + filepath.Join(dir, "log")}
	addr := freeAddr(t)
	serveEnv := append([]string{"RECO_SERVER_GRPC_ADDR=" + addr, "RECO_SERVER_METRICS_ADDR=" + freeAddr(t), "RECO_SERVER_HTTP_ADDR=" + freeAddr(t),
		"RECO_SERVER_LAME_DUCK=0s", "RECO_SORT_MODEL_DIR=" + filepath.Join(dir, "models")}, env...)
	ctx, cancel := context.WithCancel(context.Background())
	serve := recoCommand(ctx, serveEnv, "serve", "--target=all")
	var serveOut bytes.Buffer
	serve.Stdout, serve.Stderr = &serveOut, &serveOut
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = serve.Wait()
	})
	waitServing(t, addr, &serveOut)

	var stdout, stderr bytes.Buffer
	admin := recoCommand(context.Background(), env, "admin", "bootstrap")
	admin.Stdout, admin.Stderr = &stdout, &stderr
	err := admin.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("admin bootstrap while serve holds the file: %v, want exit status 1; output:\n%s%s", err, &stdout, &stderr)
	}
	for _, want := range []string{
		"open embedded storage " + db + ": database file in use",
		fmt.Sprintf("held by pid %d (reco serve --target=all)", serve.Process.Pid),
		"`make run` or a `reco serve` may be using it",
	} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("admin bootstrap said %q; want it to say %q", &stderr, want)
		}
	}
}
