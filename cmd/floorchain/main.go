// Command floorchain measures the floor under a cache-hit refresh (issue 11):
// what three bare gRPC hops over loopback, one Redis round trip and one log
// append with the production durability setting cost per request, with none
// of the suite's own work. One binary, started once per role:
//
//	front   the first hop (routing's place): forwards each call to --next
//	middle  the second (reco-center's): forwards to --next and, once that
//	        answered, appends one record to Kafka through pkg/eventlog with
//	        the suite's own Kafka settings (acks=all from an idempotent
//	        producer, the same linger), as a refresh logs its served ids
//	back    the third (the cache's): one EVALSHA of a small Lua script on
//	        Redis that pops 10 ids from the caller's sorted set and puts them
//	        back at its bottom, so that the sets never drain
//	drive   the load, through internal/benchkit as loadgen's: a closed loop
//	        (--concurrency for --duration), an open loop at --rate, or a
//	        --ladder of open-loop steps that finds the chain's knee
//
//	floorchain serve --role back --listen 127.0.0.1:11003 --redis 127.0.0.1:6379
//	floorchain serve --role middle --listen 127.0.0.1:11002 --next 127.0.0.1:11003 --kafka 127.0.0.1:9092
//	floorchain serve --role front --listen 127.0.0.1:11001 --next 127.0.0.1:11002
//	floorchain drive --addr 127.0.0.1:11001 --concurrency 16 --duration 10s [--pids front=PID,…] [--json floor.json]
//
// The unary method is grpc.health.v1.Health/Check, answered by each hop's own
// handler (no protobuf of its own): the request's service name is the
// reader's key, which picks the sorted set and keys the log record.
package main

import (
	"errors"
	"fmt"
	"os"
)

func main() {
	var err error
	switch {
	case len(os.Args) > 1 && os.Args[1] == "serve":
		err = serve(os.Args[2:])
	case len(os.Args) > 1 && os.Args[1] == "drive":
		err = drive(os.Args[2:])
	default:
		err = errors.New("usage: floorchain serve --role front|middle|back … | floorchain drive …")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "floorchain:", err)
		os.Exit(1)
	}
}
