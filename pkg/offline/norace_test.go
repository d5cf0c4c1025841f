//go:build !race

package offline

const raceDetector = false
