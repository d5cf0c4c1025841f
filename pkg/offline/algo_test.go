package offline

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"gonum.org/v1/gonum/mat"
)

// randomCSR is a sparse non-negative matrix with a low-rank structure plus
// noise, like TF-IDF rows of a few topics.
func randomCSR(rows, cols int, rng *rand.Rand) *csr {
	m := &csr{rows: rows, cols: cols, ptr: []int{0}}
	for r := range rows {
		topic := r % 4
		for c := range cols {
			p := 0.02
			if c%4 == topic {
				p = 0.6
			}
			if rng.Float64() < p {
				m.col = append(m.col, int32(c))
				m.val = append(m.val, rng.Float64())
			}
		}
		m.ptr = append(m.ptr, len(m.col))
	}
	return m
}

func dense(m *csr, rows []int) *mat.Dense {
	d := mat.NewDense(len(rows), m.cols, nil)
	for i, r := range rows {
		for e := m.ptr[r]; e < m.ptr[r+1]; e++ {
			d.Set(i, int(m.col[e]), m.val[e])
		}
	}
	return d
}

// TestLSAMatchesAnExactSVD compares the randomized projection with gonum's
// exact SVD: the Gram matrix of the coordinates, U_k Σ_k² U_kᵀ, has no sign
// ambiguity.
func TestLSAMatchesAnExactSVD(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	m := randomCSR(120, 80, rng)
	rows := make([]int, 120)
	for i := range rows {
		rows[i] = i
	}
	for _, center := range []bool{false, true} {
		const k = 4
		got, _ := lsa(m, rows, center, k, rng)
		a := dense(m, rows)
		if center {
			for j := range m.cols {
				col := mat.Col(nil, j, a)
				var mean float64
				for _, v := range col {
					mean += v
				}
				mean /= float64(len(col))
				for i := range col {
					col[i] -= mean
				}
				a.SetCol(j, col)
			}
		}
		var svd mat.SVD
		if !svd.Factorize(a, mat.SVDThin) {
			t.Fatal("exact SVD failed")
		}
		var u mat.Dense
		svd.UTo(&u)
		s := svd.Values(nil)
		want := mat.NewDense(len(rows), k, nil)
		for j := range k {
			for i := range rows {
				want.Set(i, j, u.At(i, j)*s[j])
			}
		}
		// A randomized SVD is approximate: singular values within 2%, the
		// Gram matrix within 5% (Frobenius).
		for j := range k {
			if got := norm(mat.Col(nil, j, got)); math.Abs(got-s[j]) > 0.02*s[j] {
				t.Errorf("center=%v: singular value %d = %.4f, exact %.4f", center, j, got, s[j])
			}
		}
		var gotGram, wantGram, diff mat.Dense
		gotGram.Mul(got, got.T())
		wantGram.Mul(want, want.T())
		diff.Sub(&gotGram, &wantGram)
		if rel := mat.Norm(&diff, 2) / mat.Norm(&wantGram, 2); rel > 0.05 {
			t.Errorf("center=%v: the top-%d projection is %.3f off the exact SVD's", center, k, rel)
		}
	}
}

func TestLSAOfFewRows(t *testing.T) {
	m := randomCSR(3, 30, rand.New(rand.NewPCG(3, 3)))
	got, _ := lsa(m, []int{0, 1, 2}, true, 9, rand.New(rand.NewPCG(1, 1)))
	if r, c := got.Dims(); r != 3 || c != 9 {
		t.Fatalf("dims %d×%d", r, c)
	}
	for j := 3; j < 9; j++ {
		for i := range 3 {
			if got.At(i, j) != 0 {
				t.Errorf("column %d beyond the rank is not zero", j)
			}
		}
	}
}

// TestALSSolvesTheNormalEquations: with as many conjugate-gradient steps as
// factors, a half-sweep gives each user the exact minimiser of its
// regularised, confidence-weighted least squares.
func TestALSSolvesTheNormalEquations(t *testing.T) {
	const users, items, f = 6, 15, 5
	rng := rand.New(rand.NewPCG(4, 4))
	cfg := ALSConfig{Factors: f, Alpha: 10, Lambda: 0.3, CGSteps: 3 * f}
	x, y := mat.NewDense(users, f, nil), mat.NewDense(items, f, nil)
	for i := range items {
		for j := range f {
			y.Set(i, j, rng.NormFloat64())
		}
	}
	rows := make([][]entry, users)
	for u := range users {
		for i := range items {
			if rng.Float64() < 0.4 {
				rows[u] = append(rows[u], entry{int32(i), float64(1 + rng.IntN(3))})
			}
		}
	}
	solveCG(x, y, rows, cfg)
	for u := range users {
		// (YᵀC_uY + λI) x = YᵀC_u p, solved directly.
		a := mat.NewDense(f, f, nil)
		bv := mat.NewVecDense(f, nil)
		for i := range items {
			conf, pref := 1.0, 0.0
			for _, e := range rows[u] {
				if int(e.idx) == i {
					conf, pref = 1+cfg.Alpha*e.count, 1
				}
			}
			yi := y.RawRowView(i)
			for r := range f {
				bv.SetVec(r, bv.AtVec(r)+conf*pref*yi[r])
				for c := range f {
					a.Set(r, c, a.At(r, c)+conf*yi[r]*yi[c])
				}
			}
		}
		for r := range f {
			a.Set(r, r, a.At(r, r)+cfg.Lambda)
		}
		var want mat.VecDense
		if err := want.SolveVec(a, bv); err != nil {
			t.Fatal(err)
		}
		for r := range f {
			if math.Abs(x.At(u, r)-want.AtVec(r)) > 1e-6 {
				t.Fatalf("user %d: CG gives %v, the direct solve %v", u, x.RawRowView(u), want.RawVector().Data)
			}
		}
	}
}

// TestALSRecommendsWithinTheTasteGroup: two groups of users each click their
// own half of the items; nearly every user's best unclicked item is of the
// group's half.
func TestALSRecommendsWithinTheTasteGroup(t *testing.T) {
	const users, items = 60, 20
	rng := rand.New(rand.NewPCG(4, 4))
	in := &interactions{users: users, items: items, byUser: make([][]entry, users), byItem: make([][]entry, items)}
	for u := range users {
		for i := range items {
			if (i < items/2) == (u < users/2) && rng.Float64() < 0.5 {
				in.byUser[u] = append(in.byUser[u], entry{int32(i), 1})
				in.byItem[i] = append(in.byItem[i], entry{int32(u), 1})
			}
		}
	}
	m, err := trainALS(context.Background(), in, ALSConfig{Factors: 4, Iterations: 10, Alpha: 10, Lambda: 0.1, CGSteps: 3}, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	wrong := 0
	for u := range users {
		best, bestScore := -1, math.Inf(-1)
		for i := range items {
			if slices.ContainsFunc(in.byUser[u], func(e entry) bool { return int(e.idx) == i }) {
				continue
			}
			if s := dot(m.x.RawRowView(u), m.y.RawRowView(i)); s > bestScore {
				best, bestScore = i, s
			}
		}
		if (best < items/2) != (u < users/2) {
			wrong++
		}
	}
	if wrong > users/20 {
		t.Errorf("%d of %d users' best item is of the other group", wrong, users)
	}
}

func TestTopKKeepsTheBestWithStableTies(t *testing.T) {
	top := topK{k: 3}
	for _, n := range []neighbour{{5, 0.1}, {4, 0.9}, {3, 0.5}, {2, 0.5}, {1, 0.05}, {0, 0.9}} {
		top.offer(n)
	}
	want := []neighbour{{0, 0.9}, {4, 0.9}, {2, 0.5}}
	if !slices.Equal(top.items, want) {
		t.Errorf("top = %v, want %v", top.items, want)
	}
}

func TestTokens(t *testing.T) {
	got := tokens(nil, "The 49ers' QB: Brady's 2019 season—is it over? a")
	want := []string{"49ers", "qb", "brady", "season"}
	if !slices.Equal(got, want) {
		t.Errorf("tokens = %q, want %q", got, want)
	}
}
