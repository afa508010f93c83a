//go:build !race

package loginlimittest

const raceEnabled = false
