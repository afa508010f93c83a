// mailhook admin dashboard: plain JavaScript, no framework. Every value
// from the server is put into the page with textContent, never as HTML.
"use strict";

(function () {
  const $ = (sel, root) => (root || document).querySelector(sel);
  const views = ["login", "messages", "message", "dead", "refused", "charts"];
  const POLL_MS = 3000;
  let pollTimer = null;
  let cursor = "";

  // el builds an element: attrs are properties (class, href...) or
  // data-* attributes; children are nodes or strings (as text).
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") e.className = v;
      else if (k.startsWith("data-") || k === "title" || k === "colspan") e.setAttribute(k, v);
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e[k] = v;
    }
    for (const c of children.flat()) {
      if (c === undefined || c === null || c === false) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  const SVG = "http://www.w3.org/2000/svg";
  function svg(tag, attrs) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    return e;
  }

  class HTTPError extends Error {
    constructor(status, msg) { super(msg); this.status = status; }
  }

  // api calls the JSON API with the session cookie. The custom header is
  // the CSRF defence the server requires of cookie-authenticated writes.
  async function api(path, opts) {
    const res = await fetch(path, Object.assign({
      credentials: "same-origin",
      headers: { "X-Mailhook-Request": "1", "Accept": "application/json" },
    }, opts || {}));
    let body = null;
    try { body = await res.json(); } catch (e) { /* not JSON */ }
    if (res.status === 401) {
      show("login");
      throw new HTTPError(401, "signed out");
    }
    if (!res.ok) throw new HTTPError(res.status, (body && body.error) || res.statusText);
    return body;
  }

  function flash(msg, bad) {
    const f = $("#flash");
    f.textContent = msg;
    f.className = "flash" + (bad ? " bad" : "");
    f.hidden = false;
    clearTimeout(flash.t);
    flash.t = setTimeout(() => { f.hidden = true; }, 5000);
  }

  function show(name) {
    for (const v of views) $("#" + v + "-view").hidden = v !== name;
    const signedIn = name !== "login";
    $("#nav").hidden = !signedIn;
    $("#logout-form").hidden = !signedIn;
    $("#queue-stats").hidden = !signedIn;
    for (const a of document.querySelectorAll("#nav a")) {
      a.classList.toggle("active", a.dataset.view === name || (name === "message" && a.dataset.view === "messages"));
    }
    if (!signedIn) {
      stopPolling();
      $("#login-error").hidden = !location.search.includes("login=failed");
      $("#token").focus();
    }
  }

  function stopPolling() {
    if (pollTimer) clearInterval(pollTimer);
    pollTimer = null;
  }
  function poll(fn) {
    stopPolling();
    fn();
    pollTimer = setInterval(() => { if (!document.hidden) fn(); }, POLL_MS);
  }

  function fmtTime(s) {
    if (!s) return "";
    const d = new Date(s);
    if (isNaN(d)) return s;
    return d.toLocaleString(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit" });
  }
  function fmtMS(ms) {
    if (ms === undefined || ms === null) return "";
    return ms < 1000 ? ms.toFixed(ms < 10 ? 1 : 0) + " ms" : (ms / 1000).toFixed(2) + " s";
  }
  function badge(text, kind) {
    return el("span", { class: "badge " + (kind || String(text).replace(/\s+/g, "-")) }, text);
  }
  function verdict(result) {
    const r = result || "none";
    const kind = r === "pass" ? "good" : (r === "fail" || r === "permerror") ? "bad" : (r === "softfail" || r === "temperror") ? "warn" : "neutral";
    return badge(r, kind);
  }

  // --- queue stats in the header ---
  async function loadStats() {
    try {
      const st = await api("/api/queue/stats");
      const box = $("#queue-stats");
      box.replaceChildren(
        el("span", { title: "Ready to deliver" }, "ready ", el("b", {}, st.ready)),
        el("span", { title: "Waiting for a retry" }, "scheduled ", el("b", {}, st.scheduled),
          st.scheduled > 0 ? el("button", { class: "link retry-all", title: "Attempt every waiting delivery now", onclick: retryAll }, "retry now") : ""),
        el("span", { title: "Being delivered" }, "in flight ", el("b", {}, st.leased)),
        el("a", { href: "#/dead", class: st.dead > 0 ? "dead-count bad" : "dead-count" }, "dead ", el("b", {}, st.dead)),
      );
    } catch (e) { /* shown elsewhere */ }
  }

  async function retryAll() {
    try {
      const r = await api("/api/queue/retry", { method: "POST" });
      flash(r.retried + " waiting deliveries will be attempted now.");
      loadStats();
    } catch (e) { if (e.status !== 401) flash("Retry failed: " + e.message, true); }
  }

  // --- message list ---
  function filterQuery(form) {
    const f = new FormData(form || $("#filters"));
    const q = new URLSearchParams();
    for (const [k, v] of f) if (v) q.set(k, v);
    return q;
  }

  function messageRow(m) {
    return el("tr", { "data-id": m.id, class: "clickable", onclick: () => { location.hash = "#/m/" + encodeURIComponent(m.id); } },
      el("td", { class: "nowrap" }, fmtTime(m.received_at)),
      el("td", {}, m.from || m.mail_from || "<>"),
      el("td", {}, (m.rcpt_to || []).join(", ")),
      el("td", { class: "subject" }, el("a", { href: "#/m/" + encodeURIComponent(m.id) }, m.subject || "(no subject)")),
      el("td", {}, (m.routes || []).join(", ")),
      el("td", {}, badge(m.status)),
    );
  }

  async function loadMessages() {
    try {
      const q = filterQuery();
      q.set("limit", "50");
      const res = await api("/api/messages?" + q);
      const tbody = $("#messages tbody");
      tbody.replaceChildren(...res.messages.map(messageRow));
      $("#messages-empty").hidden = res.messages.length > 0;
      cursor = res.next;
      $("#more").hidden = !cursor;
      loadStats();
    } catch (e) {
      if (e.status !== 401) flash("Could not load messages: " + e.message, true);
    }
  }

  async function loadMore() {
    if (!cursor) return;
    stopPolling(); // older pages would be replaced by the next refresh
    const q = filterQuery();
    q.set("limit", "50");
    q.set("cursor", cursor);
    try {
      const res = await api("/api/messages?" + q);
      $("#messages tbody").append(...res.messages.map(messageRow));
      cursor = res.next;
      $("#more").hidden = !cursor;
    } catch (e) { flash("Could not load messages: " + e.message, true); }
  }

  // --- one message ---
  function kv(rows) {
    return el("dl", { class: "kv" }, rows.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
  }

  function section(title, id, ...body) {
    return el("section", { class: "card", id }, el("h2", {}, title), ...body);
  }

  // spamRow shows rspamd's verdict beside the auth verdicts; nothing when
  // rspamd is not configured.
  function spamRow(s) {
    if (!s) return "";
    if (s.result !== "ok") return el("tr", { id: "msg-spam" }, el("th", {}, "Spam"), el("td", {}, badge("rspamd error", "warn"), s.error ? el("span", { class: "muted" }, " — " + s.error) : ""));
    const cls = s.action === "no action" ? "good" : ["reject", "soft reject", "discard"].includes(s.action) ? "bad" : "warn";
    return el("tr", { id: "msg-spam" }, el("th", {}, "Spam"), el("td", {}, badge(s.action, cls), " ", el("span", { class: "spam-score" }, s.score.toFixed(2) + " / " + s.required_score.toFixed(2))));
  }

  function spamSymbols(s) {
    if (!s || !s.symbols || !s.symbols.length) return "";
    return el("details", {}, el("summary", {}, "rspamd symbols (" + s.symbols.length + ")"),
      el("table", { class: "plain" }, el("tbody", {}, s.symbols.map(x => el("tr", {}, el("th", {}, x.name), el("td", { class: "num" }, x.score.toFixed(2)))))));
  }

  function authSection(a, spam) {
    if (!a) return section("Authentication", "msg-auth", el("p", { class: "muted" }, "Not recorded."));
    const dkim = (a.dkim && a.dkim.length) ? a.dkim.map(d => el("div", {}, verdict(d.result), " ", d.domain || "", d.selector ? " (s=" + d.selector + ")" : "", d.error ? el("span", { class: "muted" }, " — " + d.error) : "")) : [verdict("none")];
    return section("Authentication", "msg-auth",
      el("table", { class: "plain" },
        el("tbody", {},
          el("tr", {}, el("th", {}, "SPF"), el("td", {}, verdict(a.spf && a.spf.result), " ", (a.spf && a.spf.domain) || "", a.spf && a.spf.identity ? el("span", { class: "muted" }, " (" + a.spf.identity + ")") : "")),
          el("tr", {}, el("th", {}, "DKIM"), el("td", {}, dkim)),
          el("tr", {}, el("th", {}, "DMARC"), el("td", {}, verdict(a.dmarc && a.dmarc.result), " ", (a.dmarc && a.dmarc.domain) || "", a.dmarc && a.dmarc.policy ? el("span", { class: "muted" }, " p=" + a.dmarc.policy) : "", a.quarantine ? badge("quarantine", "warn") : "")),
          spamRow(spam),
        )),
      spamSymbols(spam),
      a.authentication_results ? el("details", {}, el("summary", {}, "Authentication-Results"), el("pre", {}, a.authentication_results)) : "",
    );
  }

  function actionText(a) {
    switch (a.kind) {
      case "webhook": return "webhook " + a.webhook;
      case "mailbox": return "mailbox " + a.mailbox + (a.folder ? "/" + a.folder : "");
      case "forward": return "forward to " + (a.forward || []).join(", ");
      case "reject": return "reject " + a.reject_code + " " + (a.reject_text || "");
      default: return a.kind;
    }
  }

  function rulesSection(decisions) {
    if (!decisions || !decisions.length) return section("Routing", "msg-rules", el("p", { class: "muted" }, "No decisions recorded."));
    return section("Routing", "msg-rules", decisions.map(d =>
      el("div", { class: "decision" },
        el("div", {}, el("span", { class: "muted" }, "For "), el("b", {}, d.rcpt), ": ",
          d.rules && d.rules.length ? d.rules.map(r => badge(r, "rule")) : badge("no rule matched", "bad")),
        d.why && d.why.length ? el("ul", { class: "why" }, d.why.map(w => el("li", {}, w))) : "",
        d.actions && d.actions.length ? el("div", { class: "muted" }, "Actions: " + d.actions.map(actionText).join("; ")) : "",
      )));
  }

  async function replay(jobID, after) {
    try {
      await api("/api/jobs/" + encodeURIComponent(jobID) + "/replay", { method: "POST" });
      flash("Job " + jobID + " is queued again.");
      after();
    } catch (e) { if (e.status !== 401) flash("Replay failed: " + e.message, true); }
  }

  async function retryNow(jobID, after) {
    try {
      await api("/api/jobs/" + encodeURIComponent(jobID) + "/retry", { method: "POST" });
      flash("Job " + jobID + " will be attempted now.");
      setTimeout(after, 1500);
    } catch (e) { if (e.status !== 401) flash("Retry failed: " + e.message, true); }
  }

  // attemptStatus is an attempt's reply code, or for deliveries that have
  // none (a mailbox append) what happened.
  function attemptStatus(a) {
    if (a.status) return badge(String(a.status), "c" + a.status_class);
    if (a.error) return badge("error", "bad");
    return badge(a.outcome === "delivered" ? "stored" : "—", a.outcome === "delivered" ? "good" : "neutral");
  }

  async function drop(jobID, after) {
    if (!confirm("Drop job " + jobID + "? It will not be delivered.")) return;
    try {
      await api("/api/jobs/" + encodeURIComponent(jobID), { method: "DELETE" });
      flash("Job " + jobID + " dropped.");
      after();
    } catch (e) { if (e.status !== 401) flash("Drop failed: " + e.message, true); }
  }

  function jobsSection(d, reload) {
    if (!d.jobs || !d.jobs.length) return section("Deliveries", "msg-attempts", el("p", { class: "muted" }, "No jobs: nothing to deliver."));
    return section("Deliveries", "msg-attempts", d.jobs.map(j =>
      el("div", { class: "job", "data-job": j.id },
        el("div", { class: "job-head" },
          el("b", {}, j.kind + " → " + j.target), " ", badge(j.status),
          j.queue_state ? el("span", { class: "muted" }, " queue: " + j.queue_state + (j.next_at ? ", next " + fmtTime(j.next_at) : "")) : "",
          el("span", { class: "muted small" }, " job " + j.id + (j.route ? ", route " + j.route : "")),
          j.queue_state === "dead" ? el("button", { class: "replay", "data-job": j.id, onclick: () => replay(j.id, reload) }, "Replay") : "",
          j.queue_state === "scheduled" ? el("button", { class: "retry", "data-job": j.id, onclick: () => retryNow(j.id, reload) }, "Retry now") : "",
        ),
        j.attempts && j.attempts.length ?
          el("table", { class: "list attempts" },
            el("thead", {}, el("tr", {}, el("th", {}, "Time"), el("th", {}, "Status"), el("th", {}, "Latency"), el("th", {}, "Outcome"), el("th", {}, "Error / response"))),
            el("tbody", {}, j.attempts.map(a => el("tr", {},
              el("td", { class: "nowrap" }, fmtTime(a.at)),
              el("td", {}, attemptStatus(a)),
              el("td", { class: "num" }, fmtMS(a.latency_ms)),
              el("td", {}, a.outcome ? badge(a.outcome === "retry" ? "retrying" : a.outcome) : ""),
              el("td", { class: "err" }, a.error || "", a.response ? el("code", { class: "resp" }, a.response) : ""),
            )))) :
          el("p", { class: "muted" }, "No attempt yet."),
        (j.sent || j.sent_text) ? el("details", { class: "sent" },
          el("summary", {}, "Webhook JSON sent" + (j.sent_truncated ? " (cut)" : "")),
          el("pre", {}, j.sent ? JSON.stringify(j.sent, null, 2) : j.sent_text)) : "",
      )));
  }

  function timelineSection(tl) {
    if (!tl || !tl.length) return "";
    return section("Timeline", "msg-timeline", el("ol", { class: "timeline" }, tl.map(ev =>
      el("li", {}, el("span", { class: "nowrap muted" }, fmtTime(ev.at)), " ",
        ev.type === "attempt" ? [ev.kind + " → " + ev.target + ": ", badge(ev.outcome === "retry" ? "retrying" : ev.outcome), ev.status ? " " + ev.status : "", ev.latency_ms ? " in " + fmtMS(ev.latency_ms) : "", ev.error ? el("span", { class: "muted" }, " — " + ev.error) : ""]
          : ev.type === "accepted" ? "accepted"
            : ev.type + " " + (ev.kind ? ev.kind + " → " + ev.target : ev.job_id)))));
  }

  function headersSection(m) {
    if (!m || !m.headers || !m.headers.length) return "";
    return section("Headers", "msg-headers", el("details", {}, el("summary", {}, m.headers.length + " header fields"),
      el("table", { class: "plain headers" }, el("tbody", {}, m.headers.map(h => el("tr", {}, el("th", {}, h[0]), el("td", {}, h[1])))))));
  }

  function bodySection(m) {
    if (!m) return "";
    const atts = m.attachments || [];
    return section("Content", "msg-content",
      m.text ? el("details", {}, el("summary", {}, "Text"), el("pre", { class: "body" }, m.text)) : el("p", { class: "muted" }, "No text body."),
      atts.length ? el("ul", { class: "atts" }, atts.map(a => el("li", {}, a.filename || "(unnamed)", el("span", { class: "muted" }, " " + a.content_type + ", " + a.size + " bytes")))) : "",
      m.parse_warnings && m.parse_warnings.length ? el("ul", { class: "warnings" }, m.parse_warnings.map(w => el("li", {}, w))) : "",
    );
  }

  async function loadMessage(id) {
    stopPolling();
    const box = $("#message");
    try {
      const d = await api("/api/messages/" + encodeURIComponent(id));
      const m = d.message;
      const env = d.envelope || {};
      box.replaceChildren(
        el("div", { class: "toolbar" },
          el("h1", {}, (m && m.subject) || "(no subject)"), badge(d.status),
          d.has_raw ? el("a", { class: "button secondary", href: "/api/messages/" + encodeURIComponent(id) + "/raw" }, "Raw source") : ""),
        section("Envelope", "msg-envelope", kv([
          ["ID", d.id],
          ["Stable ID", d.stable_id || ""],
          ["Message-ID", (m && m.message_id) || ""],
          ["Received", fmtTime(d.received_at)],
          ["MAIL FROM", env.mail_from || "<>"],
          ["RCPT TO", (env.rcpt_to || []).join(", ")],
          ["Client", (env.client_ip || "") + (env.helo ? " (HELO " + env.helo + ")" : "")],
          ["TLS", env.tls ? "yes" : "no"],
          ["From", m && m.from ? (m.from.name ? m.from.name + " <" + m.from.address + ">" : m.from.address) : ""],
          ["Size", d.raw_size + " bytes"],
        ])),
        el("div", { class: "grid2" }, authSection(d.auth, d.spam), rulesSection(d.decisions)),
        jobsSection(d, () => loadMessage(id)),
        timelineSection(d.timeline),
        headersSection(m),
        bodySection(m),
      );
    } catch (e) {
      if (e.status !== 401) box.replaceChildren(el("p", { class: "error" }, "Could not load the message: " + e.message));
    }
  }

  // --- dead letters ---
  async function loadDead() {
    try {
      const res = await api("/api/queue/dead?limit=200");
      const reload = () => loadDead();
      $("#dead tbody").replaceChildren(...res.jobs.map(j => el("tr", { "data-job": j.id },
        el("td", { class: "nowrap" }, fmtTime(j.dead_at)),
        el("td", { class: "small" }, j.id),
        el("td", {}, j.kind),
        el("td", {}, j.target),
        el("td", {}, el("a", { href: "#/m/" + encodeURIComponent(j.msg_id) }, j.msg_id)),
        el("td", { class: "num" }, j.attempts),
        el("td", { class: "err" }, j.last_error || ""),
        el("td", { class: "nowrap" },
          el("button", { class: "replay", "data-job": j.id, onclick: () => replay(j.id, reload) }, "Replay"), " ",
          el("button", { class: "secondary drop", "data-job": j.id, onclick: () => drop(j.id, reload) }, "Drop")),
      )));
      $("#dead-empty").hidden = res.jobs.length > 0;
      loadStats();
    } catch (e) { if (e.status !== 401) flash("Could not load dead letters: " + e.message, true); }
  }

  // --- refusals ---
  async function loadRefused() {
    try {
      const q = filterQuery($("#refused-filters"));
      q.set("limit", "200");
      const res = await api("/api/refused?" + q);
      $("#refused tbody").replaceChildren(...res.refused.map(r => el("tr", { "data-ip": r.remote_ip },
        el("td", { class: "nowrap" }, fmtTime(r.at)),
        el("td", {}, r.remote_ip || ""),
        el("td", {}, r.mail_from || "<>"),
        el("td", {}, (r.rcpts || []).join(", ")),
        el("td", { class: "nowrap" }, badge(r.code + " " + (r.enhanced || ""), r.code >= 500 ? "bad" : "warn")),
        el("td", { class: "err" }, r.reason || ""),
        el("td", {}, r.stage || ""),
      )));
      $("#refused-empty").hidden = res.refused.length > 0;
      loadStats();
    } catch (e) { if (e.status !== 401) flash("Could not load refusals: " + e.message, true); }
  }

  // --- charts (inline SVG) ---
  // lineChart draws series (each {name, cls, values}) over points' times.
  function lineChart(box, times, series, opts) {
    // Draw at the box's own width so that text keeps its size.
    const W = Math.max(320, Math.round(box.clientWidth || 640)), H = 200, L = 44, R = 16, T = 12, B = 26;
    const s = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart-svg", role: "img" });
    let maxV = 0;
    for (const se of series) for (const v of se.values) if (v !== null && v > maxV) maxV = v;
    maxV = niceMax(maxV);
    const n = times.length;
    const x = i => L + (n <= 1 ? 0 : i * (W - L - R) / (n - 1));
    const y = v => T + (H - T - B) * (1 - v / maxV);
    for (let k = 0; k <= 4; k++) {
      const v = maxV * k / 4, yy = y(v);
      s.append(svg("line", { x1: L, x2: W - R, y1: yy, y2: yy, class: "grid" }));
      const t = svg("text", { x: L - 6, y: yy + 4, class: "axis", "text-anchor": "end" });
      t.textContent = String(+v.toFixed(2));
      s.append(t);
    }
    const ticks = Math.min(6, n);
    for (let k = 0; k < ticks; k++) {
      const i = Math.round(k * (n - 1) / Math.max(1, ticks - 1));
      const anchor = k === 0 ? "start" : k === ticks - 1 ? "end" : "middle";
      const t = svg("text", { x: x(i), y: H - 8, class: "axis", "text-anchor": anchor });
      t.textContent = new Date(times[i]).toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
      s.append(t);
    }
    for (const se of series) {
      let d = "";
      se.values.forEach((v, i) => {
        if (v === null) return;
        const prev = i > 0 ? se.values[i - 1] : null, next = i + 1 < n ? se.values[i + 1] : null;
        d += (prev === null ? "M" : "L") + x(i).toFixed(1) + " " + y(v).toFixed(1);
        if (prev === null && next === null) {
          // A lone sample has no line to be part of: show it as a dot.
          s.append(svg("circle", { cx: x(i).toFixed(1), cy: y(v).toFixed(1), r: 3, class: "dot " + se.cls }));
        }
      });
      if (d) s.append(svg("path", { d, class: "series " + se.cls }));
    }
    const legend = el("div", { class: "legend" }, series.map(se => el("span", { class: "key " + se.cls }, se.name + " (total " + se.total + ")")));
    if (opts && opts.last) legend.replaceChildren(...series.map(se => el("span", { class: "key " + se.cls }, se.name + ": " + lastValue(se.values))));
    box.replaceChildren(s, legend);
  }
  function lastValue(vs) {
    for (let i = vs.length - 1; i >= 0; i--) if (vs[i] !== null) return vs[i];
    return "no sample";
  }
  function niceMax(v) {
    if (v <= 0) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 4, 8, 10]) if (v <= m * p) return m * p;
    return 10 * p;
  }

  async function loadCharts() {
    try {
      const hours = $("#hours").value;
      const res = await api("/api/series?hours=" + encodeURIComponent(hours));
      const pts = res.points, per = res.step_seconds / 60;
      const times = pts.map(p => p.t);
      const rate = f => pts.map(p => +(f(p) / per).toFixed(2));
      const total = f => pts.reduce((a, p) => a + f(p), 0);
      lineChart($("#chart-messages"), times, [
        { name: "accepted/min", cls: "s-good", values: rate(p => p.accepted), total: total(p => p.accepted) },
        { name: "refused/min", cls: "s-bad", values: rate(p => p.refused), total: total(p => p.refused) },
      ]);
      lineChart($("#chart-delivery"), times, [
        { name: "delivered/min", cls: "s-good", values: rate(p => p.delivered), total: total(p => p.delivered) },
        { name: "failed/min", cls: "s-bad", values: rate(p => p.failed), total: total(p => p.failed) },
      ]);
      lineChart($("#chart-queue"), times, [
        { name: "queue depth", cls: "s-info", values: pts.map(p => p.queue_depth) },
      ], { last: true });
      loadStats();
    } catch (e) { if (e.status !== 401) flash("Could not load charts: " + e.message, true); }
  }

  // --- routing ---
  async function route() {
    const h = location.hash || "#/";
    if (h.startsWith("#/m/")) {
      show("message");
      loadMessage(decodeURIComponent(h.slice(4)));
      loadStats();
    } else if (h === "#/dead") {
      show("dead");
      poll(loadDead);
    } else if (h === "#/refused") {
      show("refused");
      poll(loadRefused);
    } else if (h === "#/charts") {
      show("charts");
      stopPolling();
      loadCharts();
      pollTimer = setInterval(() => { if (!document.hidden) loadCharts(); }, 30000);
    } else {
      show("messages");
      poll(loadMessages);
    }
  }

  async function start() {
    $("#filters").addEventListener("submit", e => { e.preventDefault(); poll(loadMessages); });
    $("#refused-filters").addEventListener("submit", e => { e.preventDefault(); poll(loadRefused); });
    $("#more").addEventListener("click", loadMore);
    $("#hours").addEventListener("change", loadCharts);
    window.addEventListener("hashchange", route);
    try {
      await api("/api/session");
    } catch (e) {
      if (e.status === 401) return; // the login form is showing
      flash("The admin API is not available: " + e.message, true);
      return;
    }
    if (location.search) history.replaceState(null, "", "/" + location.hash);
    route();
  }

  document.addEventListener("DOMContentLoaded", start);
})();
