//go:build race

package offline

// raceDetector is set under -race, which slows the single-goroutine training
// loops about fifteenfold; tests then train fewer epochs.
const raceDetector = true
