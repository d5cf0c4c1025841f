package main

import (
	"errors"
	"flag"
	"os"

	"github.com/toutiao-reco/toutiao-reco/internal/benchkit"
)

// report is `loadgen report`: the results of one `make bench` run (the JSON
// files of loadgen and floorchain) merged into one run, written to --out,
// and printed next to the baseline's figures with the change, then issue
// 11's targets.
func report(args []string) error {
	fs := flag.NewFlagSet("loadgen report", flag.ContinueOnError)
	baseline := fs.String("baseline", "", "a run to compare with (bench/baseline.json); a missing file is no baseline")
	out := fs.String("out", "", "write the merged run as JSON to this file")
	note := fs.String("note", "", "note stored with the run (the machine, the load on it)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return errors.New("report: pass the result files")
	}
	var results []benchkit.Result
	for _, p := range fs.Args() {
		r, err := benchkit.ReadResult(p)
		if err != nil {
			return err
		}
		results = append(results, r)
	}
	run := benchkit.NewRun(results, *note)
	var base *benchkit.Run
	if *baseline != "" {
		b, err := benchkit.ReadRun(*baseline)
		switch {
		case err == nil:
			base = &b
		case !errors.Is(err, os.ErrNotExist):
			return err
		}
	}
	run.Print(os.Stdout, base, *baseline)
	if *out != "" {
		return run.WriteJSON(*out)
	}
	return nil
}
