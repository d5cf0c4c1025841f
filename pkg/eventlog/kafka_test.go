package eventlog_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap/zaptest"

	"github.com/toutiao-reco/toutiao-reco/pkg/eventlog"
	"github.com/toutiao-reco/toutiao-reco/pkg/eventlog/logtest"
)

func kafkaConfig(brokers ...string) eventlog.Config {
	return eventlog.Config{
		Backend: "kafka",
		Kafka: eventlog.KafkaConfig{
			Brokers: brokers, Partitions: 8, ReplicationFactor: -1,
			Timeout: 5 * time.Second, DialTimeout: time.Second, Linger: 2 * time.Millisecond,
		},
	}
}

func TestKafkaContract(t *testing.T) { kafkaContract(t, false) }

// With a spill, the log is the same log to its users.
func TestKafkaWithSpillContract(t *testing.T) { kafkaContract(t, true) }

func kafkaContract(t *testing.T, spill bool) {
	addr := logtest.Server(t, logtest.EnvKafka)
	// Every run makes topics and groups of its own (logtest.Name); they are
	// deleted afterwards, and a crashed run's at the start of the next, so the
	// test broker's start-up does not slow down with each run.
	dropTestTopics(t, addr, "-"+t.Name()+"-")
	t.Cleanup(func() { dropTestTopics(t, addr, "-"+t.Name()+"-") })
	logtest.Run(t, func(t *testing.T) eventlog.Log {
		cfg := kafkaConfig(addr)
		if spill {
			cfg.Embedded.SegmentBytes, cfg.Kafka.SpillDir = 1<<20, t.TempDir()
		}
		l, closeLog, err := eventlog.Open(cfg, zaptest.NewLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := closeLog(); err != nil {
				t.Error(err)
			}
		})
		return l
	})
}

// No broker listens, and the log has a spill: Append succeeds within its
// deadline, from the spill.
func TestKafkaUnreachableSpills(t *testing.T) {
	cfg := kafkaConfig("127.0.0.1:1")
	cfg.Embedded.SegmentBytes, cfg.Kafka.SpillDir = 1<<20, t.TempDir()
	l, closeLog, err := eventlog.Open(cfg, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = closeLog() }() // Kafka is unreachable by design: the flush on close may fail
	for i := range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		start := time.Now()
		err := l.Append(ctx, "served", eventlog.Entry{Key: "k", Value: []byte("v")})
		cancel()
		if err != nil || time.Since(start) > 2*time.Second {
			t.Errorf("append %d without a broker: %v after %s, want it spilled within its deadline", i, err, time.Since(start))
		}
	}
}

// No broker listens: Append fails within its deadline, or within Timeout
// without one, and Consume returns when its context ends.
func TestKafkaUnreachable(t *testing.T) {
	cfg := kafkaConfig("127.0.0.1:1")
	cfg.Kafka.Timeout = time.Second
	l, closeLog, err := eventlog.Open(cfg, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = closeLog() }() // Kafka is unreachable by design: the flush on close may fail
	e := eventlog.Entry{Key: "k", Value: []byte("v")}

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := l.Append(ctx, "served", e); err == nil {
		t.Error("Append without a broker succeeded")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Append with a 300ms deadline took %s", d)
	}

	start = time.Now()
	if err := l.Append(context.Background(), "served", e); err == nil {
		t.Error("Append without a broker succeeded")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Append without a deadline took %s, want about Timeout (1s)", d)
	}

	ctx, cancel = context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start = time.Now()
	if err := l.Consume(ctx, "served", "history", func(context.Context, []eventlog.Entry) error { return nil }); err != nil {
		t.Errorf("Consume = %v, want nil once its context ended", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Consume returned %s after its context, want promptly", d)
	}
}

// dropTestTopics deletes the topics and consumer groups whose names contain
// marker.
func dropTestTopics(t *testing.T, addr, marker string) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var drop []string
	groups, err := adm.ListGroups(ctx)
	if err != nil {
		t.Logf("list groups: %v", err)
	}
	for _, g := range groups.Groups() {
		if strings.Contains(g, marker) {
			drop = append(drop, g)
		}
	}
	if len(drop) > 0 {
		if _, err := adm.DeleteGroups(ctx, drop...); err != nil {
			t.Logf("delete groups: %v", err)
		}
	}
	topics, err := adm.ListTopics(ctx)
	if err != nil {
		t.Logf("list topics: %v", err)
	}
	drop = drop[:0]
	for _, name := range topics.Names() {
		if strings.Contains(name, marker) {
			drop = append(drop, name)
		}
	}
	if len(drop) > 0 {
		if _, err := adm.DeleteTopics(ctx, drop...); err != nil {
			t.Logf("delete topics: %v", err)
		}
	}
}
