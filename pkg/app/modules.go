package app

import (
	"fmt"
	"slices"
	"strings"

	"go.uber.org/zap"
	"google.golang.org/grpc"

	cachev1 "github.com/toutiao-reco/toutiao-reco/pkg/pb/reco/cache/v1"
	recallv1 "github.com/toutiao-reco/toutiao-reco/pkg/pb/reco/recall/v1"
	recocenterv1 "github.com/toutiao-reco/toutiao-reco/pkg/pb/reco/recocenter/v1"
	sortv1 "github.com/toutiao-reco/toutiao-reco/pkg/pb/reco/sort/v1"
	"github.com/toutiao-reco/toutiao-reco/pkg/pb/userreco"
	"github.com/toutiao-reco/toutiao-reco/services/cache"
	"github.com/toutiao-reco/toutiao-reco/services/recall"
	"github.com/toutiao-reco/toutiao-reco/services/recocenter"
	"github.com/toutiao-reco/toutiao-reco/services/routing"
	"github.com/toutiao-reco/toutiao-reco/services/sort"
)

// Targets a process can run: `reco serve --target=all` runs every service, a
// comma list runs some.
const (
	All        = "all"
	Routing    = "routing"
	RecoCenter = "recocenter"
	Recall     = "recall"
	Sort       = "sort"
	Cache      = "cache"
)

// module is one service: the peers it calls, the stores it needs and how it
// registers on a gRPC server. This table is the only place where the services
// are wired; all-in-one is a matter of which peers are local, not of branches in
// the services.
type module struct {
	peers    []string
	tables   bool // needs the HBase role
	sets     bool // needs the Redis role
	register func(s *grpc.Server, d deps)
}

var modules = map[string]module{
	Routing: {
		peers: []string{RecoCenter, Recall},
		register: func(s *grpc.Server, d deps) {
			userreco.RegisterUserRecommendServer(s, routing.NewServer(d.cfg.Routing, d.log.With(zap.String("service", Routing)),
				recocenterv1.NewRecoCenterServiceClient(d.peer(RecoCenter)),
				recallv1.NewRecallServiceClient(d.peer(Recall))))
		},
	},
	RecoCenter: {
		peers:  []string{Cache, Recall, Sort},
		tables: true,
		register: func(s *grpc.Server, d deps) {
			recocenterv1.RegisterRecoCenterServiceServer(s, recocenter.NewServer(d.tables, recocenter.Peers{
				Cache:  cachev1.NewCacheServiceClient(d.peer(Cache)),
				Recall: recallv1.NewRecallServiceClient(d.peer(Recall)),
				Sort:   sortv1.NewSortServiceClient(d.peer(Sort)),
			}))
		},
	},
	Recall: {
		tables: true,
		sets:   true,
		register: func(s *grpc.Server, d deps) {
			recallv1.RegisterRecallServiceServer(s, recall.NewServer(recall.Stores{Lists: d.tables, Similarity: d.tables, Sets: d.sets}))
		},
	},
	Sort: {
		tables: true,
		register: func(s *grpc.Server, d deps) {
			sortv1.RegisterSortServiceServer(s, sort.NewServer(d.tables))
		},
	},
	Cache: {
		tables: true,
		sets:   true,
		register: func(s *grpc.Server, d deps) {
			cachev1.RegisterCacheServiceServer(s, cache.NewServer(d.sets, d.tables))
		},
	},
}

// order is the registration order, also used to expand "all".
var order = []string{Routing, RecoCenter, Recall, Sort, Cache}

// ParseTargets expands a --target value ("all" or a comma list) into services.
func ParseTargets(s string) ([]string, error) {
	var targets []string
	for _, t := range strings.Split(s, ",") {
		t = strings.TrimSpace(t)
		switch {
		case t == All:
			return order, nil
		case modules[t].register == nil:
			return nil, fmt.Errorf("unknown target %q: want all or a comma list of %s", t, strings.Join(order, ", "))
		case !slices.Contains(targets, t):
			targets = append(targets, t)
		}
	}
	return targets, nil
}
