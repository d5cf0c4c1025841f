// Package hbase is the production backend of storage.Tables (DESIGN.md §3): the
// cells of layout.Cells in the HBase tables of layout.Schema, reached through
// HBase's Thrift2 gateway
// (org.apache.hadoop.hbase.thrift2.ThriftServer) with framed transport and the
// binary protocol. scripts/hbase.sh runs exactly that for development and CI.
//
// # Connections
//
// A Thrift connection carries one call at a time, so the backend keeps a pool of
// them (Config.PoolSize). Every call has a deadline: the earlier of its context's
// and Config.Timeout from now, set on the socket, and a cancelled context
// interrupts the call in flight. A connection that failed below the Thrift
// application layer (timeout, reset, protocol error) is closed rather than
// reused, since the next reply on it could belong to the abandoned call. Idle
// connections are dropped after Config.IdleTimeout, before the gateway's own
// idle read timeout (hbase.thrift.server.socket.read.timeout, 60s) closes them
// under us.
//
// # Atomicity
//
// HBase mutates one row atomically and offers check-and-put, which is all the
// interfaces need:
//
//   - Queue.Push and Queue.Take read the queue cell and write it back with
//     check-and-put on its old value, retrying when another writer got there
//     first, so concurrent takers never receive the same id.
//   - Lists.Append merges into a version at an existing timestamp (two refreshes
//     sharing a request time_stamp). The merge reads the version and a sequence
//     cell in family layout.FamilySeq (qualifier "{column}@{ts}", written at the
//     same timestamp) in one Get, then writes both with check-and-put on the
//     sequence, so a concurrent merge fails and retries instead of overwriting.
//
// An emptied queue is written as "[]" rather than deleted: a delete marker at
// the server's current millisecond would hide a Push landing in that same
// millisecond (HBase masks every put at or below a delete's timestamp until a
// major compaction).
//
// # Batches
//
// Reads of many keys are one getMultiple per thousand keys; writes of many cells
// are putMultiple calls of at most about 1 MiB each (the gateway refuses frames
// over hbase.regionserver.thrift.framed.max_frame_size_in_mb, 2 MiB by default),
// a few in flight at once.
//
// # Gateway pitfalls
//
// Nothing here sends the attribute maps of the Thrift2 structs: the HBase 2.6
// gateway stores an attribute under the whole request buffer instead of the
// key's bytes (see modifiedFamily). A gateway error arrives as a TIOError whose
// message is the Java exception's; calls wrap it with the table and row.
//
// # Malformed values
//
// Every value read is decoded through the layout.BadCells given to Open, and a
// malformed one affects only itself, as layout.Cells says: a version is skipped
// (a read bounded by a number of versions reads further to make up for it), a
// feature reads as absent, a neighbour is skipped, and a queue is overwritten
// with "[]" by Take or with the new ids by Push.
package hbase

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/toutiao-reco/toutiao-reco/pkg/certs"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage/layout"
)

// Config addresses a Thrift2 gateway. Every field is required; config.Default
// holds the tuned values.
type Config struct {
	// ThriftAddr is the gateway's host:port (framed transport, binary protocol).
	ThriftAddr string `yaml:"thrift_addr"`
	// PoolSize is the most connections open at once, and so the most concurrent
	// calls.
	PoolSize int `yaml:"pool_size"`
	// Timeout bounds every data call whose context has no earlier deadline.
	// Bootstrap's table operations use their context's deadline or two minutes,
	// since HBase creates tables synchronously.
	Timeout time.Duration `yaml:"timeout"`
	// DialTimeout bounds connecting.
	DialTimeout time.Duration `yaml:"dial_timeout"`
	// IdleTimeout is how long an unused connection is kept. Keep it below the
	// gateway's hbase.thrift.server.socket.read.timeout (60s).
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// TLS of the connections to the gateway. HBase's own
	// hbase.thrift.ssl.enabled serves TLS only in the gateway's HTTP mode,
	// which this framed client does not speak: TLS here is for a
	// TLS-terminating proxy (stunnel, an Envoy sidecar) in front of the
	// framed gateway.
	TLS certs.Client `yaml:"tls"`
}

// Validate reports whether c can be used.
func (c Config) Validate() error {
	var errs []error
	if c.ThriftAddr == "" {
		errs = append(errs, errors.New("thrift_addr is required"))
	} else if _, _, err := net.SplitHostPort(c.ThriftAddr); err != nil {
		errs = append(errs, fmt.Errorf("thrift_addr %q is not host:port: %v", c.ThriftAddr, err))
	}
	if c.PoolSize <= 0 {
		errs = append(errs, fmt.Errorf("pool_size must be positive, got %d", c.PoolSize))
	}
	for _, d := range []struct {
		name string
		d    time.Duration
	}{{"timeout", c.Timeout}, {"dial_timeout", c.DialTimeout}, {"idle_timeout", c.IdleTimeout}} {
		if d.d <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive, got %s", d.name, d.d))
		}
	}
	if err := c.TLS.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("tls: %w", err))
	}
	return errors.Join(errs...)
}

// Open returns the tables behind the gateway cfg names and a cleanup that closes
// its connections. It does not dial: an unreachable gateway fails the first call,
// not the start of the process, so a service can start and degrade (DESIGN.md
// §6). The tables must exist; Bootstrap creates them.
func Open(cfg Config, bad *layout.BadCells) (storage.Tables, func() error, error) {
	t, cleanup, err := open(cfg, bad)
	if err != nil {
		return nil, nil, err
	}
	return layout.NewTables(t), cleanup, nil
}

// open returns the cells behind the gateway cfg names, reporting malformed
// values to bad (nil: skipped silently).
func open(cfg Config, bad *layout.BadCells) (*tables, func() error, error) {
	if err := cfg.Validate(); err != nil {
		return nil, nil, fmt.Errorf("invalid hbase config: %w", err)
	}
	tlsClient, err := certs.NewClient(cfg.TLS, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("hbase tls: %w", err)
	}
	p := newPool(cfg)
	p.tls = tlsClient
	return &tables{pool: p, timeout: cfg.Timeout, loadParallelism: min(4, cfg.PoolSize), bad: bad}, p.close, nil
}
