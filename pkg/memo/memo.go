// Package memo remembers values read from a store for a while.
package memo

import (
	"sync"
	"time"
)

// Memo remembers values read from the tables for a while, so that a busy
// caller does not pay a round trip per request for what changes rarely (an
// article's similar articles: a build or a publish) or what its own process
// writes (a reader's profile). It holds at most size entries and forgets
// everything when full: a simple bound, and the entries come back as they
// are needed. It is safe for concurrent use.
type Memo[K comparable, V any] struct {
	ttl  time.Duration
	size int
	now  func() time.Time

	mu sync.RWMutex
	m  map[K]entry[V]
}

type entry[V any] struct {
	v  V
	at time.Time
}

// New returns a memo keeping each value ttl, at most size of them.
func New[K comparable, V any](ttl time.Duration, size int) *Memo[K, V] {
	return &Memo[K, V]{ttl: ttl, size: size, now: time.Now, m: map[K]entry[V]{}}
}

// Get returns k's value unless it is unknown or older than the ttl.
func (m *Memo[K, V]) Get(k K) (V, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	e, ok := m.m[k]
	if !ok || m.now().Sub(e.at) > m.ttl {
		var zero V
		return zero, false
	}
	return e.v, true
}

// Put remembers v as k's value.
func (m *Memo[K, V]) Put(k K, v V) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.m) >= m.size {
		clear(m.m)
	}
	m.m[k] = entry[V]{v: v, at: m.now()}
}

// Forget drops k: its stored value may have changed under the memo.
func (m *Memo[K, V]) Forget(k K) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.m, k)
}
