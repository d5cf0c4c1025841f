package eventlog_test

import (
	"context"
	"testing"
	"time"

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

func TestKafkaContract(t *testing.T) {
	addr := logtest.Server(t, logtest.EnvKafka)
	logtest.Run(t, func(t *testing.T) eventlog.Log {
		l, closeLog, err := eventlog.Open(kafkaConfig(addr), zaptest.NewLogger(t))
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

// No broker listens: Append fails within its deadline, or within Timeout
// without one, and Consume returns when its context ends.
func TestKafkaUnreachable(t *testing.T) {
	cfg := kafkaConfig("127.0.0.1:1")
	cfg.Kafka.Timeout = time.Second
	l, closeLog, err := eventlog.Open(cfg, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer closeLog()
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
