// Package eventlog is the suite's durable, ordered-per-key log: what must not be
// lost once a caller was told "done" travels on it (a refresh's served ids on
// their way to history_recommend; readers' actions on their way to the nearline
// jobs, DESIGN.md §8). A producer appends before it answers; a consumer group
// applies the entries idempotently and commits its position.
//
// Two backends implement Log and pass one contract suite (pkg/eventlog/logtest):
//
//   - "kafka": a Kafka cluster reached with franz-go (idempotent producer,
//     acks=all, one partition per key hash; consumer groups with manual commits);
//   - "embedded": append-only segment files on local disk with group-commit
//     fsync, for the all-in-one default that runs without servers.
package eventlog

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"go.uber.org/zap"

	"github.com/toutiao-reco/toutiao-reco/pkg/certs"
)

// Entry is one record of a topic. Entries with one Key keep their order (Kafka:
// one partition per key; the reader's user id is the key).
type Entry struct {
	Key   string
	Value []byte
	// Topic, Partition and Offset say where a consumed entry sits (Append
	// ignores them): offsets grow within a partition, so a handler that
	// remembers the newest offset it applied per partition can skip an entry
	// delivered again. Topic is the full name, namespace included: positions
	// of two namespaces' topics are apart. The embedded log has one
	// partition, 0.
	Topic     string
	Partition int32
	Offset    int64
}

// Log is the durable log.
type Log interface {
	// Append stores entries durably before it returns: the embedded log has
	// fsync'd them (group commit: concurrent Appends share one fsync), Kafka has
	// acknowledged them with acks=all from an idempotent producer. A ctx that
	// ends first returns its error and the entries may or may not be stored.
	// Append does not keep entries or their Values after it returns.
	Append(ctx context.Context, topic string, entries ...Entry) error
	// Consume delivers topic's entries to handle in batches, in order per key,
	// starting after the group's committed position (a group that never
	// committed starts at the oldest entry kept), and commits a batch once
	// handle returns nil; a handle error retries the batch after a backoff. It
	// blocks until ctx ends (then returns nil). Delivery is at-least-once: after a
	// crash a batch may come again, so handlers are idempotent. A batch is the
	// handler's until it returns: the log does not touch it afterwards.
	Consume(ctx context.Context, topic, group string, handle func(ctx context.Context, batch []Entry) error) error
}

// Errors of both backends.
var (
	// ErrClosed is returned by calls on a log whose cleanup has run.
	ErrClosed = errors.New("eventlog: the log is closed")
	// ErrTooLarge is returned by Append for an entry whose key and value
	// together exceed MaxEntryBytes.
	ErrTooLarge = errors.New("eventlog: entry too large")
	// ErrConsumerActive is returned by the embedded log's Consume when the same
	// (topic, group) is already being consumed in this process.
	ErrConsumerActive = errors.New("eventlog: the group is already consuming this topic in this process")
)

// MaxEntryBytes bounds len(Key)+len(Value) of one entry: below Kafka's default
// message.max.bytes (1 MiB) with room for the record and batch headers, so an
// entry the embedded log accepts is one Kafka accepts too.
const MaxEntryBytes = 900 << 10

// maxBatch is the most entries one handle call gets.
const maxBatch = 500

// commitEvery spaces a busy consumer's commits: a commit costs a round trip
// (Kafka) or two fsyncs (embedded), once per batch it was a write per entry
// under load. Handlers are idempotent, so what a crash leaves uncommitted only
// comes again. A consumer that stops commits what it handled first.
const commitEvery = time.Second

// Backoff between attempts of a batch whose handler failed: doubling from
// minBackoff up to maxBackoff, so a dead dependency is retried steadily
// without a hot loop.
const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 5 * time.Second
)

// Config chooses and configures the backend; the zero values are invalid
// (defaults live in config.Default()).
type Config struct {
	// Backend is "embedded" or "kafka".
	Backend string `yaml:"backend"`
	// Namespace is put before every topic and consumer-group name: suites
	// sharing one Kafka cluster (staging beside production, test runs) then
	// neither read each other's entries nor join each other's groups, whose
	// rebalances would pause their consumers.
	Namespace string         `yaml:"namespace"`
	Embedded  EmbeddedConfig `yaml:"embedded"`
	Kafka     KafkaConfig    `yaml:"kafka"`
}

// EmbeddedConfig configures the log on local disk.
type EmbeddedConfig struct {
	// Dir holds one directory per topic: its segment files and one position
	// file per consumer group. One process at a time may open it.
	Dir string `yaml:"dir"`
	// SegmentBytes is the size at which a topic starts a new segment file; a
	// segment is deleted once every group that ever committed is past it.
	SegmentBytes int64 `yaml:"segment_bytes"`
}

// KafkaConfig configures the Kafka client.
type KafkaConfig struct {
	// Brokers are the seed brokers, host:port.
	Brokers []string `yaml:"brokers"`
	// Partitions is the partition count of a topic the log creates because it
	// is missing. An existing topic keeps its own. Changing it on a topic in use
	// moves keys to other partitions and so breaks their order once.
	Partitions int `yaml:"partitions"`
	// ReplicationFactor is the replica count of a topic the log creates; -1
	// takes the brokers' default.replication.factor.
	ReplicationFactor int `yaml:"replication_factor"`
	// Timeout bounds every call whose context has no earlier deadline: an
	// Append until its acknowledgement, a commit, a topic creation.
	Timeout time.Duration `yaml:"timeout"`
	// DialTimeout bounds connecting to a broker.
	DialTimeout time.Duration `yaml:"dial_timeout"`
	// Linger is how long the producer waits for more records before it sends
	// a batch. 0 (the default) sends at once: an append then costs one round
	// trip (2 ms of linger measured +2.3 ms at p50), and under load the
	// records appended while a produce request is in flight (one per broker,
	// for idempotence) share the next one anyway.
	Linger time.Duration `yaml:"linger"`
	// SpillDir, when set, is a local embedded log an Append falls back to
	// when Kafka does not acknowledge it in time; spilled entries are moved
	// to Kafka once it answers again (spill.go). One process per directory,
	// on a persistent volume.
	SpillDir string `yaml:"spill_dir"`
	// TLS of the connections to the brokers (their SSL listeners).
	TLS certs.Client `yaml:"tls"`
}

// Validate reports whether c can be used; only the chosen backend's keys are
// checked.
func (c Config) Validate() error {
	if c.Namespace != "" {
		if err := validName("namespace", c.Namespace); err != nil || len(c.Namespace) > maxNamespace {
			return fmt.Errorf("namespace must be at most %d characters of [A-Za-z0-9._-], got %q", maxNamespace, c.Namespace)
		}
	}
	switch c.Backend {
	case "embedded":
		if err := c.Embedded.Validate(); err != nil {
			return fmt.Errorf("embedded: %w", err)
		}
	case "kafka":
		if err := c.Kafka.Validate(); err != nil {
			return fmt.Errorf("kafka: %w", err)
		}
	default:
		return fmt.Errorf("backend must be embedded or kafka, got %q", c.Backend)
	}
	return nil
}

// Validate reports whether c can be used.
func (c EmbeddedConfig) Validate() error {
	var errs []error
	if c.Dir == "" {
		errs = append(errs, errors.New("dir is required"))
	}
	if c.SegmentBytes <= 0 {
		errs = append(errs, fmt.Errorf("segment_bytes must be positive, got %d", c.SegmentBytes))
	}
	return errors.Join(errs...)
}

// Validate reports whether c can be used.
func (c KafkaConfig) Validate() error {
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("brokers is required"))
	}
	for _, b := range c.Brokers {
		if _, _, err := net.SplitHostPort(b); err != nil {
			errs = append(errs, fmt.Errorf("broker %q is not host:port: %v", b, err))
		}
	}
	if c.Partitions < 1 || c.Partitions > 1<<20 {
		errs = append(errs, fmt.Errorf("partitions must be 1 or more, got %d", c.Partitions))
	}
	if c.ReplicationFactor != -1 && (c.ReplicationFactor < 1 || c.ReplicationFactor > 1<<15-1) {
		errs = append(errs, fmt.Errorf("replication_factor must be -1 (the brokers' default) or 1 or more, got %d", c.ReplicationFactor))
	}
	if c.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("timeout must be positive, got %s", c.Timeout))
	}
	if c.DialTimeout <= 0 {
		errs = append(errs, fmt.Errorf("dial_timeout must be positive, got %s", c.DialTimeout))
	}
	if c.Linger < 0 || c.Linger >= c.Timeout && c.Timeout > 0 {
		errs = append(errs, fmt.Errorf("linger must be 0 or more and below timeout, got %s", c.Linger))
	}
	if err := c.TLS.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("tls: %w", err))
	}
	return errors.Join(errs...)
}

// Open returns the log cfg names and a cleanup that closes it (flushing what it
// buffered). Neither backend waits for anything remote here: the embedded log
// opens its directory (and fails if another process holds it), the Kafka
// client connects on first use, so a broker that is down fails Appends within
// their deadline, not the start of the process.
func Open(cfg Config, log *zap.Logger) (Log, func() error, error) {
	if err := cfg.Validate(); err != nil {
		return nil, nil, fmt.Errorf("eventlog: %w", err)
	}
	if log == nil {
		log = zap.NewNop()
	}
	l, cleanup, err := open(cfg, log)
	if err != nil || cfg.Namespace == "" {
		return l, cleanup, err
	}
	return namespaced{l, cfg.Namespace}, cleanup, nil
}

// maxNamespace leaves a namespaced name room within Kafka's 249 characters.
const maxNamespace = 100

// namespaced is a log whose topics and groups are all named with a prefix.
type namespaced struct {
	log    Log
	prefix string
}

func (n namespaced) Append(ctx context.Context, topic string, entries ...Entry) error {
	return n.log.Append(ctx, n.prefix+topic, entries...)
}

func (n namespaced) Consume(ctx context.Context, topic, group string, handle func(context.Context, []Entry) error) error {
	return n.log.Consume(ctx, n.prefix+topic, n.prefix+group, handle)
}

// open opens cfg's backend.
func open(cfg Config, log *zap.Logger) (Log, func() error, error) {
	switch cfg.Backend {
	case "kafka":
		l, err := openKafka(cfg.Kafka, log)
		if err != nil {
			return nil, nil, err
		}
		if cfg.Kafka.SpillDir == "" {
			return l, l.close, nil
		}
		s, err := openSpill(l, EmbeddedConfig{Dir: cfg.Kafka.SpillDir, SegmentBytes: cfg.Embedded.SegmentBytes}, log)
		if err != nil {
			return nil, nil, errors.Join(err, l.close())
		}
		// The drains stop before Kafka's client closes under them.
		return s, func() error { return errors.Join(s.close(), l.close()) }, nil
	default:
		l, err := openEmbedded(cfg.Embedded, log)
		if err != nil {
			return nil, nil, err
		}
		return l, l.close, nil
	}
}

// validName checks a topic or group name. Both backends take the characters
// Kafka allows in a topic name ([A-Za-z0-9._-], at most 249), so a name that
// works on one works on the other; the embedded log uses them as file names.
func validName(what, name string) error {
	bad := fmt.Errorf("eventlog: invalid %s name %q: 1 to 249 characters of [A-Za-z0-9._-], neither %q nor %q", what, name, ".", "..")
	if name == "" || name == "." || name == ".." || len(name) > 249 {
		return bad
	}
	for _, c := range []byte(name) {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
		default:
			return bad
		}
	}
	return nil
}

// checkAppend is what every backend's Append checks first: a live ctx, a valid
// topic, entries the log can store. It returns false (and no error) when there
// is nothing to append.
func checkAppend(ctx context.Context, topic string, entries []Entry) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if err := validName("topic", topic); err != nil {
		return false, err
	}
	if err := checkEntries(entries); err != nil {
		return false, err
	}
	return len(entries) > 0, nil
}

// checkEntries rejects entries the log cannot store.
func checkEntries(entries []Entry) error {
	for i, e := range entries {
		if n := len(e.Key) + len(e.Value); n > MaxEntryBytes {
			return fmt.Errorf("%w: entry %d has %d bytes of key and value, the most is %d", ErrTooLarge, i, n, MaxEntryBytes)
		}
	}
	return nil
}

// deliver calls handle with batch until it returns nil (true) or ctx ends
// first (false: the batch was not handled and must not be committed). A
// handler that returns nil after ctx ended did handle the batch.
func deliver(ctx context.Context, log *zap.Logger, topic, group string, batch []Entry,
	handle func(context.Context, []Entry) error) bool {
	backoff := minBackoff
	for attempt := 1; ; attempt++ {
		err := handle(ctx, batch)
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		log.Warn("eventlog: handler failed; retrying the batch",
			zap.String("topic", topic), zap.String("group", group), zap.Int("entries", len(batch)),
			zap.Int("attempt", attempt), zap.Duration("backoff", backoff), zap.Error(err))
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
		backoff = min(2*backoff, maxBackoff)
	}
}
