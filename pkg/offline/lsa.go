package offline

import (
	"math"
	"math/rand/v2"

	"gonum.org/v1/gonum/lapack/lapack64"
	"gonum.org/v1/gonum/mat"
)

// lsaOversample and lsaPower are the randomized SVD's extra sketch columns and
// power iterations (Halko, Martinsson & Tropp 2011): with text's slowly decaying
// spectrum two power iterations bring the top components close to exact.
const (
	lsaOversample = 10
	lsaPower      = 2
)

// rankTol is the weakest singular value, relative to the strongest, that lsa
// keeps a direction for: below it the direction is rounding noise (its
// coordinates would not reach the sixth decimal the store keeps), and dividing
// by its singular value would blow that noise up.
const rankTol = 1e-6

// lsa returns the coordinates of the given rows of m in their top-k latent
// semantic space, one row of k per input row, and the projection that maps a
// row to them: the rows projected on their k leading right singular vectors
// V_k (≈ U_k Σ_k of a truncated SVD). With center, the rows are first centred
// on their mean (a PCA), so coordinates say how an article differs from the
// others of its set. Columns beyond the rank of the rows are zero. The sketch is
// drawn from rng, so the result is deterministic.
//
// The coordinates are computed as (A − 1μᵀ)·V_k, the very map the projection
// keeps, rather than as the sketch's Q·U·Σ (which differs by what the sketch
// misses): an article published after the build then lands exactly where the
// build would have placed the same text.
func lsa(m *csr, rows []int, center bool, k int, rng *rand.Rand) (*mat.Dense, *projection) {
	out := mat.NewDense(max(1, len(rows)), k, nil)
	zero := &projection{k: k}
	if center {
		zero.shift = make([]float64, k)
	}
	l := min(k+lsaOversample, len(rows), m.cols)
	if len(rows) == 0 || l == 0 {
		return out, zero
	}
	var mu []float64
	if center {
		mu = make([]float64, m.cols)
		for _, r := range rows {
			for e := m.ptr[r]; e < m.ptr[r+1]; e++ {
				mu[m.col[e]] += m.val[e]
			}
		}
		for j := range mu {
			mu[j] /= float64(len(rows))
		}
	}
	omega := mat.NewDense(m.cols, l, nil)
	for i := range m.cols {
		for j := range l {
			omega.Set(i, j, rng.NormFloat64())
		}
	}
	y := mulRows(m, rows, shiftOf(mu, omega), omega)
	for range lsaPower {
		orth(y)
		z := mulRowsT(m, rows, mu, y)
		orth(z)
		y = mulRows(m, rows, shiftOf(mu, z), z)
	}
	orth(y)
	z := mulRowsT(m, rows, mu, y) // Bᵀ, with B = Qᵀ A
	var bbt mat.SymDense
	bbt.SymOuterK(1, z.T())
	var eig mat.EigenSym
	if !eig.Factorize(&bbt, true) {
		return out, zero
	}
	values := eig.Values(nil) // ascending
	var vecs mat.Dense
	eig.VectorsTo(&vecs)
	// The right singular vectors: V = Bᵀ · u_j / σ_j for the k largest
	// eigenvalues σ_j² of BBᵀ.
	w := mat.NewDense(l, k, nil)
	top := math.Sqrt(max(values[l-1], 0))
	for j := range min(k, l) {
		src := l - 1 - j
		sigma := math.Sqrt(max(values[src], 0))
		if sigma <= rankTol*top {
			break
		}
		for t := range l {
			w.Set(t, j, vecs.At(t, src)/sigma)
		}
	}
	var v mat.Dense
	v.Mul(z, w)
	shift := shiftOf(mu, &v)
	out = mulRows(m, rows, shift, &v)
	// Singular vectors have no sign of their own: make the coordinate of largest
	// magnitude positive in each column, so the axes read the same run to run.
	// Negating is exact, so the projection, flipped with them, still gives
	// these coordinates to the bit.
	for j := range k {
		col := mat.Col(nil, j, out)
		big := 0
		for i, x := range col {
			if math.Abs(x) > math.Abs(col[big]) {
				big = i
			}
		}
		if col[big] < 0 {
			for i := range col {
				col[i] = -col[i]
			}
			out.SetCol(j, col)
			for t := range m.cols {
				v.Set(t, j, -v.At(t, j))
			}
			if shift != nil {
				shift[j] = -shift[j]
			}
		}
	}
	return out, newProjection(&v, shift)
}

// shiftOf is μᵀd, what centring on μ takes off a row's product with d; nil
// (no centring) for a nil μ.
func shiftOf(mu []float64, d *mat.Dense) []float64 {
	if mu == nil {
		return nil
	}
	_, l := d.Dims()
	shift := make([]float64, l)
	for j, v := range mu {
		if v != 0 {
			axpy(v, d.RawRowView(j), shift)
		}
	}
	return shift
}

// mulRows returns (A·d) − 1·shiftᵀ for the selected rows A of m (shift nil:
// no centring).
func mulRows(m *csr, rows []int, shift []float64, d *mat.Dense) *mat.Dense {
	_, l := d.Dims()
	out := mat.NewDense(len(rows), l, nil)
	for i, r := range rows {
		project(out.RawRowView(i), m.col[m.ptr[r]:m.ptr[r+1]], m.val[m.ptr[r]:m.ptr[r+1]], d.RawRowView, shift)
	}
	return out
}

// project adds to dst the sparse row (cols, vals) times the matrix whose row j
// is row(j) (nil: a zero row), minus shift. The build's coordinates and a
// published article's go through this one loop, so the same row gives the
// same bits.
func project(dst []float64, cols []int32, vals []float64, row func(j int) []float64, shift []float64) {
	for e, j := range cols {
		if r := row(int(j)); r != nil {
			axpy(vals[e], r, dst)
		}
	}
	if shift != nil {
		axpy(-1, shift, dst)
	}
}

// mulRowsT returns (A - 1μᵀ)ᵀ·q for the selected rows A of m.
func mulRowsT(m *csr, rows []int, mu []float64, q *mat.Dense) *mat.Dense {
	_, l := q.Dims()
	out := mat.NewDense(m.cols, l, nil)
	colSum := make([]float64, l)
	for i, r := range rows {
		src := q.RawRowView(i)
		axpy(1, src, colSum)
		for e := m.ptr[r]; e < m.ptr[r+1]; e++ {
			axpy(m.val[e], src, out.RawRowView(int(m.col[e])))
		}
	}
	for j, v := range mu {
		if v != 0 {
			axpy(-v, colSum, out.RawRowView(j))
		}
	}
	return out
}

// orth replaces the columns of a (rows >= cols) by an orthonormal basis of their
// span: a thin QR through LAPACK's Geqrf and Orgqr.
func orth(a *mat.Dense) {
	raw := a.RawMatrix()
	tau := make([]float64, raw.Cols)
	work := make([]float64, 1)
	lapack64.Geqrf(raw, tau, work, -1)
	work = make([]float64, int(work[0]))
	lapack64.Geqrf(raw, tau, work, len(work))
	lapack64.Orgqr(raw, tau, work, -1)
	if need := int(work[0]); need > len(work) {
		work = make([]float64, need)
	}
	lapack64.Orgqr(raw, tau, work, len(work))
}

func axpy(alpha float64, x, y []float64) {
	y = y[:len(x)]
	for i, v := range x {
		y[i] += alpha * v
	}
}
