package storagetest

import (
	"os"
	"testing"
)

// Addresses of the real servers the test command started (scripts/integration.sh
// exports them). The prefix is RECOTEST_, not RECO_: every RECO_* variable must
// be a config key, or reco refuses to start (pkg/config).
const (
	EnvRedis  = "RECOTEST_REDIS_ADDR"
	EnvHBase  = "RECOTEST_HBASE_THRIFT"
	envStrict = "RECOTEST_REQUIRE_INTEGRATION"
)

// Server returns the address in the environment variable env, the real server a
// test needs. Without one the test is skipped, unless RECOTEST_REQUIRE_INTEGRATION=1
// (make test, CI) says a skip would hide a missing server: then it fails.
func Server(tb testing.TB, env string) string {
	tb.Helper()
	if addr := os.Getenv(env); addr != "" {
		return addr
	}
	if os.Getenv(envStrict) == "1" {
		tb.Fatalf("%s is not set but %s=1: run the tests under scripts/integration.sh (make test)", env, envStrict)
	}
	tb.Skipf("%s is not set: skipping the tests against the real server (make test sets it)", env)
	return ""
}
