package hbase

import (
	"context"
	"fmt"

	"github.com/toutiao-reco/toutiao-reco/pkg/storage/layout"
)

// PeekQueue reads the queue in c with one Get: unlike Take, it never writes
// back, so a malformed queue reads as empty and stays as it is.
func (t *tables) PeekQueue(ctx context.Context, c layout.Cell) ([]int64, error) {
	r, err := resolveCell(c)
	if err != nil {
		return nil, err
	}
	v, ts, found, err := t.latest(ctx, r)
	if err != nil {
		return nil, fmt.Errorf("peek at %s: %w", r, err)
	}
	if !found {
		return nil, nil
	}
	queue, _ := t.bad.IDs(c, ts, v)
	return queue, nil
}
