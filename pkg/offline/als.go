package offline

import (
	"context"
	"math"
	"math/rand/v2"

	"gonum.org/v1/gonum/mat"
)

// ALSConfig tunes implicit ALS.
type ALSConfig struct {
	Factors    int
	Iterations int
	// Alpha scales a click count into confidence: c = 1 + Alpha·clicks.
	Alpha float64
	// Lambda is the L2 regularisation of the factors.
	Lambda float64
	// CGSteps is the conjugate-gradient steps per user or item and sweep.
	CGSteps int
}

// interactions is an implicit-feedback matrix: per user, the articles clicked
// and how often (rows sorted by article, deduplicated).
type interactions struct {
	users, items int
	byUser       [][]entry
	byItem       [][]entry
}

type entry struct {
	idx   int32
	count float64
}

// alsModel holds the factors: row u of x is user u, row i of y is article i.
type alsModel struct {
	x, y *mat.Dense
}

// trainALS fits implicit-feedback ALS (Hu, Koren & Volinsky 2008): minimise
// Σ c_ui (p_ui - x_uᵀy_i)² + λ(Σ|x_u|² + Σ|y_i|²) over all user×article
// pairs, p = 1 where clicked, c = 1 + α·clicks. Each half-sweep solves every
// row's regularised least squares by a few conjugate-gradient steps warm-started
// from the last sweep (Takács, Pilászy & Tikk 2011), which costs O(f² + n_u·f)
// per user instead of the O(f³) of a direct solve. Rows are independent, so they
// are solved in parallel and the result does not depend on scheduling.
func trainALS(ctx context.Context, data *interactions, cfg ALSConfig, seed uint64, bar *bar) (*alsModel, error) {
	rng := rand.New(rand.NewPCG(seed, 0x5851f42d4c957f2d))
	f := cfg.Factors
	init := func(rows int) *mat.Dense {
		m := mat.NewDense(max(rows, 1), f, nil)
		for i := range rows {
			for j := range f {
				m.Set(i, j, 0.01*rng.NormFloat64())
			}
		}
		return m
	}
	m := &alsModel{x: init(data.users), y: init(data.items)}
	for range cfg.Iterations {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		solveCG(m.x, m.y, data.byUser, cfg)
		solveCG(m.y, m.x, data.byItem, cfg)
		bar.add(1)
	}
	return m, nil
}

// solveCG updates each row u of x (with interactions rows[u]) given the fixed
// factors y.
func solveCG(x, y *mat.Dense, rows [][]entry, cfg ALSConfig) {
	_, f := x.Dims()
	var yty mat.SymDense
	yty.SymOuterK(1, y.T())
	for i := range f {
		yty.SetSym(i, i, yty.At(i, i)+cfg.Lambda)
	}
	gram := mat.NewDense(f, f, nil)
	gram.Copy(&yty)
	parallelRows(len(rows), func(u int) {
		items := rows[u]
		xu := x.RawRowView(u)
		if len(items) == 0 {
			clear(xu) // nothing observed: the regularised solution is zero
			return
		}
		r := make([]float64, f)
		p := make([]float64, f)
		ap := make([]float64, f)
		// r = Yᵀ C p - (YᵀCY + λI) x, with YᵀCY = YᵀY + Yᵀ(C-I)Y.
		gemv(gram, xu, r)
		for i := range r {
			r[i] = -r[i]
		}
		for _, e := range items {
			yi := y.RawRowView(int(e.idx))
			conf := 1 + cfg.Alpha*e.count
			axpy(conf-(conf-1)*dot(yi, xu), yi, r)
		}
		copy(p, r)
		rsOld := dot(r, r)
		for range cfg.CGSteps {
			if rsOld < 1e-20 {
				break
			}
			gemv(gram, p, ap)
			for _, e := range items {
				yi := y.RawRowView(int(e.idx))
				axpy(cfg.Alpha*e.count*dot(yi, p), yi, ap)
			}
			alpha := rsOld / dot(p, ap)
			axpy(alpha, p, xu)
			axpy(-alpha, ap, r)
			rsNew := dot(r, r)
			for i := range p {
				p[i] = r[i] + rsNew/rsOld*p[i]
			}
			rsOld = rsNew
		}
	})
}

// gemv sets dst = a·v for a square matrix a.
func gemv(a *mat.Dense, v, dst []float64) {
	for i := range dst {
		dst[i] = dot(a.RawRowView(i), v)
	}
}

func dot(a, b []float64) float64 {
	b = b[:len(a)]
	var s float64
	for i, v := range a {
		s += v * b[i]
	}
	return s
}

func norm(v []float64) float64 { return math.Sqrt(dot(v, v)) }
