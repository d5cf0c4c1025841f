package logtest

import (
	"os"
	"testing"
)

// EnvKafka is the address (host:port) of the Kafka broker the test command
// started (scripts/integration.sh exports it). The prefix is RECOTEST_, not
// RECO_: every RECO_* variable must be a config key, or reco refuses to start.
const EnvKafka = "RECOTEST_KAFKA_ADDR"

// envStrict is pkg/storage/storagetest's switch, shared: under make test a
// missing server fails the test instead of skipping it.
const envStrict = "RECOTEST_REQUIRE_INTEGRATION"

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
