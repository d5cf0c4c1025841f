package hbase

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/toutiao-reco/toutiao-reco/pkg/storage/hbase/internal/thrift2"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage/layout"
)

// ddlTimeout bounds one table operation whose context has no deadline: HBase
// creates and alters tables synchronously, through master procedures that take
// seconds.
const ddlTimeout = 2 * time.Minute

// forever is HBase's TTL of a family that never expires (HConstants.FOREVER).
const forever = math.MaxInt32

// Bootstrap creates the tables of layout.Schema in the default namespace, with
// each family's VERSIONS and TTL. A table that exists is brought in line instead:
// missing families are added and families whose VERSIONS or TTL differ are
// modified (other settings an operator chose, such as compression, are kept);
// families outside the schema are left alone. Running it again, or twice at
// once, is harmless.
func (t *tables) Bootstrap(ctx context.Context) error {
	for _, spec := range layout.Schema {
		if err := t.bootstrapTable(ctx, spec); err != nil {
			return fmt.Errorf("bootstrap table %s: %w", spec.Name, err)
		}
	}
	for _, spec := range layout.Schema {
		if err := t.awaitOnline(ctx, spec.Name); err != nil {
			return fmt.Errorf("bootstrap table %s: %w", spec.Name, err)
		}
	}
	return nil
}

// awaitOnline returns once a read of table succeeds. Right after HBase starts
// on existing data its regions open one by one, and the gateway's client retries
// a read of a region still in transition for seconds: a caller that serves
// traffic next (make test, a deployment's bootstrap job) should find the tables
// answering promptly, not its first requests stalled.
func (t *tables) awaitOnline(ctx context.Context, table string) error {
	one := int32(1)
	probe := &thrift2.TGet{Row: []byte("\x00bootstrap-probe"), MaxVersions: &one}
	for attempt := 0; ; attempt++ {
		callCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := t.get(callCtx, table, probe)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("not online: %w", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (t *tables) ddl(ctx context.Context, fn func(ctx context.Context, c *thrift2.THBaseServiceClient) error) error {
	return t.pool.call(ctx, ddlTimeout, true, fn)
}

func (t *tables) bootstrapTable(ctx context.Context, spec layout.TableSpec) error {
	name := &thrift2.TTableName{Qualifier: []byte(spec.Name)}
	var exists bool
	err := t.ddl(ctx, func(ctx context.Context, c *thrift2.THBaseServiceClient) (err error) {
		exists, err = c.TableExists(ctx, name)
		return err
	})
	if err != nil {
		return err
	}
	if !exists {
		desc := &thrift2.TTableDescriptor{TableName: name}
		for _, f := range spec.Families {
			desc.Columns = append(desc.Columns, familyDescriptor(f))
		}
		err := t.ddl(ctx, func(ctx context.Context, c *thrift2.THBaseServiceClient) error {
			return c.CreateTable(ctx, desc, nil)
		})
		if err == nil {
			return nil
		}
		if !strings.Contains(err.Error(), "TableExistsException") {
			return err
		}
		// Another Bootstrap created it in the meantime: check its families.
	}

	// Two Bootstraps can race to alter the same family; the loser's procedure
	// fails, and a fresh look at the table tells whether anything is left to do.
	for attempt := 1; ; attempt++ {
		pending, err := t.reconcileTable(ctx, name, spec)
		if err != nil {
			return err
		}
		if pending == nil {
			return nil
		}
		if attempt == 3 {
			return pending
		}
		select {
		case <-time.After(time.Duration(attempt) * 500 * time.Millisecond):
		case <-ctx.Done():
			return fmt.Errorf("%w (%v)", ctx.Err(), pending)
		}
	}
}

// reconcileTable adds the families of spec that the table lacks and fixes the
// VERSIONS and TTL of the others. It returns a non-nil pending error when an
// alteration failed (the caller looks again), and err when the table cannot be
// read.
func (t *tables) reconcileTable(ctx context.Context, name *thrift2.TTableName, spec layout.TableSpec) (pending, err error) {
	var desc *thrift2.TTableDescriptor
	err = t.ddl(ctx, func(ctx context.Context, c *thrift2.THBaseServiceClient) (err error) {
		desc, err = c.GetTableDescriptor(ctx, name)
		return err
	})
	if err != nil {
		return nil, err
	}
	have := make(map[string]*thrift2.TColumnFamilyDescriptor, len(desc.GetColumns()))
	for _, cf := range desc.GetColumns() {
		have[string(cf.Name)] = cf
	}
	for _, f := range spec.Families {
		cur, ok := have[f.Name]
		if !ok {
			err := t.ddl(ctx, func(ctx context.Context, c *thrift2.THBaseServiceClient) error {
				return c.AddColumnFamily(ctx, name, familyDescriptor(f))
			})
			if err != nil {
				if ctx.Err() != nil {
					return nil, err
				}
				pending = fmt.Errorf("add family %s: %w", f.Name, err)
			}
			continue
		}
		wantTTL := ttlSeconds(f)
		curTTL := int32(forever)
		if cur.TimeToLive != nil {
			curTTL = *cur.TimeToLive
		}
		if cur.GetMaxVersions() == f.MaxVersions && curTTL == wantTTL {
			continue
		}
		mod := modifiedFamily(cur, f)
		err := t.ddl(ctx, func(ctx context.Context, c *thrift2.THBaseServiceClient) error {
			return c.ModifyColumnFamily(ctx, name, mod)
		})
		if err != nil {
			if ctx.Err() != nil {
				return nil, err
			}
			pending = fmt.Errorf("modify family %s to VERSIONS %d TTL %d: %w", f.Name, f.MaxVersions, wantTTL, err)
		}
	}
	return pending, nil
}

// familyDescriptor is the descriptor of a new family f.
func familyDescriptor(f layout.Family) *thrift2.TColumnFamilyDescriptor {
	versions := f.MaxVersions
	d := &thrift2.TColumnFamilyDescriptor{Name: []byte(f.Name), MaxVersions: &versions}
	if ttl := ttlSeconds(f); ttl != forever {
		d.TimeToLive = &ttl
	}
	return d
}

// modifiedFamily is cur with f's VERSIONS and TTL, keeping the other typed
// settings an operator may have chosen (compression, bloom filter, block size,
// encoding...).
//
// The attributes and configuration maps are deliberately not sent back: the
// HBase 2.6 Thrift2 gateway builds each attribute key from the backing array of
// the request buffer (ByteBuffer.array()) rather than the key's own bytes, so an
// attribute sent through it is stored under a key holding the whole request
// frame. Round-tripping a descriptor that way grew one key to megabytes within a
// few calls, until the descriptor no longer fit in a frame and every later call
// on the table's schema was cut off.
func modifiedFamily(cur *thrift2.TColumnFamilyDescriptor, f layout.Family) *thrift2.TColumnFamilyDescriptor {
	mod := *cur
	mod.Attributes, mod.Configuration = nil, nil
	versions, ttl := f.MaxVersions, ttlSeconds(f)
	mod.MaxVersions, mod.TimeToLive = &versions, &ttl
	return &mod
}

// ttlSeconds is f's TTL as HBase holds it: whole seconds, FOREVER for none.
func ttlSeconds(f layout.Family) int32 {
	s := f.TTL / time.Second
	if s <= 0 || s >= forever {
		return forever
	}
	return int32(s)
}
