//go:build race

package store

// raceEnabled lets long randomized tests run fewer steps under the race
// detector, which slows them several times over.
const raceEnabled = true
