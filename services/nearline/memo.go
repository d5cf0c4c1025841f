package nearline

import (
	"sync"
	"time"
)

// memo remembers values read from the tables for a while, so that the
// readers of a busy stream do not cost a round trip per action for what
// changes rarely (an article's similar articles: a build or a publish) or
// what this process itself writes (a reader's profile). It holds at most size
// entries and forgets everything when full: a simple bound, and the entries
// come back as they are needed.
type memo[K comparable, V any] struct {
	ttl  time.Duration
	size int
	now  func() time.Time

	mu sync.Mutex
	m  map[K]memoEntry[V]
}

type memoEntry[V any] struct {
	v  V
	at time.Time
}

func newMemo[K comparable, V any](ttl time.Duration, size int) *memo[K, V] {
	return &memo[K, V]{ttl: ttl, size: size, now: time.Now, m: map[K]memoEntry[V]{}}
}

func (m *memo[K, V]) get(k K) (V, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.m[k]
	if !ok || m.now().Sub(e.at) > m.ttl {
		var zero V
		return zero, false
	}
	return e.v, true
}

func (m *memo[K, V]) put(k K, v V) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.m) >= m.size {
		clear(m.m)
	}
	m.m[k] = memoEntry[V]{v: v, at: m.now()}
}

// forget drops k: its stored value may have changed under the memo.
func (m *memo[K, V]) forget(k K) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.m, k)
}
