package app

import (
	"fmt"
	"slices"
	"strings"

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
	register func(s *grpc.Server, d deps) error
}

var modules = map[string]module{
	Routing: {
		peers: []string{RecoCenter, Recall},
		register: func(s *grpc.Server, d deps) error {
			srv, err := routing.NewServer(d.cfg.Routing, d.logger(Routing), d.reg,
				recocenterv1.NewRecoCenterServiceClient(d.peer(RecoCenter)),
				recallv1.NewRecallServiceClient(d.peer(Recall)))
			if err != nil {
				return err
			}
			go srv.WatchStrategies(d.ctx)
			userreco.RegisterUserRecommendServer(s, srv)
			return nil
		},
	},
	RecoCenter: {
		peers:  []string{Cache, Recall, Sort},
		tables: true,
		sets:   true,
		register: func(s *grpc.Server, d deps) error {
			metrics, err := recocenter.NewMetrics(d.reg)
			if err != nil {
				return err
			}
			center := recocenter.New(d.tables, d.sets, recocenter.Peers{
				Cache:  cachev1.NewCacheServiceClient(d.peer(Cache)),
				Recall: recallv1.NewRecallServiceClient(d.peer(Recall)),
				Sort:   sortv1.NewSortServiceClient(d.peer(Sort)),
			}, metrics, d.logger(RecoCenter))
			recocenterv1.RegisterRecoCenterServiceServer(s, recocenter.NewServer(center))
			return nil
		},
	},
	Recall: {
		tables: true,
		sets:   true,
		register: func(s *grpc.Server, d deps) error {
			r, err := recall.New(d.cfg.Recall, recall.Stores{Lists: d.tables, Similarity: d.tables, Sets: d.sets}, d.reg)
			if err != nil {
				return err
			}
			recallv1.RegisterRecallServiceServer(s, recall.NewServer(r, d.logger(Recall)))
			return nil
		},
	},
	Sort: {
		tables: true,
		register: func(s *grpc.Server, d deps) error {
			models := sort.LoadModels(d.cfg.Sort.ModelDir, d.logger(Sort))
			go models.Watch(d.ctx, d.cfg.Sort.ReloadInterval)
			sortv1.RegisterSortServiceServer(s, sort.NewServer(sort.NewRanker(d.cfg.Sort, models, d.tables)))
			return nil
		},
	},
	Cache: {
		tables: true,
		sets:   true,
		register: func(s *grpc.Server, d deps) error {
			c, err := cache.New(d.cfg.Cache, d.sets, d.tables, d.reg)
			if err != nil {
				return err
			}
			cachev1.RegisterCacheServiceServer(s, cache.NewServer(c))
			return nil
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
