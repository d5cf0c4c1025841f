package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/toutiao-reco/toutiao-reco/internal/benchkit"
)

// drive loads the front hop: a ladder, one open-loop step at --rate, or a
// closed loop at --concurrency.
func drive(args []string) error {
	fs := flag.NewFlagSet("floorchain drive", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:11001", "the front hop's address")
	concurrency := fs.Int("concurrency", 16, "closed loop: calls in flight")
	duration := fs.Duration("duration", 10*time.Second, "length of the closed loop, of the --rate step and of each ladder step")
	rate := fs.Int("rate", 0, "one open-loop step at this rate instead of the closed loop")
	ladderSpec := fs.String("ladder", "", "open-loop ladder instead: START:MAX (times --factor) or RATE,RATE,…")
	factor := fs.Float64("factor", 2, "ratio between a START:MAX ladder's steps")
	var ladder benchkit.Ladder
	fs.DurationVar(&ladder.Pause, "step-pause", time.Second, "idle time before each step")
	fs.BoolVar(&ladder.Refine, "refine", true, "after the first step over the knee's bounds, try the rate halfway (geometrically) back")
	readers := fs.Int("readers", 1000, "distinct readers the calls name (the back hop's sets, the records' keys)")
	timeout := fs.Duration("timeout", 2*time.Second, "deadline of each call")
	pids := fs.String("pids", "", "the hops' processes, name=pid,…: CPU per request and RSS per step")
	jsonPath := fs.String("json", "", "write the steps as JSON to this file")
	section := fs.String("section", benchkit.SectionFloor, "section of the JSON result")
	if err := fs.Parse(args); err != nil {
		return err
	}
	procs, err := benchkit.ParseProcs(*pids)
	if err != nil {
		return err
	}
	// Dial's health check goes down the whole chain: SERVING means every
	// hop, Redis and Kafka answer (and the topic exists).
	conn, err := benchkit.Dial(*addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	hc := healthpb.NewHealthClient(conn)
	names := make([]string, max(*readers, 1))
	for i := range names {
		names[i] = "reader-" + strconv.Itoa(i)
	}
	var next atomic.Int64
	call := func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, *timeout)
		defer cancel()
		name := names[int(next.Add(1)%int64(len(names)))]
		resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: name})
		if err == nil && resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			err = fmt.Errorf("chain answered %v", resp.GetStatus())
		}
		return err
	}

	meter := benchkit.NewMeter(procs)
	res := benchkit.Result{Section: *section}
	benchkit.PrintHeader(os.Stdout)
	switch {
	case *ladderSpec != "":
		rates, err := benchkit.ParseLadder(*ladderSpec, *factor)
		if err != nil {
			return fmt.Errorf("--ladder: %w", err)
		}
		ladder.Rates = rates
		steps, knee := ladder.Run(os.Stdout, nil, func(rate int) benchkit.Step {
			return meter.Open(benchkit.KindChain, rate, *duration, call)
		})
		res.Steps = steps
		res.Knees = map[string]benchkit.Knee{benchkit.KindChain: knee}
		benchkit.PrintKnee(os.Stdout, benchkit.KindChain, knee)
	case *rate > 0:
		s := meter.Open(benchkit.KindChain, *rate, *duration, call)
		benchkit.PrintStep(os.Stdout, s)
		res.Steps = []benchkit.Step{s}
	default:
		s := meter.Closed(benchkit.KindChain, *concurrency, *duration, call)
		benchkit.PrintStep(os.Stdout, s)
		res.Steps = []benchkit.Step{s}
	}
	return res.WriteJSON(*jsonPath)
}
