package app

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/grpc"

	"github.com/toutiao-reco/toutiao-reco/pkg/gateway"
	"github.com/toutiao-reco/toutiao-reco/pkg/offline"
	adminv1 "github.com/toutiao-reco/toutiao-reco/pkg/pb/reco/admin/v1"
	cachev1 "github.com/toutiao-reco/toutiao-reco/pkg/pb/reco/cache/v1"
	recallv1 "github.com/toutiao-reco/toutiao-reco/pkg/pb/reco/recall/v1"
	recocenterv1 "github.com/toutiao-reco/toutiao-reco/pkg/pb/reco/recocenter/v1"
	sortv1 "github.com/toutiao-reco/toutiao-reco/pkg/pb/reco/sort/v1"
	trackv1 "github.com/toutiao-reco/toutiao-reco/pkg/pb/reco/track/v1"
	"github.com/toutiao-reco/toutiao-reco/pkg/pb/userreco"
	"github.com/toutiao-reco/toutiao-reco/services/cache"
	"github.com/toutiao-reco/toutiao-reco/services/nearline"
	"github.com/toutiao-reco/toutiao-reco/services/recall"
	"github.com/toutiao-reco/toutiao-reco/services/recocenter"
	"github.com/toutiao-reco/toutiao-reco/services/routing"
	"github.com/toutiao-reco/toutiao-reco/services/sort"
	"github.com/toutiao-reco/toutiao-reco/services/track"
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
	Nearline   = "nearline"
)

// module is one service: the peers it calls, the storage roles it needs, how
// it registers on a gRPC server and, for a public one, its HTTP/JSON routes. This table is the only place where the services
// are wired; all-in-one is a matter of which peers are local, not of branches in
// the services. A module reaches only the peers it declares (deps.peer), so the
// declaration cannot drift from the calls.
type module struct {
	peers    []string
	roles    Role
	register func(s grpc.ServiceRegistrar, d *deps) error
	// http, when set, registers the service's HTTP/JSON bindings: a process
	// running it serves them on server.http_addr (pkg/gateway).
	http []gateway.Routes
	// noFallback says its callers have nothing to serve without it, so they
	// call it without a circuit breaker (server.Dial).
	noFallback bool
}

var modules = map[string]module{
	Routing: {
		peers: []string{RecoCenter, Recall},
		// The log takes readers' actions (TrackService) on the public port.
		roles: LogRole,
		register: func(s grpc.ServiceRegistrar, d *deps) error {
			reporter, err := track.New(d.cfg.Track, d.stores.Log, d.reg)
			if err != nil {
				return err
			}
			trackv1.RegisterTrackServiceServer(s, track.NewServer(reporter))
			srv, err := routing.New(d.cfg.Routing, routing.Ports{
				Feed:    recocenter.NewClient(d.peer(RecoCenter)),
				Similar: recall.NewClient(d.peer(Recall)),
			}, d.logger(Routing), d.reg)
			if err != nil {
				return err
			}
			d.background(srv.WatchStrategies)
			userreco.RegisterUserRecommendServer(s, srv)
			return nil
		},
		http: []gateway.Routes{userreco.RegisterUserRecommendHandler, gateway.Actions},
	},
	RecoCenter: {
		peers:      []string{Cache, Recall, Sort},
		noFallback: true,
		roles:      TablesRole | SetsRole | LogRole,
		register: func(s grpc.ServiceRegistrar, d *deps) error {
			served := recocenter.NewServed(d.stores.Log, d.stores.Tables, d.stores.Sets, d.cfg.RecoCenter.SeenTTL, d.logger(RecoCenter))
			d.background(served.Apply)
			d.background(served.ApplySeen)
			center, err := recocenter.New(d.cfg.RecoCenter, recocenter.Ports{
				Cache:   cache.NewClient(d.peer(Cache)),
				Recall:  recall.NewClient(d.peer(Recall)),
				Sort:    sort.NewClient(d.peer(Sort)),
				Popular: recall.NewPopular(d.stores.Sets),
				History: d.stores.Tables,
				Claims:  d.stores.Sets,
				Served:  served,
			}, d.logger(RecoCenter), d.reg)
			if err != nil {
				return err
			}
			d.background(center.SyncFallback)
			recocenterv1.RegisterRecoCenterServiceServer(s, recocenter.NewServer(center))
			return nil
		},
	},
	Recall: {
		roles: TablesRole | SetsRole,
		register: func(s grpc.ServiceRegistrar, d *deps) error {
			r, err := recall.New(d.cfg.Recall, recall.Stores{
				Sets:       d.stores.Tables,
				Lists:      d.stores.Sets,
				Similarity: d.stores.Tables,
			}, d.logger(Recall), d.reg)
			if err != nil {
				return err
			}
			recallv1.RegisterRecallServiceServer(s, recall.NewServer(r))
			return nil
		},
	},
	Sort: {
		roles: TablesRole,
		register: func(s grpc.ServiceRegistrar, d *deps) error {
			r, err := sort.New(d.cfg.Sort, d.stores.Tables, d.logger(Sort), d.reg)
			if err != nil {
				return err
			}
			d.background(r.Watch)
			sortv1.RegisterSortServiceServer(s, sort.NewServer(r))
			return nil
		},
	},
	Nearline: {
		roles: TablesRole | SetsRole | LogRole,
		register: func(s grpc.ServiceRegistrar, d *deps) error {
			n, err := nearline.New(d.cfg.Nearline, d.cfg.Track, nearline.Stores{
				Log:    d.stores.Log,
				Sets:   d.stores.Sets,
				Tables: d.stores.Tables,
			}, d.logger(Nearline), d.reg)
			if err != nil {
				return err
			}
			d.background(n.Run)
			d.background(n.Cool)
			publisher := offline.NewPublisher(d.cfg.Sort.ModelDir, offline.Stores{Tables: d.stores.Tables, Sets: d.stores.Sets})
			adminv1.RegisterAdminServiceServer(s, nearline.NewAdmin(d.stores.Sets, d.cfg.Routing.StrategiesFile, publisher))
			return nil
		},
		http: []gateway.Routes{gateway.ABReport},
	},
	Cache: {
		roles: TablesRole | SetsRole,
		register: func(s grpc.ServiceRegistrar, d *deps) error {
			c, err := cache.New(d.cfg.Cache, d.cfg.RecoCenter.SeenTTL, cache.Stores{
				Tier1: d.stores.Sets,
				Tier2: d.stores.Tables,
			}, d.logger(Cache), d.reg)
			if err != nil {
				return err
			}
			cachev1.RegisterCacheServiceServer(s, cache.NewServer(c))
			return nil
		},
	},
}

// order is the registration order, also used to expand "all".
var order = []string{Routing, RecoCenter, Recall, Sort, Cache, Nearline}

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

// background is work a module runs for as long as the process serves (a file
// watcher); it returns when its context ends.
type background func(ctx context.Context) error
