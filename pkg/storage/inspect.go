package storage

import (
	"context"
	"fmt"
	"time"
)

// Tier1Contents is what tier 1 of a reader's cache for a channel holds.
type Tier1Contents struct {
	// IDs are the ids the next pops would serve, in the order they would
	// serve them: all of them, or the first n asked for.
	IDs []int64
	// Count is how many ids the tier holds.
	Count int
	// TTL is what the tier has left to live: 0 when it holds nothing or never
	// expires.
	TTL time.Duration
}

// SeenContents is what a reader's seen set for a channel holds: the copy of
// their history that the serve-time claim checks (ServedClaims).
type SeenContents struct {
	// Seeded says whether the set is a copy of history (Seed marked it): a
	// claim against a set that is not is ErrUnseeded, and the next refresh
	// seeds it from History.
	Seeded bool
	// Count is how many ids the set holds.
	Count int
	// IDs are the ids it holds, lowest first: all of them, or the n lowest
	// asked for.
	IDs []int64
	// TTL is what the set has left to live: 0 when it does not exist or never
	// expires.
	TTL time.Duration
}

// WaitInspector looks into the wait queues (WaitQueue) without taking from
// them.
type WaitInspector interface {
	// PeekWait returns tier 2 of the reader's cache for channel, head first,
	// as the next Take would find it, changing nothing.
	PeekWait(ctx context.Context, user string, channel int32) ([]int64, error)
}

// CacheInspector looks into tier 1 (Tier1) and the seen sets (ServedClaims)
// without popping, claiming or touching an expiry.
type CacheInspector interface {
	// PeekTier1 returns the first n ids tier 1 of the reader's cache for
	// channel would pop (n <= 0: none; the count and expiry all the same).
	PeekTier1(ctx context.Context, user string, channel int32, n int) (Tier1Contents, error)
	// PeekSeen returns what the reader's seen set for channel holds, its n
	// lowest ids listed (n <= 0: none). An absent set reads as empty and not
	// seeded; reading it seeds nothing.
	PeekSeen(ctx context.Context, user string, channel int32, n int) (SeenContents, error)
}

// Inspector is the operator's look inside one reader's feed (`reco admin
// inspect`): their cache's two tiers and their seen sets, read-only. History
// and Features answer the rest.
type Inspector interface {
	WaitInspector
	CacheInspector
}

// NewInspector returns the Inspector of a backend's two roles, as the backends
// open them: every one of them offers the peeks (the contract suite in
// storagetest pins it), so an error means tables or sets are some other
// implementation (a test's fake).
func NewInspector(tables Tables, sets Sets) (Inspector, error) {
	w, ok := tables.(WaitInspector)
	if !ok {
		return nil, fmt.Errorf("tables %T cannot be inspected", tables)
	}
	c, ok := sets.(CacheInspector)
	if !ok {
		return nil, fmt.Errorf("sets %T cannot be inspected", sets)
	}
	return inspector{w, c}, nil
}

// inspector joins the peeks of the two roles.
type inspector struct {
	WaitInspector
	CacheInspector
}
