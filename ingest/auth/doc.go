// Package auth verifies who sent a message: SPF (RFC 7208), DKIM (RFC 6376,
// RFC 8463), DMARC (RFC 7489), and writes Authentication-Results (RFC 8601).
// Its verdicts are the types of package inbound (inbound.Auth), which every
// later stage reads without importing this package.
package auth
