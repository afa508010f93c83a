// Package dns is mailhook's DNS: one stub resolver with a per-lookup
// timeout and a TTL-respecting cache, shared by the stages that need DNS
// (ingest/auth for SPF, DKIM and DMARC; deliver/relay for MX and address
// lookups). Package dnstest beside it is the loopback DNS server tests
// use.
package dns
