package app

import (
	adminv1 "github.com/toutiao-reco/toutiao-reco/pkg/pb/reco/admin/v1"
	cachev1 "github.com/toutiao-reco/toutiao-reco/pkg/pb/reco/cache/v1"
	recallv1 "github.com/toutiao-reco/toutiao-reco/pkg/pb/reco/recall/v1"
	recocenterv1 "github.com/toutiao-reco/toutiao-reco/pkg/pb/reco/recocenter/v1"
	sortv1 "github.com/toutiao-reco/toutiao-reco/pkg/pb/reco/sort/v1"
	trackv1 "github.com/toutiao-reco/toutiao-reco/pkg/pb/reco/track/v1"
	"github.com/toutiao-reco/toutiao-reco/pkg/pb/userreco"
	"github.com/toutiao-reco/toutiao-reco/pkg/server"
)

// Operator is the caller of admin methods (AdminService): an operator's
// certificate (CN or spiffe URI SAN "operator") or token file named operator.
const Operator = "operator"

// policy is who may call what (DESIGN.md §10), enforced when
// server.authz.enabled is set: each method accepts only the callers that call
// it in the module table (a module's peers), the public API anyone. A caller
// is named by its module (routing, recocenter, …). A method missing here is
// refused to everyone; TestEveryMethodHasAPolicy fails until a new one is added.
var policy = server.Policy{
	userreco.UserRecommend_UserRecommend_FullMethodName:    {server.Anyone},
	userreco.UserRecommend_ArticleRecommend_FullMethodName: {server.Anyone},
	// The app reports what readers did on the public port (DESIGN §8).
	trackv1.TrackService_Report_FullMethodName: {server.Anyone},

	recocenterv1.RecoCenterService_Feed_FullMethodName: {Routing},

	// routing's article_recommend; the rest is reco-center's refresh.
	recallv1.RecallService_Similar_FullMethodName: {Routing},
	recallv1.RecallService_Recall_FullMethodName:  {RecoCenter},
	recallv1.RecallService_Consume_FullMethodName: {RecoCenter},

	sortv1.SortService_Rank_FullMethodName: {RecoCenter},

	// Only reco-center fills and serves a reader's queue: a Store from anyone
	// else would put articles in front of that reader.
	cachev1.CacheService_Take_FullMethodName:  {RecoCenter},
	cachev1.CacheService_Store_FullMethodName: {RecoCenter},

	// Publishing puts articles in every reader's new list; the A/B readout
	// is the experiment owners'.
	adminv1.AdminService_Publish_FullMethodName:  {Operator},
	adminv1.AdminService_AbReport_FullMethodName: {Operator},
}
