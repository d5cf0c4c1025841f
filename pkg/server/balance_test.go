package server

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/toutiao-reco/toutiao-reco/pkg/certs"
	"github.com/toutiao-reco/toutiao-reco/pkg/certs/certstest"
	cachev1 "github.com/toutiao-reco/toutiao-reco/pkg/pb/reco/cache/v1"
)

// replica is one server of a peer with two replicas; who records the readers
// it answered, block makes its calls for a reader hang until it is stopped.
type replica struct {
	name  string
	srv   *Server
	addr  string
	mu    sync.Mutex
	who   map[string]int
	block string
	// started is closed when a blocked call arrived.
	started chan struct{}
}

func startReplica(t *testing.T, name string, opts Options) *replica {
	t.Helper()
	r := &replica{name: name, who: map[string]int{}, started: make(chan struct{})}
	s, err := New(zap.NewNop(), prometheus.NewRegistry(), opts)
	if err != nil {
		t.Fatal(err)
	}
	s.RegisterService(&grpc.ServiceDesc{
		ServiceName: "test.Replica",
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{{
			MethodName: "Who",
			Handler: func(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
				in := new(cachev1.TakeRequest)
				if err := dec(in); err != nil {
					return nil, err
				}
				r.mu.Lock()
				r.who[in.GetUserId()]++
				block := r.block == in.GetUserId()
				r.mu.Unlock()
				if block {
					close(r.started)
					<-ctx.Done()
					return nil, ctx.Err()
				}
				return &emptypb.Empty{}, nil
			},
		}},
	}, struct{}{})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Serve(lis) }() // until the Stop; a failure shows in the calls
	t.Cleanup(s.Stop)
	r.srv, r.addr = s, lis.Addr().String()
	return r
}

func (r *replica) answered(user string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.who[user]
}

func who(conn *grpc.ClientConn, user string) error {
	return conn.Invoke(context.Background(), "/test.Replica/Who", &cachev1.TakeRequest{UserId: user}, &emptypb.Empty{})
}

func TestReplicasKeepAReaderOnOneAndTakeOverWhenItDies(t *testing.T) {
	a, b := startReplica(t, "a", Options{}), startReplica(t, "b", Options{})
	metrics, err := NewClientMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	conn, err := Dial(a.addr+","+b.addr, 5*time.Second, metrics, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	users := make([]string, 40)
	for i := range users {
		users[i] = fmt.Sprintf("reader-%d", i)
	}
	onA := ""
	for _, u := range users {
		for range 3 {
			if err := who(conn, u); err != nil {
				t.Fatalf("call for %s: %v", u, err)
			}
		}
		switch na, nb := a.answered(u), b.answered(u); {
		case na == 3 && nb == 0:
			onA = u
		case na == 0 && nb == 3:
		default:
			t.Errorf("%s answered %d times by a and %d by b: one reader's calls must stay on one replica", u, na, nb)
		}
	}
	if onA == "" {
		t.Fatal("replica a answered no reader: the calls are not spread")
	}

	// A call in flight on a when a dies is answered by b.
	a.mu.Lock()
	a.block = onA
	a.mu.Unlock()
	done := make(chan error, 1)
	go func() { done <- who(conn, onA) }()
	<-a.started
	a.srv.Stop()
	if err := <-done; err != nil {
		t.Errorf("call in flight on the replica that died: %v, want it retried on the other", err)
	}
	for _, u := range users {
		if err := who(conn, u); err != nil {
			t.Errorf("call for %s after a died: %v", u, err)
		}
	}
	if b.answered(onA) == 0 {
		t.Errorf("b never answered %s after a died", onA)
	}
}

// Over TLS, each replica's certificate is checked against its own host: the
// list as a whole is no host name.
func TestReplicasOverTLS(t *testing.T) {
	ca := certstest.NewCA(t, "test CA")
	var addrs []string
	for _, name := range []string{"a", "b"} {
		leaf := ca.Leaf(t, "cache", "")
		cfg, err := certs.ServerConfig(certs.Server{CertFile: leaf.CertFile, KeyFile: leaf.KeyFile}, zap.NewNop())
		if err != nil {
			t.Fatal(err)
		}
		addrs = append(addrs, startReplica(t, name, Options{TLS: cfg}).addr)
	}
	metrics, err := NewClientMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	conn, err := Dial(strings.Join(addrs, ","), 5*time.Second, metrics, nil, false, grpc.WithTransportCredentials(PeerTLS(ca.Client(t, nil, ""))))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for i := range 10 {
		if err := who(conn, fmt.Sprintf("reader-%d", i)); err != nil {
			t.Fatalf("call over TLS to the replicas %v: %v", addrs, err)
		}
	}
}
