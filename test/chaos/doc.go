// Package chaos holds a Jepsen-style test of the feed's promises under faults
// (TestChaos): it starts its own redis-server, standalone HBase + Thrift2
// gateway and (when the run has Kafka) Kafka broker on free loopback ports, runs
// the five services as separate `reco serve` processes (routing twice, behind a
// client-side round robin, and reco-center twice, behind routing's ring hash),
// drives them with concurrent clients of the original
// protobuf, SIGKILLs and restarts each dependency and each process in turn, and
// checks from the outside what readers got: repeats within a channel, repeats
// of channel 0 in another channel, served ids missing from history_recommend,
// errors during each outage and the time to recover after each restart.
//
// It runs in about five minutes with RECOTEST_REQUIRE_INTEGRATION=1 or
// RECOTEST_CHAOS=1, and for longer with RECOTEST_CHAOS=long (`make chaos`);
// scripts/gotest.sh runs it last in `make test`, alone. Elsewhere it is
// skipped: it needs redis-server, a JDK and the HBase jars that
// scripts/hbase.sh resolves.
package chaos
