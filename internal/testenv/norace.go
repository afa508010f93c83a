//go:build !race

package testenv

// Race reports whether the binary was built with the race detector. Under
// it sync.Pool drops some of what is put back, and code runs several
// times slower, so allocation counts and hash costs differ.
const Race = false
