package eventlog

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
)

// The embedded log's files, under EmbeddedConfig.Dir:
//
//	LOCK                     flock'd by the process that has the log open
//	<topic>/<base>.seg       segments: base is the offset of the segment's first
//	                         entry, 20 digits, so names sort in offset order
//	<topic>/<group>.pos      a group's committed position: the offset of the
//	                         next entry it reads, in decimal
//
// A segment is a sequence of records:
//
//	uint32 length of payload (big endian)
//	uint32 CRC-32C of payload
//	payload: uvarint len(key), key, value
//
// Offsets count entries from 0 over the topic's whole life; an entry's offset is
// its segment's base plus its index there. Only the newest segment is written:
// a torn or corrupt record there (a crash mid-write) and everything after it are
// truncated at open. Entries become visible to consumers only after their fsync,
// so no consumer ever sees one that could be lost.
const (
	segSuffix     = ".seg"
	posSuffix     = ".pos"
	lockName      = "LOCK"
	recHeaderSize = 8
	// maxPayload bounds a record's length field: a larger value is corruption,
	// not an allocation to attempt.
	maxPayload = MaxEntryBytes + binary.MaxVarintLen64
	// A writer commits at most this much per write + fsync, so one huge burst
	// does not starve the callers queued behind it for long.
	maxGroupBytes = 4 << 20
	// Appends waiting for the writer; beyond this Append blocks (or its ctx
	// ends), which is the backpressure.
	queueLen = 1024
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

type embeddedLog struct {
	cfg  EmbeddedConfig
	log  *zap.Logger
	lock *os.File

	mu     sync.Mutex
	topics map[string]*etopic
	closed bool
}

func openEmbedded(cfg EmbeddedConfig, log *zap.Logger) (*embeddedLog, error) {
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("eventlog: create %s: %w", cfg.Dir, err)
	}
	lock, err := lockDir(cfg.Dir)
	if err != nil {
		return nil, err
	}
	return &embeddedLog{cfg: cfg, log: log, lock: lock, topics: map[string]*etopic{}}, nil
}

// close stops every topic's writer once it has written what was queued, then
// releases the directory.
func (l *embeddedLog) close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	topics := l.topics
	l.mu.Unlock()
	var errs []error
	for _, t := range topics {
		errs = append(errs, t.close())
	}
	errs = append(errs, unlockDir(l.lock))
	return errors.Join(errs...)
}

// topic returns the open topic name, opening it (and recovering its newest
// segment) on first use.
func (l *embeddedLog) topic(name string) (*etopic, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, ErrClosed
	}
	if t := l.topics[name]; t != nil {
		return t, nil
	}
	t, err := openTopic(l, name)
	if err != nil {
		return nil, err
	}
	l.topics[name] = t
	return t, nil
}

// Append implements Log.
func (l *embeddedLog) Append(ctx context.Context, topic string, entries ...Entry) error {
	if ok, err := checkAppend(ctx, topic, entries); !ok {
		return err
	}
	t, err := l.topic(topic)
	if err != nil {
		return err
	}
	// Encoded here, in the caller's goroutine: the writer only concatenates, and
	// nothing of the caller's is referenced once Append returns.
	req := &appendReq{n: int64(len(entries)), done: make(chan error, 1)}
	for _, e := range entries {
		req.buf = appendRecord(req.buf, e)
	}
	select {
	case t.reqs <- req:
	case <-t.quit:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-req.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-t.wdone:
		// The writer has exited; it answered every request it took.
		select {
		case err := <-req.done:
			return err
		default:
			return ErrClosed
		}
	}
}

// Consume implements Log.
func (l *embeddedLog) Consume(ctx context.Context, topic, group string, handle func(context.Context, []Entry) error) error {
	if err := validName("topic", topic); err != nil {
		return err
	}
	if err := validName("group", group); err != nil {
		return err
	}
	t, err := l.topic(topic)
	if err != nil {
		return err
	}
	release, err := t.claim(group)
	if err != nil {
		return err
	}
	defer release()
	pos, _, err := t.readPos(group)
	if err != nil {
		return err
	}
	r := &reader{t: t, pos: pos}
	defer r.close()
	// handled is the position after the last batch handled; it is committed
	// when the consumer stops, and at most every commitEvery while it runs.
	handled, committed, last := pos, pos, time.Now()
	commit := func() error {
		if handled == committed {
			return nil
		}
		if err := t.commit(group, handled); err != nil {
			return err
		}
		committed, last = handled, time.Now()
		return nil
	}
	timer := time.NewTimer(commitEvery)
	timer.Stop()
	defer timer.Stop()
	for {
		batch, wait, err := r.read(maxBatch)
		if err != nil {
			return err
		}
		if len(batch) == 0 {
			// Caught up: what is handled is committed once no more came for
			// what is left of commitEvery.
			var due <-chan time.Time
			if handled != committed {
				timer.Reset(commitEvery - time.Since(last))
				due = timer.C
			}
			select {
			case <-ctx.Done():
				return commit()
			case <-wait:
			case <-due:
				if err := commit(); err != nil {
					return err
				}
			}
			timer.Stop()
			continue
		}
		if !deliver(ctx, l.log, topic, group, batch, handle) {
			return commit()
		}
		handled = r.pos
		if ctx.Err() != nil {
			return commit()
		}
		if time.Since(last) >= commitEvery {
			if err := commit(); err != nil {
				return err
			}
		}
	}
}

// appendReq is one Append waiting for the writer.
type appendReq struct {
	buf  []byte // encoded records
	n    int64  // how many
	done chan error
}

// etopic is one open topic: its writer goroutine and what consumers need.
type etopic struct {
	l     *embeddedLog
	name  string
	dir   string
	reqs  chan *appendReq
	quit  chan struct{} // closed by close: the writer drains reqs and exits
	wdone chan struct{} // closed when the writer has exited

	mu        sync.Mutex
	bases     []int64       // base offsets of the segments, ascending; the last is written
	end       int64         // offset after the newest durable entry
	grow      chan struct{} // closed (and replaced) when end moves or the topic closes
	closed    bool
	consumers map[string]bool // groups consuming in this process

	// commitMu serialises commits with retention, so a group's first commit
	// and another group's retention pass cannot miss each other.
	commitMu sync.Mutex

	// The writer goroutine's own.
	active *os.File
	size   int64 // bytes in active
	failed error // a write or fsync failed: the topic takes no more appends
	buf    []byte
}

func openTopic(l *embeddedLog, name string) (*etopic, error) {
	dir := filepath.Join(l.cfg.Dir, name)
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		if err := os.Mkdir(dir, 0o755); err != nil {
			return nil, fmt.Errorf("eventlog: create topic %s: %w", dir, err)
		}
		if err := syncDir(l.cfg.Dir); err != nil {
			return nil, err
		}
	}
	t := &etopic{
		l: l, name: name, dir: dir,
		reqs: make(chan *appendReq, queueLen), quit: make(chan struct{}), wdone: make(chan struct{}),
		grow: make(chan struct{}), consumers: map[string]bool{},
	}
	names, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("eventlog: read topic %s: %w", dir, err)
	}
	for _, e := range names {
		n := e.Name()
		if strings.HasSuffix(n, posSuffix+".tmp") {
			// A commit that crashed before its rename: the old position stands.
			_ = os.Remove(filepath.Join(dir, n))
			continue
		}
		if !strings.HasSuffix(n, segSuffix) {
			continue
		}
		base, err := strconv.ParseInt(strings.TrimSuffix(n, segSuffix), 10, 64)
		if err != nil || base < 0 {
			return nil, fmt.Errorf("eventlog: %s is not a segment name (<offset>%s)", filepath.Join(dir, n), segSuffix)
		}
		t.bases = append(t.bases, base)
	}
	slices.Sort(t.bases)
	if len(t.bases) == 0 {
		f, err := createSegment(dir, 0)
		if err != nil {
			return nil, err
		}
		t.bases, t.active = []int64{0}, f
	} else {
		last := t.bases[len(t.bases)-1]
		path := segPath(dir, last)
		count, valid, err := recoverSegment(path, l.log)
		if err != nil {
			return nil, err
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return nil, fmt.Errorf("eventlog: open %s: %w", path, err)
		}
		t.active, t.size, t.end = f, valid, last+count
	}
	go t.run()
	return t, nil
}

// recoverSegment scans the segment at path and truncates a torn or corrupt tail:
// it returns how many entries the segment holds and its valid length.
func recoverSegment(path string, log *zap.Logger) (count, valid int64, err error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return 0, 0, fmt.Errorf("eventlog: open %s: %w", path, err)
	}
	defer func() { _ = f.Close() }() // a truncation is synced below: closing loses nothing
	st, err := f.Stat()
	if err != nil {
		return 0, 0, fmt.Errorf("eventlog: stat %s: %w", path, err)
	}
	br := bufio.NewReaderSize(f, 1<<16)
	var why error
	for {
		n, err := readRecord(br, nil)
		if err == io.EOF {
			break
		}
		if err != nil {
			if !errors.Is(err, errCorrupt) {
				return 0, 0, fmt.Errorf("eventlog: read %s: %w", path, err)
			}
			why = err
			break
		}
		count++
		valid += n
	}
	if valid < st.Size() {
		log.Warn("eventlog: truncating a torn or corrupt tail (a write cut short by a crash; it was never acknowledged)",
			zap.String("segment", path), zap.Int64("valid_bytes", valid), zap.Int64("dropped_bytes", st.Size()-valid),
			zap.NamedError("reason", why))
		if err := f.Truncate(valid); err != nil {
			return 0, 0, fmt.Errorf("eventlog: truncate %s: %w", path, err)
		}
		if err := f.Sync(); err != nil {
			return 0, 0, fmt.Errorf("eventlog: sync %s: %w", path, err)
		}
	}
	return count, valid, nil
}

// run is the topic's writer: it takes every Append waiting, writes them with
// one write and one fsync (group commit), then answers them all.
func (t *etopic) run() {
	defer close(t.wdone)
	var batch []*appendReq
	for {
		batch = batch[:0]
		select {
		case r := <-t.reqs:
			batch = append(batch, r)
		case <-t.quit:
			// Write what was queued before close, then stop.
			for {
				batch = batch[:0]
				size := 0
			drain:
				for size < maxGroupBytes {
					select {
					case r := <-t.reqs:
						batch = append(batch, r)
						size += len(r.buf)
					default:
						break drain
					}
				}
				if len(batch) == 0 {
					return
				}
				t.commitBatch(batch)
			}
		}
		size := len(batch[0].buf)
	more:
		for size < maxGroupBytes {
			select {
			case r := <-t.reqs:
				batch = append(batch, r)
				size += len(r.buf)
			default:
				break more
			}
		}
		t.commitBatch(batch)
	}
}

// commitBatch writes batch, fsyncs, publishes the new end and answers.
func (t *etopic) commitBatch(batch []*appendReq) {
	err := t.write(batch)
	for _, r := range batch {
		r.done <- err
	}
}

func (t *etopic) write(batch []*appendReq) error {
	if t.failed != nil {
		return t.failed
	}
	if t.size >= t.l.cfg.SegmentBytes {
		if err := t.rotate(); err != nil {
			// Nothing was written; the old segment stays the active one.
			return fmt.Errorf("eventlog: topic %s: %w", t.name, err)
		}
	}
	t.buf = t.buf[:0]
	var n int64
	for _, r := range batch {
		t.buf = append(t.buf, r.buf...)
		n += r.n
	}
	if _, err := t.active.Write(t.buf); err != nil {
		// A partial write is cut off again; either way the topic stops taking
		// appends: after a failed write or fsync the file's state is not known.
		_ = t.active.Truncate(t.size)
		t.failed = fmt.Errorf("eventlog: topic %s: write failed, the log takes no more appends until restarted: %w", t.name, err)
		t.l.log.Error("eventlog: write failed", zap.String("topic", t.name), zap.Error(err))
		return t.failed
	}
	if err := t.active.Sync(); err != nil {
		t.failed = fmt.Errorf("eventlog: topic %s: fsync failed, the log takes no more appends until restarted: %w", t.name, err)
		t.l.log.Error("eventlog: fsync failed", zap.String("topic", t.name), zap.Error(err))
		return t.failed
	}
	t.size += int64(len(t.buf))
	if cap(t.buf) > maxGroupBytes*2 {
		t.buf = nil // do not keep a burst's buffer forever
	}
	t.mu.Lock()
	t.end += n
	close(t.grow)
	t.grow = make(chan struct{})
	t.mu.Unlock()
	return nil
}

// rotate starts a new segment at the current end. The old one was fsync'd by
// its last write.
func (t *etopic) rotate() error {
	f, err := createSegment(t.dir, t.end)
	if err != nil {
		return err
	}
	if err := t.active.Close(); err != nil {
		t.l.log.Warn("eventlog: close segment", zap.String("topic", t.name), zap.Error(err))
	}
	t.active, t.size = f, 0
	t.mu.Lock()
	t.bases = append(t.bases, t.end)
	t.mu.Unlock()
	return nil
}

func (t *etopic) close() error {
	close(t.quit)
	<-t.wdone
	t.mu.Lock()
	t.closed = true
	close(t.grow) // wakes consumers, which then see closed
	t.grow = make(chan struct{})
	t.mu.Unlock()
	if err := t.active.Close(); err != nil {
		return fmt.Errorf("eventlog: close topic %s: %w", t.name, err)
	}
	return nil
}

// claim reserves group for one Consume.
func (t *etopic) claim(group string) (release func(), err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.consumers[group] {
		return nil, fmt.Errorf("%w (topic %q, group %q)", ErrConsumerActive, t.name, group)
	}
	t.consumers[group] = true
	return func() {
		t.mu.Lock()
		delete(t.consumers, group)
		t.mu.Unlock()
	}, nil
}

func (t *etopic) posPath(group string) string { return filepath.Join(t.dir, group+posSuffix) }

// readPos returns group's committed position (0 and false if it never
// committed).
func (t *etopic) readPos(group string) (int64, bool, error) {
	b, err := os.ReadFile(t.posPath(group))
	if errors.Is(err, os.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("eventlog: read position: %w", err)
	}
	pos, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || pos < 0 {
		return 0, false, fmt.Errorf("eventlog: %s does not hold a position: %q", t.posPath(group), b)
	}
	return pos, true, nil
}

// commit stores group's position atomically (temp file, fsync, rename, fsync of
// the directory), then deletes the segments every committed group is past.
func (t *etopic) commit(group string, pos int64) error {
	t.commitMu.Lock()
	defer t.commitMu.Unlock()
	path := t.posPath(group)
	tmp := path + ".tmp"
	if err := writeFileSync(tmp, []byte(strconv.FormatInt(pos, 10)+"\n")); err != nil {
		return fmt.Errorf("eventlog: commit %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("eventlog: commit %s: %w", path, err)
	}
	if err := syncDir(t.dir); err != nil {
		return err
	}
	t.retain()
	return nil
}

// retain deletes the sealed segments that every group with a position file is
// past. A failure only leaves files behind for the next pass.
func (t *etopic) retain() {
	files, err := os.ReadDir(t.dir)
	if err != nil {
		return
	}
	least, found := int64(-1), false
	for _, f := range files {
		g, ok := strings.CutSuffix(f.Name(), posSuffix)
		if !ok {
			continue
		}
		pos, ok, err := t.readPos(g)
		if err != nil || !ok {
			return // unreadable: keep everything rather than guess
		}
		if !found || pos < least {
			least, found = pos, true
		}
	}
	if !found {
		return
	}
	t.mu.Lock()
	var drop []int64
	// A segment ends where the next begins; the newest is never dropped.
	for len(t.bases) > 1 && t.bases[1] <= least {
		drop = append(drop, t.bases[0])
		t.bases = t.bases[1:]
	}
	t.mu.Unlock()
	for _, b := range drop {
		// A reader that has the file open keeps reading it.
		if err := os.Remove(segPath(t.dir, b)); err != nil {
			t.l.log.Warn("eventlog: delete segment", zap.String("topic", t.name), zap.Error(err))
		}
	}
}

// reader reads a topic's entries from pos on, one segment file at a time.
type reader struct {
	t    *etopic
	pos  int64 // offset of the next entry to read
	f    *os.File
	br   *bufio.Reader
	base int64 // base of f's segment
	next int64 // base of the segment after f's; -1 while f's is the newest
}

func (r *reader) close() {
	if r.f != nil {
		_ = r.f.Close() // read only: closing loses nothing
		r.f = nil
	}
}

// read returns up to max durable entries from r.pos on. With none, it returns
// a channel that is closed when there may be more.
func (r *reader) read(max int) ([]Entry, <-chan struct{}, error) {
	t := r.t
	t.mu.Lock()
	end, grow, closed := t.end, t.grow, t.closed
	bases := t.bases
	t.mu.Unlock()
	if closed {
		return nil, nil, ErrClosed
	}
	if r.pos > end {
		// A position past the data: the tail it pointed into is gone (the disk
		// lost fsync'd data). Continue with what comes next.
		t.l.log.Warn("eventlog: committed position past the end of the log; resuming at the end",
			zap.String("topic", t.name), zap.Int64("position", r.pos), zap.Int64("end", end))
		r.pos = end
	}
	if r.pos == end {
		return nil, grow, nil
	}
	var out []Entry
	for r.pos < end && len(out) < max {
		if r.f == nil || r.next >= 0 && r.pos >= r.next {
			if err := r.open(bases); err != nil {
				return nil, nil, err
			}
		}
		if r.next < 0 {
			if i, ok := slices.BinarySearch(bases, r.base); ok && i+1 < len(bases) {
				r.next = bases[i+1]
			}
		}
		if r.next >= 0 && r.pos >= r.next {
			continue
		}
		e := Entry{Topic: t.name, Offset: r.pos}
		if _, err := readRecord(r.br, &e); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, nil, fmt.Errorf("eventlog: topic %s: reading offset %d of segment %d: %w", t.name, r.pos, r.base, err)
		}
		out = append(out, e)
		r.pos++
	}
	return out, nil, nil
}

// open opens the segment holding r.pos and skips to it.
func (r *reader) open(bases []int64) error {
	r.close()
	if r.pos < bases[0] {
		// Deleted by retention: this group had not committed, so it did not
		// hold them back. It resumes at the oldest entry kept.
		if r.pos > 0 {
			r.t.l.log.Warn("eventlog: entries deleted before this group committed; resuming at the oldest kept",
				zap.String("topic", r.t.name), zap.Int64("position", r.pos), zap.Int64("oldest", bases[0]))
		}
		r.pos = bases[0]
	}
	i, found := slices.BinarySearch(bases, r.pos)
	if !found {
		i--
	}
	path := segPath(r.t.dir, bases[i])
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) && i+1 < len(bases) {
		// Deleted since the snapshot of bases: start over from the next one.
		r.pos = bases[i+1]
		return r.open(bases[i+1:])
	}
	if err != nil {
		return fmt.Errorf("eventlog: open %s: %w", path, err)
	}
	r.f, r.br, r.base, r.next = f, bufio.NewReaderSize(f, 1<<16), bases[i], -1
	if i+1 < len(bases) {
		r.next = bases[i+1]
	}
	for skip := r.pos - r.base; skip > 0; skip-- {
		if _, err := readRecord(r.br, nil); err != nil {
			return fmt.Errorf("eventlog: topic %s: seeking offset %d in %s: %w", r.t.name, r.pos, path, err)
		}
	}
	return nil
}

// errCorrupt marks a record that is torn (cut short) or fails its checksum.
var errCorrupt = errors.New("corrupt or torn record")

// appendRecord appends e's record to buf.
func appendRecord(buf []byte, e Entry) []byte {
	payload := binary.AppendUvarint(nil, uint64(len(e.Key)))
	n := len(payload) + len(e.Key) + len(e.Value)
	buf = slices.Grow(buf, recHeaderSize+n)
	start := len(buf)
	buf = binary.BigEndian.AppendUint32(buf, uint32(n))
	buf = binary.BigEndian.AppendUint32(buf, 0) // the checksum, below
	buf = append(buf, payload...)
	buf = append(buf, e.Key...)
	buf = append(buf, e.Value...)
	binary.BigEndian.PutUint32(buf[start+4:], crc32.Checksum(buf[start+recHeaderSize:], crcTable))
	return buf
}

// readRecord reads one record from br into e (or skips it, with e nil) and
// returns its size on disk. io.EOF means a clean end; errCorrupt a torn or
// damaged record.
func readRecord(br *bufio.Reader, e *Entry) (int64, error) {
	var h [recHeaderSize]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		if err == io.EOF {
			return 0, io.EOF
		}
		if err == io.ErrUnexpectedEOF {
			return 0, fmt.Errorf("%w: header cut short", errCorrupt)
		}
		return 0, err
	}
	n := binary.BigEndian.Uint32(h[:4])
	if n == 0 || n > maxPayload {
		return 0, fmt.Errorf("%w: length %d", errCorrupt, n)
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(br, payload); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return 0, fmt.Errorf("%w: payload cut short", errCorrupt)
		}
		return 0, err
	}
	if crc32.Checksum(payload, crcTable) != binary.BigEndian.Uint32(h[4:]) {
		return 0, fmt.Errorf("%w: checksum mismatch", errCorrupt)
	}
	klen, k := binary.Uvarint(payload)
	if k <= 0 || klen > uint64(len(payload)-k) {
		return 0, fmt.Errorf("%w: bad key length", errCorrupt)
	}
	if e != nil {
		key := payload[k : k+int(klen)]
		e.Key = string(key)
		e.Value = payload[k+int(klen):]
	}
	return recHeaderSize + int64(n), nil
}

func segPath(dir string, base int64) string {
	return filepath.Join(dir, fmt.Sprintf("%020d%s", base, segSuffix))
}

// createSegment creates the empty segment base and makes its name durable.
func createSegment(dir string, base int64) (*os.File, error) {
	path := segPath(dir, base)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, fmt.Errorf("eventlog: create segment: %w", err)
	}
	if err := syncDir(dir); err != nil {
		_ = f.Close() // the sync's error is the one to report
		return nil, err
	}
	return f, nil
}

func writeFileSync(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		_ = f.Close() // the error above is the one to report
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close() // the error above is the one to report
		return err
	}
	return f.Close()
}

// syncDir makes the directory's entries (a created, renamed or deleted file)
// durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("eventlog: sync %s: %w", dir, err)
	}
	defer func() { _ = d.Close() }() // opened only for its Sync, whose error is checked
	if err := d.Sync(); err != nil {
		return fmt.Errorf("eventlog: sync %s: %w", dir, err)
	}
	return nil
}
