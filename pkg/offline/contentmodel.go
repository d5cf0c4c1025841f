package offline

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
	"os"
	"path/filepath"
	"slices"
	"time"

	"gonum.org/v1/gonum/mat"

	"github.com/toutiao-reco/toutiao-reco/pkg/dataset"
	"github.com/toutiao-reco/toutiao-reco/pkg/feed"
	"github.com/toutiao-reco/toutiao-reco/pkg/model"
)

// ContentFile is the content model's name in the model directory: what a
// build knew of its articles' text, so that an article published after it
// gets its features and similar articles the way the build would have given
// them (DESIGN §8, "New articles"; publish.go).
//
// # Format
//
// Binary, little-endian, read whole and checked strictly: a file this
// version of reco did not write (another magic or format number, other
// dimensions, another channel table, a bad checksum, a count beyond the
// file, a term out of order, a non-finite number, trailing bytes) is
// refused, never half used.
//
//	magic       8 bytes "RECOCMOD"
//	format      uint32, contentFormat
//	built       int64, the build's Options.Version in Unix ms
//	similarK    uint32, neighbours kept per article
//	setSize     uint32, the bound of a channel's new list
//	dims        3 × uint32: keyword weights, topic dims, global dims (10, 9, 91)
//	channels    uint32 n, n × (int32 id, string category): dataset.Channels()
//	vocabulary  uint32 n, n × string (strictly ascending), n × float64 idf
//	global      projection (uncentred)
//	per channel uint32 n, n × (int32 channel (ascending), projection (centred),
//	            uint32 m, m × (int64 article id, 91 × int32 global coordinates
//	            in millionths))
//	checksum    uint32, CRC-32 (IEEE) of every byte before it
//
//	string      uint32 length, bytes
//	projection  uint32 k, uint8 centred, k × float64 shift if centred,
//	            uint32 rows, rows × (uint32 term (ascending), k × float64)
//
// A projection's rows are those of V that are not zero (a channel's topic
// space has rows only for the words its articles use). The articles' global
// coordinates are the stored features, which are rounded to 6 decimals, so
// millionths hold them exactly in half the bytes of a float64.
const ContentFile = "content.bin"

const (
	contentMagic  = "RECOCMOD"
	contentFormat = 1
	micro         = 1e6
)

// projection is a linear map from a TF-IDF row to LSA coordinates,
// (row − μ)·V: what lsa placed its rows by.
type projection struct {
	k int
	// terms are the vocabulary indices of V's rows that are not zero,
	// ascending; v holds those rows, k each.
	terms []int32
	v     []float64
	shift []float64 // μᵀV; nil when uncentred
}

// newProjection keeps the rows of v (one per term) that are not zero.
func newProjection(v *mat.Dense, shift []float64) *projection {
	rows, k := v.Dims()
	p := &projection{k: k, shift: shift}
	for j := range rows {
		r := v.RawRowView(j)
		if slices.ContainsFunc(r, func(x float64) bool { return x != 0 }) {
			p.terms = append(p.terms, int32(j))
			p.v = append(p.v, r...)
		}
	}
	return p
}

// row is V's row of term j, nil when it is zero.
func (p *projection) row(j int) []float64 {
	i, ok := slices.BinarySearch(p.terms, int32(j))
	if !ok {
		return nil
	}
	return p.v[i*p.k : (i+1)*p.k]
}

// apply is the coordinates of the TF-IDF row (cols, vals).
func (p *projection) apply(cols []int32, vals []float64) []float64 {
	out := make([]float64, p.k)
	project(out, cols, vals, p.row, p.shift)
	return out
}

// contentModel is a build's content model, read from ContentFile.
type contentModel struct {
	built    time.Time
	similarK int
	setSize  int
	vocab    vocabulary
	global   *projection
	channels map[int32]*channelContent
}

// channelContent is what the build knew of one channel's articles.
type channelContent struct {
	topic *projection
	ids   []int64
	// units holds each article's unit vector (globalDims each): what
	// similarity is the cosine of.
	units []float64
}

func (c *channelContent) unit(i int) []float64 { return c.units[i*globalDims : (i+1)*globalDims] }

// encodeContentModel lays out the content model of a build's corpus.
func encodeContentModel(c *corpus, opts Options) ([]byte, error) {
	e := &encoder{}
	e.b = append(e.b, contentMagic...)
	e.u32(contentFormat)
	e.u64(uint64(opts.Version.UnixMilli()))
	e.u32(uint32(opts.SimilarK))
	e.u32(uint32(opts.SetSize))
	e.u32(model.KeywordWeightsLen)
	e.u32(topicDims)
	e.u32(globalDims)
	chs := dataset.Channels()
	e.u32(uint32(len(chs)))
	for _, ch := range chs {
		e.u32(uint32(ch.Channel))
		e.str(ch.Category)
	}
	e.u32(uint32(len(c.vocab.terms)))
	for _, w := range c.vocab.terms {
		e.str(w)
	}
	for _, v := range c.vocab.idf {
		e.f64(v)
	}
	e.projection(c.global)
	var channels []int32
	for ch := range c.topics {
		channels = append(channels, ch)
	}
	slices.Sort(channels)
	e.u32(uint32(len(channels)))
	for _, ch := range channels {
		e.u32(uint32(ch))
		e.projection(c.topics[ch])
		members := c.byChannel[ch]
		e.u32(uint32(len(members)))
		for _, a := range members {
			e.u64(uint64(c.ids[a]))
			for _, v := range c.features[a][globalStart:] {
				m := math.Round(v * micro)
				if math.Abs(m) > math.MaxInt32 {
					return nil, fmt.Errorf("content model: article %s coordinate %v is out of range", dataset.FormatArticleID(c.ids[a]), v)
				}
				e.u32(uint32(int32(m)))
			}
		}
	}
	e.u32(crc32.ChecksumIEEE(e.b))
	return e.b, nil
}

// writeContentModel writes the build's content model into its model
// directory, whole or not at all.
func (b *build) writeContentModel() error {
	data, err := encodeContentModel(b.c, b.opts)
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(b.opts.ModelDir, ContentFile), data)
}

// readContentModel reads and checks path.
func readContentModel(path string) (*contentModel, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrContentModel, err)
	}
	cm, err := decodeContentModel(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrContentModel, path, err)
	}
	return cm, nil
}

// decodeContentModel parses what encodeContentModel laid out.
func decodeContentModel(data []byte) (*contentModel, error) {
	if len(data) < len(contentMagic)+8 || string(data[:len(contentMagic)]) != contentMagic {
		return nil, fmt.Errorf("not a content model (no %q header)", contentMagic)
	}
	d := &decoder{b: data[:len(data)-4], off: len(contentMagic)}
	if f := d.u32(); f != contentFormat {
		return nil, fmt.Errorf("content model format %d; this reco reads format %d: rebuild", f, contentFormat)
	}
	if sum := binary.LittleEndian.Uint32(data[len(data)-4:]); sum != crc32.ChecksumIEEE(d.b) {
		return nil, fmt.Errorf("checksum mismatch: the file is damaged or truncated")
	}
	cm := &contentModel{channels: map[int32]*channelContent{}}
	cm.built = time.UnixMilli(int64(d.u64())).UTC()
	cm.similarK, cm.setSize = int(d.u32()), int(d.u32())
	if d.err == nil && (cm.similarK < 1 || cm.setSize < 1) {
		return nil, fmt.Errorf("similar K %d and new list size %d must be at least 1", cm.similarK, cm.setSize)
	}
	for _, want := range []uint32{model.KeywordWeightsLen, topicDims, globalDims} {
		if got := d.u32(); d.err == nil && got != want {
			return nil, fmt.Errorf("dimension %d, this reco uses %d: rebuild", got, want)
		}
	}
	chs := dataset.Channels()
	if n := d.count(8); d.err == nil && n != len(chs) {
		return nil, fmt.Errorf("the build's channel table has %d channels, this reco's %d: rebuild", n, len(chs))
	}
	for _, want := range chs {
		if id, name := int32(d.u32()), d.str(); d.err == nil && (id != want.Channel || name != want.Category) {
			return nil, fmt.Errorf("the build's channel %d is %q, this reco's %d is %q: rebuild", id, name, want.Channel, want.Category)
		}
	}
	n := d.count(4 + 8)
	v := vocabulary{terms: make([]string, 0, n), index: make(map[string]int32, n), idf: make([]float64, n)}
	for i := range n {
		w := d.str()
		if d.err == nil && (w == "" || (i > 0 && w <= v.terms[i-1])) {
			return nil, fmt.Errorf("vocabulary term %d %q is empty or out of order", i, w)
		}
		v.terms = append(v.terms, w)
		v.index[w] = int32(i)
	}
	for i := range v.idf {
		if v.idf[i] = d.f64(); d.err == nil && !(v.idf[i] > 0) {
			return nil, fmt.Errorf("idf of %q is %v, not positive", v.terms[i], v.idf[i])
		}
	}
	cm.vocab = v
	cm.global = d.projection(globalDims, false, n)
	nch := d.count(4 + 4 + 1 + 4 + 4)
	seen := map[int64]bool{}
	prev := int32(-1)
	for range nch {
		ch := int32(d.u32())
		if d.err == nil && (ch <= prev || ch >= feed.NumChannels) {
			return nil, fmt.Errorf("channel %d is out of order or beyond %d", ch, feed.NumChannels-1)
		}
		prev = ch
		cc := &channelContent{topic: d.projection(topicDims, true, n)}
		m := d.count(8 + 4*globalDims)
		cc.ids = make([]int64, m)
		cc.units = make([]float64, m*globalDims)
		coords := make([]float64, globalDims)
		for i := range m {
			cc.ids[i] = int64(d.u64())
			if d.err == nil && (cc.ids[i] <= 0 || seen[cc.ids[i]]) {
				return nil, fmt.Errorf("channel %d: article id %d is not positive or repeats", ch, cc.ids[i])
			}
			seen[cc.ids[i]] = true
			for j := range coords {
				coords[j] = float64(int32(d.u32())) / micro
			}
			setUnit(cc.unit(i), coords)
		}
		cm.channels[ch] = cc
	}
	if d.err != nil {
		return nil, d.err
	}
	if d.off != len(d.b) {
		return nil, fmt.Errorf("%d bytes after the last channel", len(d.b)-d.off)
	}
	return cm, nil
}

// encoder appends the content model's fields.
type encoder struct{ b []byte }

func (e *encoder) u32(v uint32)  { e.b = binary.LittleEndian.AppendUint32(e.b, v) }
func (e *encoder) u64(v uint64)  { e.b = binary.LittleEndian.AppendUint64(e.b, v) }
func (e *encoder) f64(v float64) { e.u64(math.Float64bits(v)) }

func (e *encoder) str(s string) {
	e.u32(uint32(len(s)))
	e.b = append(e.b, s...)
}

func (e *encoder) projection(p *projection) {
	e.u32(uint32(p.k))
	if p.shift == nil {
		e.b = append(e.b, 0)
	} else {
		e.b = append(e.b, 1)
		for _, v := range p.shift {
			e.f64(v)
		}
	}
	e.u32(uint32(len(p.terms)))
	for i, j := range p.terms {
		e.u32(uint32(j))
		for _, v := range p.v[i*p.k : (i+1)*p.k] {
			e.f64(v)
		}
	}
}

// decoder reads fields off a content model. The first failure sticks in err
// and every later read returns zero, so a caller checks err once, at the end
// or before trusting a value it decides on.
type decoder struct {
	b   []byte
	off int
	err error
}

func (d *decoder) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || n > len(d.b)-d.off {
		d.err = fmt.Errorf("truncated at byte %d (%d more wanted)", d.off, n)
		return nil
	}
	out := d.b[d.off : d.off+n]
	d.off += n
	return out
}

func (d *decoder) u32() uint32 {
	if b := d.take(4); b != nil {
		return binary.LittleEndian.Uint32(b)
	}
	return 0
}

func (d *decoder) u64() uint64 {
	if b := d.take(8); b != nil {
		return binary.LittleEndian.Uint64(b)
	}
	return 0
}

// f64 reads a float64 and refuses NaN and infinities.
func (d *decoder) f64() float64 {
	v := math.Float64frombits(d.u64())
	if d.err == nil && (math.IsNaN(v) || math.IsInf(v, 0)) {
		d.err = fmt.Errorf("non-finite number at byte %d", d.off-8)
		return 0
	}
	return v
}

func (d *decoder) str() string {
	return string(d.take(int(d.u32())))
}

// count reads a count of items at least minSize bytes each, refusing one the
// rest of the file cannot hold (so a damaged count allocates nothing).
func (d *decoder) count(minSize int) int {
	n := int(d.u32())
	if d.err == nil && n > (len(d.b)-d.off)/minSize {
		d.err = fmt.Errorf("count %d at byte %d exceeds the file", n, d.off-4)
		return 0
	}
	return n
}

// projection reads a projection of k columns over a vocabulary of terms
// terms, centred or not as the caller expects.
func (d *decoder) projection(k int, centred bool, terms int) *projection {
	if got := int(d.u32()); d.err == nil && got != k {
		d.err = fmt.Errorf("projection of %d dimensions at byte %d, want %d", got, d.off-4, k)
	}
	p := &projection{k: k}
	flag := d.take(1)
	if d.err == nil && (flag[0] > 1 || (flag[0] == 1) != centred) {
		d.err = fmt.Errorf("projection centring flag %d at byte %d, want centred=%v", flag[0], d.off-1, centred)
	}
	if d.err != nil {
		return p
	}
	if centred {
		p.shift = make([]float64, k)
		for i := range p.shift {
			p.shift[i] = d.f64()
		}
	}
	rows := d.count(4 + 8*k)
	p.terms = make([]int32, 0, rows)
	p.v = make([]float64, 0, rows*k)
	for range rows {
		j := int32(d.u32())
		if d.err == nil && (j < 0 || int(j) >= terms || (len(p.terms) > 0 && j <= p.terms[len(p.terms)-1])) {
			d.err = fmt.Errorf("projection row of term %d at byte %d is out of order or beyond the vocabulary", j, d.off-4)
		}
		p.terms = append(p.terms, j)
		for range k {
			p.v = append(p.v, d.f64())
		}
	}
	return p
}
