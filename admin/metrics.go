package admin

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mailhook/mailhook/deliver"
)

// MetricsOptions configures NewMetrics.
type MetricsOptions struct {
	// Backend names the queue backend (embedded, redis), the "backend"
	// label of the queue gauges.
	Backend string
	// Stats returns the queue's counts; it is called once per scrape. Nil
	// leaves the queue gauges out.
	Stats func() (deliver.Stats, error)
	// Writer is the activity log's writer, whose dropped and panicked
	// records are counted; nil leaves those counters out.
	Writer *Writer
}

// Metrics holds mailhook's Prometheus metrics in their own registry (never
// the global one), with one method per event for the hooks in ingest, the
// delivery runner and the mailbox servers to call. A nil *Metrics is valid
// and records nothing, so callers need no checks.
type Metrics struct {
	reg *prometheus.Registry

	connections   prometheus.Counter
	accepted      *prometheus.CounterVec
	refused       *prometheus.CounterVec
	verify        *prometheus.CounterVec
	parseWarnings prometheus.Counter
	routeMatches  *prometheus.CounterVec
	attempts      *prometheus.CounterVec
	attemptTime   *prometheus.HistogramVec
	delivered     *prometheus.HistogramVec
	imapSessions  prometheus.Counter
	pop3Sessions  prometheus.Counter
	failedLogins  *prometheus.CounterVec
	spam          *prometheus.CounterVec
}

// Delivery latencies span seconds (a webhook) to a day (retries), attempt
// latencies milliseconds to the webhook timeout.
var (
	deliveredBuckets = []float64{0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 1800, 3600, 7200, 18000, 43200, 86400, 172800}
	attemptBuckets   = []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}
)

// NewMetrics creates the metrics and their registry, with the Go runtime
// and process collectors.
func NewMetrics(opts MetricsOptions) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	f := func(c prometheus.Collector) { m.reg.MustRegister(c) }
	m.connections = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "mailhook_smtp_connections_total", Help: "SMTP connections opened.",
	})
	m.accepted = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mailhook_messages_accepted_total", Help: "Messages accepted (250 after DATA), by matching route.",
	}, []string{"route"})
	m.refused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mailhook_messages_refused_total", Help: "Messages or recipients refused in the SMTP dialogue, by reason.",
	}, []string{"reason"})
	m.verify = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mailhook_verify_results_total", Help: "Verification results, by method (spf, dkim, dmarc) and result.",
	}, []string{"method", "result"})
	m.parseWarnings = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "mailhook_parse_warnings_total", Help: "Warnings from the MIME parser.",
	})
	m.routeMatches = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mailhook_route_matches_total", Help: "Rule matches, by rule name.",
	}, []string{"rule"})
	m.attempts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mailhook_delivery_attempts_total",
		Help: "Delivery attempts, by job kind, target (webhook endpoint, relay domain, mailbox user), status class and outcome.",
	}, []string{"kind", "target", "status_class", "outcome"})
	m.attemptTime = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "mailhook_delivery_attempt_duration_seconds", Help: "Duration of delivery attempts.",
		Buckets: attemptBuckets,
	}, []string{"kind", "target"})
	m.delivered = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "mailhook_accept_to_delivered_seconds", Help: "Time from acceptance to successful delivery of a job.",
		Buckets: deliveredBuckets,
	}, []string{"kind"})
	m.imapSessions = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "mailhook_imap_sessions_total", Help: "IMAP sessions opened.",
	})
	m.pop3Sessions = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "mailhook_pop3_sessions_total", Help: "POP3 sessions opened.",
	})
	m.failedLogins = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mailhook_failed_logins_total", Help: "Failed logins, by protocol (imap, pop3, admin).",
	}, []string{"proto"})
	m.spam = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mailhook_spam_checks_total", Help: "rspamd checks, by result (ok, error) and the action rspamd answered.",
	}, []string{"result", "action"})
	for _, c := range []prometheus.Collector{
		m.spam,
		m.connections, m.accepted, m.refused, m.verify, m.parseWarnings, m.routeMatches,
		m.attempts, m.attemptTime, m.delivered, m.imapSessions, m.pop3Sessions, m.failedLogins,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		f(c)
	}
	if opts.Stats != nil {
		f(newQueueCollector(opts.Backend, opts.Stats))
	}
	if opts.Writer != nil {
		for _, c := range opts.Writer.collectors() {
			f(c)
		}
	}
	return m
}

// Registry returns the registry, for tests and for registering more
// collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the text exposition of the registry.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// SMTPConnection counts an SMTP connection.
func (m *Metrics) SMTPConnection() {
	if m != nil {
		m.connections.Inc()
	}
}

// MessageAccepted counts an accepted message once per matching route.
func (m *Metrics) MessageAccepted(routes []string) {
	if m == nil {
		return
	}
	if len(routes) == 0 {
		m.accepted.WithLabelValues("").Inc()
	}
	for _, r := range routes {
		m.accepted.WithLabelValues(r).Inc()
	}
}

// MessageRefused counts a refusal, by a short fixed reason: relay_denied,
// unknown_user, dmarc_reject, size, bare_lf, no_route, temp_failure...
// Reasons must come from a fixed set, never from the client's input.
func (m *Metrics) MessageRefused(reason string) {
	if m != nil {
		m.refused.WithLabelValues(reason).Inc()
	}
}

// VerifyResult counts one verification result (method spf, dkim or
// dmarc; result pass, fail...).
func (m *Metrics) VerifyResult(method, result string) {
	if m != nil {
		m.verify.WithLabelValues(method, result).Inc()
	}
}

// SpamCheck counts one rspamd check by its result (ok, error) and action
// (one of rspamd's fixed set, "" for an error).
func (m *Metrics) SpamCheck(result, action string) {
	if m != nil {
		m.spam.WithLabelValues(result, action).Inc()
	}
}

// ParseWarnings counts the parser's warnings for one message.
func (m *Metrics) ParseWarnings(n int) {
	if m != nil && n > 0 {
		m.parseWarnings.Add(float64(n))
	}
}

// RouteMatch counts a rule match.
func (m *Metrics) RouteMatch(rule string) {
	if m != nil {
		m.routeMatches.WithLabelValues(rule).Inc()
	}
}

// Attempt counts one delivery attempt: its kind, target, HTTP status or
// SMTP reply code (0 when there was no reply), latency and outcome
// (delivered, retry, dead).
func (m *Metrics) Attempt(kind, target string, status int, latency time.Duration, outcome string) {
	if m == nil {
		return
	}
	m.attempts.WithLabelValues(kind, target, statusClass(status), outcome).Inc()
	m.attemptTime.WithLabelValues(kind, target).Observe(latency.Seconds())
}

// Delivered observes the time from acceptance to delivery of one job.
func (m *Metrics) Delivered(kind string, acceptToDelivered time.Duration) {
	if m != nil {
		m.delivered.WithLabelValues(kind).Observe(acceptToDelivered.Seconds())
	}
}

// IMAPSession counts an IMAP session.
func (m *Metrics) IMAPSession() {
	if m != nil {
		m.imapSessions.Inc()
	}
}

// POP3Session counts a POP3 session.
func (m *Metrics) POP3Session() {
	if m != nil {
		m.pop3Sessions.Inc()
	}
}

// FailedLogin counts a failed login for proto (imap, pop3, admin).
func (m *Metrics) FailedLogin(proto string) {
	if m != nil {
		m.failedLogins.WithLabelValues(proto).Inc()
	}
}

// queueCollector reports the queue's depth by state and its lag, calling
// the stats function once per scrape (several GaugeFuncs would call it
// once per gauge).
type queueCollector struct {
	stats  func() (deliver.Stats, error)
	jobs   *prometheus.Desc
	oldest *prometheus.Desc
	errors prometheus.Counter
}

func newQueueCollector(backend string, stats func() (deliver.Stats, error)) *queueCollector {
	l := prometheus.Labels{"backend": backend}
	return &queueCollector{
		stats: stats,
		jobs: prometheus.NewDesc("mailhook_queue_jobs",
			"Jobs in the queue, by state (ready, scheduled, leased, dead).", []string{"state"}, l),
		oldest: prometheus.NewDesc("mailhook_queue_oldest_age_seconds",
			"How long the longest-waiting ready job has been due (the queue's lag).", nil, l),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mailhook_queue_stats_errors_total", Help: "Failures reading queue stats for a scrape.",
			ConstLabels: l,
		}),
	}
}

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.jobs
	ch <- c.oldest
	c.errors.Describe(ch)
}

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	defer c.errors.Collect(ch)
	st, err := c.stats()
	if err != nil {
		c.errors.Inc()
		return
	}
	for _, s := range []struct {
		state deliver.State
		n     int
	}{
		{deliver.StateReady, st.Ready}, {deliver.StateScheduled, st.Scheduled},
		{deliver.StateLeased, st.Leased}, {deliver.StateDead, st.Dead},
	} {
		ch <- prometheus.MustNewConstMetric(c.jobs, prometheus.GaugeValue, float64(s.n), string(s.state))
	}
	ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, st.OldestAge.Seconds())
}
