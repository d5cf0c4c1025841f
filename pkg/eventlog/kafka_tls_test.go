package eventlog_test

import (
	"context"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/toutiao-reco/toutiao-reco/pkg/certs"
	"github.com/toutiao-reco/toutiao-reco/pkg/certs/certstest"
	"github.com/toutiao-reco/toutiao-reco/pkg/eventlog"
)

// TestKafkaConnectionsSpeakTLS: with storage.log.kafka.tls every connection to
// a broker completes a verified TLS handshake first.
func TestKafkaConnectionsSpeakTLS(t *testing.T) {
	ca, addr, handshakes := certstest.NewServer(t, "kafka")
	cfg := eventlog.Config{Backend: "kafka", Kafka: eventlog.KafkaConfig{Brokers: []string{addr}, Partitions: 1, ReplicationFactor: -1,
		Timeout: time.Second, DialTimeout: time.Second, TLS: certs.Client{Enabled: true, CAFile: ca.File}}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	log, closeLog, err := eventlog.Open(cfg, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = closeLog() }() // the server is no broker: the flush on close may fail
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	// The server is no broker: the append fails after the handshake.
	_ = log.Append(ctx, "tls-test", eventlog.Entry{Key: "k", Value: []byte("v")})
	select {
	case err := <-handshakes:
		if err != nil {
			t.Errorf("the server's TLS handshake with the Kafka client: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Error("the Kafka client made no TLS handshake")
	}
}
