// Mercury's live dashboard: polls the gateway's analytics API and draws every chart as inline SVG.
// Each figure a test reads carries data-field (and data-provider, data-group or data-metric) with the raw
// number in data-value; the text beside it is formatted for people.
"use strict";

(() => {
  const API = "/api/v1.0/analytics";
  const REFRESH_MS = 5000;
  const FETCH_TIMEOUT_MS = 15000;
  // Window length (s) → bucket width (s) of the charts: about 30 points per line.
  const BUCKETS = { 900: 30, 3600: 120, 86400: 3600 };
  const UNFINISHED_AFTER_S = 600;
  const UNFINISHED_LIMIT = 1000;
  const PALETTE = ["#2563eb", "#d97706", "#059669", "#db2777", "#7c3aed", "#0891b2"];
  const STATE_COLORS = { closed: "#16a34a", half_open: "#d97706", open: "#dc2626" };
  const SVG = "http://www.w3.org/2000/svg";
  // The key lives in this tab's session only: never in the URL, never in the page's storage for good.
  const KEY_STORE = "mercury-api-key";

  const params = new URLSearchParams(location.search);
  let windowS = BUCKETS[params.get("window")] ? Number(params.get("window")) : 3600;
  let traced = null; // { id, finished } of the mail shown in the search section
  let generation = 0;
  let timer = null;
  let apiKey = sessionStorage.getItem(KEY_STORE) || "";
  const state = {};
  const errors = new Map();

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  // ---- helpers ----

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value !== undefined && value !== null) node.setAttribute(key, value);
    }
    node.append(...children.filter((c) => c !== null && c !== undefined));
    return node;
  }

  function svg(tag, attrs = {}, ...children) {
    const node = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
    node.append(...children);
    return node;
  }

  function titled(node, text) {
    node.append(svg("title", {}, text));
    return node;
  }

  // A number a test may read: raw value in data-value, formatted text inside.
  function figure(tag, attrs, value, format) {
    return el(tag, { ...attrs, "data-value": value ?? "" }, format(value));
  }

  const fmtCount = (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US"));
  const fmtPct = (r) => (r === null || r === undefined ? "–" : `${(r * 100).toFixed(1)}%`);
  function fmtMs(ms) {
    if (ms === null || ms === undefined) return "–";
    if (ms < 1000) return `${Math.round(ms)} ms`;
    if (ms < 60000) return `${(ms / 1000).toFixed(2)} s`;
    return `${(ms / 60000).toFixed(1)} min`;
  }
  // Time since acceptance, signed: a provider stamping whole seconds can report a moment before it.
  const fmtSince = (ms, accepted) =>
    (accepted === null ? "" : (ms < accepted ? "-" : "+") + fmtMs(Math.abs(ms - accepted)));
  const iso = (ms) => new Date(ms).toISOString();
  const fmtClock = (ms) => iso(ms).slice(11, 19);
  const fmtStamp = (ms) => (ms === null || ms === undefined ? "–" : iso(ms).replace("T", " ").slice(0, 23));
  function fmtAgo(ms) {
    const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
    if (s < 90) return `${s} s ago`;
    if (s < 5400) return `${Math.round(s / 60)} min ago`;
    return `${(s / 3600).toFixed(1)} h ago`;
  }

  async function getJson(path) {
    let response;
    try {
      response = await fetch(path, { cache: "no-store", signal: AbortSignal.timeout(FETCH_TIMEOUT_MS),
        headers: apiKey ? { Authorization: `Bearer ${apiKey}` } : {} });
    } catch (err) {
      throw new ApiError(0, err.name === "TimeoutError" ? `no answer within ${FETCH_TIMEOUT_MS / 1000} s`
        : `cannot reach the gateway (${err.message})`);
    }
    const body = await response.json().catch(() => null);
    if (!response.ok) throw new ApiError(response.status, (body && body.error) || response.statusText);
    return body;
  }

  async function getBreakers(since) {
    const body = await getJson(`${API}/breakers?since=${since}`);
    return { recorded: true, providers: body.breakers.providers, changes: body.breakers.changes };
  }

  function colorOf(providers) {
    const names = [...providers].sort();
    return (name) => PALETTE[names.indexOf(name) % PALETTE.length];
  }

  // ---- errors ----

  function showErrors() {
    const box = document.getElementById("errors");
    box.replaceChildren(...[...errors].map(([source, message]) =>
      el("p", { class: "error", "data-source": source }, `${source}: ${message}`)));
    for (const section of document.querySelectorAll("section[data-sources]")) {
      const failing = section.dataset.sources.split(" ").filter((s) => errors.has(s));
      section.classList.toggle("stale", failing.length > 0);
      section.title = failing.length ? `showing older figures: ${failing.join(", ")} failed` : "";
    }
  }

  window.addEventListener("error", (event) => {
    errors.set("page", event.message);
    showErrors();
  });

  // ---- provider health ----

  function renderHealth() {
    const rows = state.providers ? state.providers.providers : [];
    const breakers = state.breakers || { recorded: false, providers: [], changes: [] };
    const byBreaker = new Map(breakers.providers.map((b) => [b.provider, b]));
    const names = [...new Set([...rows.map((r) => r.provider), ...byBreaker.keys()])].sort();
    const note = document.getElementById("breaker-note");
    note.textContent = breakers.recorded && breakers.providers.length
      ? "" : "no breaker changes recorded: providers are shown as closed";
    const cards = document.getElementById("provider-cards");
    if (!names.length) {
      cards.replaceChildren(el("p", { class: "empty" }, state.providers ? "no provider traffic in this window" : "loading…"));
      return;
    }
    cards.replaceChildren(...names.map((name) => providerCard(name, rows.find((r) => r.provider === name), byBreaker.get(name))));
  }

  function providerCard(name, row, breaker) {
    const stateName = breaker ? breaker.state : "closed";
    const stat = (label, field, value, format) => el("div", { class: "stat" },
      el("dt", {}, label), figure("dd", { "data-provider": name, "data-field": field }, value, format));
    const latency = row ? row.latency_ms : {};
    const since = breaker && breaker.changed_at
      ? el("p", { class: "since" }, `since ${fmtStamp(breaker.changed_at)} (${fmtAgo(breaker.changed_at)})`,
        breaker.worker ? ` by ${breaker.worker}` : "", breaker.reason ? `: ${breaker.reason}` : "")
      : el("p", { class: "since" }, "no breaker change recorded");
    if (breaker && breaker.throttled_until > Date.now()) {
      since.append(el("span", { class: "throttled" }, ` · rate limited until ${fmtClock(breaker.throttled_until)}`));
    }
    return el("article", { class: `card state-${stateName}`, "data-provider": name },
      el("header", {}, el("h3", {}, name),
        el("span", { class: "badge", "data-provider": name, "data-field": "state", "data-value": stateName },
          stateName.replace("_", "-"))),
      since,
      el("dl", {},
        stat("success", "success_rate", row ? row.success_rate : null, fmtPct),
        stat("attempts", "attempts", row ? row.attempts : 0, fmtCount),
        stat("sent", "sent", row ? row.sent : 0, fmtCount),
        stat("failed", "failed", row ? row.failed : 0, fmtCount),
        stat("p50 latency", "latency_p50_ms", latency.p50_ms ?? null, fmtMs),
        stat("p95 latency", "latency_p95_ms", latency.p95_ms ?? null, fmtMs)));
  }

  // ---- queues ----

  function renderQueues() {
    if (state.lag) {
      const total = document.querySelector('[data-field="lag-total"]');
      total.dataset.value = state.lag.lag;
      total.textContent = fmtCount(state.lag.lag);
      document.getElementById("lag-groups").replaceChildren(...state.lag.groups.map(lagGroup));
    }
    if (state.unfinished) {
      const count = state.unfinished.mails.length;
      const node = document.querySelector('[data-field="unfinished"]');
      node.dataset.value = count;
      node.textContent = count >= UNFINISHED_LIMIT ? `${fmtCount(count)}+` : fmtCount(count);
      node.classList.toggle("bad", count > 0);
      const oldest = state.unfinished.mails.slice(0, 5).map((m) =>
        el("li", {}, el("a", { href: `?mail=${encodeURIComponent(m.mail)}`, "data-mail": m.mail }, m.mail),
          ` accepted ${fmtAgo(m.accepted_at)}, last ${m.last_event || "accepted"}`));
      const list = document.getElementById("unfinished-list") || el("ul", { id: "unfinished-list", class: "mails" });
      list.replaceChildren(...oldest);
      node.parentElement.append(list);
    }
  }

  function lagGroup(group) {
    const shown = group.topics.filter((t) => t.missing || t.lag > 0 || t.partitions.some((p) => p.end > 0));
    const hidden = group.topics.length - shown.length;
    const rows = shown.map((topic) => el("tr", { "data-group": group.group, "data-topic": topic.topic },
      el("td", {}, topic.topic),
      figure("td", { class: "num", "data-group": group.group, "data-topic": topic.topic, "data-field": "lag" },
        topic.lag, fmtCount),
      el("td", { class: "partitions" }, topic.missing ? "topic does not exist" : topic.partitions.map((p) =>
        `p${p.partition} ${p.committed ?? "none"}/${p.end}`).join("  "))));
    return el("div", { class: "lag-group", "data-group": group.group },
      el("h3", {}, group.group, " ",
        figure("span", { class: "value", "data-group": group.group, "data-field": "lag" }, group.lag, fmtCount),
        " behind"),
      el("table", {},
        el("thead", {}, el("tr", {}, el("th", {}, "topic"), el("th", {}, "lag"),
          el("th", {}, "per partition: committed / end offset"))),
        el("tbody", {}, ...rows)),
      hidden ? el("p", { class: "note" }, `${hidden} more topics hold no records`) : null);
  }

  // ---- charts ----

  // The top of a y axis with four whole-number steps of 1, 2 or 5 × 10^k.
  function niceMax(value) {
    const quarter = Math.max(1, value / 4);
    const power = 10 ** Math.floor(Math.log10(quarter));
    return 4 * [1, 2, 5, 10].map((m) => m * power).find((step) => step >= quarter);
  }

  // series: [{ name, color, dashed, points: [[t, v|null], ...] }]
  function lineChart(container, series, { xMin, xMax, yMax, format, empty }) {
    const W = 560, H = 190, L = 52, R = 10, T = 10, B = 24;
    const values = series.flatMap((s) => s.points.map((p) => p[1])).filter((v) => v !== null);
    if (!values.length) {
      container.replaceChildren(el("p", { class: "empty" }, empty));
      return;
    }
    const top = yMax ?? niceMax(Math.max(...values));
    const x = (t) => L + ((t - xMin) / Math.max(1, xMax - xMin)) * (W - L - R);
    const y = (v) => T + (1 - v / top) * (H - T - B);
    const chart = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img" });
    for (let i = 0; i <= 4; i++) {
      const v = (top * i) / 4;
      chart.append(svg("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), class: "grid" }),
        svg("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end", class: "tick" }, format(v)));
    }
    for (let i = 0; i <= 4; i++) {
      const t = xMin + ((xMax - xMin) * i) / 4;
      chart.append(svg("text", { x: x(t), y: H - 6, "text-anchor": ["start", "middle", "middle", "middle", "end"][i],
        class: "tick" }, fmtClock(t).slice(0, windowS > 3600 ? 5 : 8)));
    }
    for (const s of series) {
      let d = "";
      let pen = "M";
      for (const [t, v] of s.points) {
        if (v === null) { pen = "M"; continue; }
        d += `${pen}${x(t).toFixed(1)},${y(v).toFixed(1)} `;
        pen = "L";
        chart.append(titled(svg("circle", { cx: x(t), cy: y(v), r: 2.5, fill: s.color }),
          `${s.name} ${fmtClock(t)}: ${format(v)}`));
      }
      chart.append(svg("path", { d, stroke: s.color, class: s.dashed ? "line dashed" : "line" }));
    }
    const legend = el("p", { class: "legend" }, ...series.map((s) =>
      el("span", {}, el("i", { style: `background:${s.color}`, class: s.dashed ? "dashed" : "" }), s.name)));
    container.replaceChildren(chart, legend);
  }

  function renderTimeline(since, now) {
    if (!state.timeline) return;
    const bucketMs = BUCKETS[windowS] * 1000;
    const rows = state.timeline.buckets;
    const providers = [...new Set(rows.map((r) => r.provider))].sort();
    const color = colorOf(providers);
    const starts = [];
    for (let t = Math.floor(since / bucketMs) * bucketMs; t <= now; t += bucketMs) starts.push(t);
    const at = new Map(rows.map((r) => [`${r.provider} ${r.bucket_start}`, r]));
    const line = (provider, pick, fill, extra = {}) => ({
      name: provider, color: color(provider), ...extra,
      points: starts.map((t) => {
        const row = at.get(`${provider} ${t}`);
        return [t + bucketMs / 2, row ? pick(row) ?? null : fill];
      }),
    });
    const axis = { xMin: since, xMax: now, empty: "no attempts in this window" };
    lineChart(document.getElementById("chart-success"), providers.map((p) => line(p, (r) => r.success_rate, null)),
      { ...axis, yMax: 1, format: fmtPct });
    lineChart(document.getElementById("chart-attempts"), providers.map((p) => line(p, (r) => r.attempts, 0)),
      { ...axis, format: fmtCount });
    lineChart(document.getElementById("chart-failed"), providers.map((p) => line(p, (r) => r.failed, 0)),
      { ...axis, format: fmtCount });
    const hasLatency = rows.some((r) => "latency_p50_ms" in r);
    lineChart(document.getElementById("chart-latency"), hasLatency ? providers.flatMap((p) => [
      line(p, (r) => r.latency_p50_ms, null, { name: `${p} p50` }),
      line(p, (r) => r.latency_p95_ms, null, { name: `${p} p95`, dashed: true }),
    ]) : [], { ...axis, format: fmtMs,
      empty: hasLatency || !rows.length ? "no sends in this window" : "the API reports no latency per bucket yet" });
    renderBreakerChart(since, now, providers);
  }

  function renderBreakerChart(since, now, seen) {
    const container = document.getElementById("chart-breakers");
    const breakers = state.breakers;
    if (!breakers || !breakers.recorded || !breakers.changes.length) {
      container.replaceChildren(el("p", { class: "empty", "data-testid": "breaker-changes-empty" },
        "no breaker changes recorded in this window"));
      return;
    }
    const names = [...new Set([...seen, ...breakers.providers.map((b) => b.provider),
      ...breakers.changes.map((c) => c.provider)])].sort();
    const W = 1140, L = 90, R = 10, ROW = 22, H = names.length * ROW + 24;
    const x = (t) => L + ((Math.min(Math.max(t, since), now) - since) / Math.max(1, now - since)) * (W - L - R);
    const chart = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img" });
    names.forEach((name, i) => {
      const yTop = i * ROW + 4;
      chart.append(svg("text", { x: L - 6, y: yTop + 13, "text-anchor": "end", class: "tick" }, name));
      const changes = breakers.changes.filter((c) => c.provider === name);
      const current = breakers.providers.find((b) => b.provider === name);
      // Before a provider's first change in the window its state is not known here: drawn grey.
      let from = since;
      let stateName = changes.some((c) => STATE_COLORS[c.state]) ? null : (current ? current.state : "closed");
      for (const change of [...changes, { changed_at: now, state: null }]) {
        // A rate-limit window is not a breaker state: marked, the band goes on.
        if (change.state && !STATE_COLORS[change.state]) {
          chart.append(titled(svg("line", { x1: x(change.changed_at), x2: x(change.changed_at), y1: yTop - 2,
            y2: yTop + ROW - 6, class: "change other" }),
          `${fmtStamp(change.changed_at)} ${change.state}${change.reason ? `: ${change.reason}` : ""}`));
          continue;
        }
        const fill = stateName ? STATE_COLORS[stateName] : "#d1d5db";
        chart.append(titled(svg("rect", { x: x(from), y: yTop, width: Math.max(0, x(change.changed_at) - x(from)),
          height: ROW - 8, fill }), `${name}: ${stateName || "unknown"} from ${fmtClock(from)}`));
        if (change.state) {
          chart.append(titled(svg("line", { x1: x(change.changed_at), x2: x(change.changed_at), y1: yTop - 2,
            y2: yTop + ROW - 6, class: "change" }),
          `${fmtStamp(change.changed_at)} ${change.state} by ${change.worker || "?"}${change.reason ? `: ${change.reason}` : ""}`));
        }
        from = change.changed_at;
        stateName = change.state;
      }
    });
    for (let i = 0; i <= 4; i++) {
      const t = since + ((now - since) * i) / 4;
      chart.append(svg("text", { x: x(t), y: H - 4, "text-anchor": ["start", "middle", "middle", "middle", "end"][i],
        class: "tick" }, fmtClock(t).slice(0, windowS > 3600 ? 5 : 8)));
    }
    const legend = el("p", { class: "legend" }, ...Object.entries(STATE_COLORS).map(([name, c]) =>
      el("span", {}, el("i", { style: `background:${c}` }), name.replace("_", "-"))),
    el("span", {}, el("i", { style: "background:#d1d5db" }), "not known before the first change in this window"));
    container.replaceChildren(chart, legend);
  }

  // ---- durations and failure causes ----

  function renderDurations() {
    const rows = [["queue_time", "queue (accepted → dispatched)", state.queue && state.queue.queue_time],
      ["delivery_time", "delivery (accepted → sent)", state.delivery && state.delivery.delivery_time]];
    document.getElementById("duration-rows").replaceChildren(...rows.map(([metric, label, stats]) => {
      const cell = (field, format) => figure("td", { class: "num", "data-metric": metric, "data-field": field },
        stats ? stats[field] : null, format);
      return el("tr", { "data-metric": metric }, el("th", {}, label), cell("count", fmtCount), cell("p50_ms", fmtMs),
        cell("p95_ms", fmtMs), cell("p99_ms", fmtMs), cell("max_ms", fmtMs));
    }));
  }

  function renderFailureCauses() {
    if (!state.causes) return;
    const fields = ["network", "provider_outage", "rate_limit", "permanent", "provider_failure", "ambiguous", "other", "total"];
    const rows = state.causes.failure_causes.map((row) => el("tr", { "data-provider": row.provider || "" },
      el("th", {}, row.provider || "(none)"),
      ...fields.map((f) => figure("td", { class: "num", "data-provider": row.provider || "", "data-field": `failures_${f}` },
        row[f], fmtCount))));
    document.getElementById("failure-rows").replaceChildren(...(rows.length ? rows
      : [el("tr", {}, el("td", { colspan: fields.length + 1, class: "empty" }, "no failed attempts in this window"))]));
  }

  // ---- mail search ----

  function eventDetail(event) {
    const parts = ["outcome", "cause", "status", "message_id"].filter((k) => event[k]).map((k) => `${k}=${event[k]}`);
    let blob = {};
    try { blob = JSON.parse(event.blob || "{}") || {}; } catch { blob = {}; }
    for (const key of ["reason", "detail", "level"]) {
      if (blob[key] !== undefined && blob[key] !== "") parts.push(`${key}=${typeof blob[key] === "object" ? JSON.stringify(blob[key]) : blob[key]}`);
    }
    if (event.latency_ms !== null && event.latency_ms !== undefined) parts.push(`latency=${fmtMs(event.latency_ms)}`);
    return parts.join("  ");
  }

  async function showTrace(id) {
    const box = document.getElementById("trace");
    const url = new URL(location.href);
    url.searchParams.set("mail", id);
    history.replaceState(null, "", url);
    document.getElementById("mail-id").value = id;
    let trace;
    try {
      trace = await getJson(`${API}/mails/${encodeURIComponent(id)}/trace`);
    } catch (err) {
      traced = null;
      box.replaceChildren(err.status === 404
        ? el("p", { class: "not-found", "data-testid": "trace-not-found" }, `No mail with id “${id}” is known.`)
        : el("p", { class: "error", "data-testid": "trace-error" }, `trace of ${id}: ${err.message}`));
      return;
    }
    traced = { id, finished: trace.finished_at !== null };
    const accepted = trace.accepted_at;
    const rows = trace.events.map((e) => el("tr", { "data-event": e.event },
      el("td", { class: "time" }, fmtStamp(e.created_at)),
      el("td", { class: "num" }, fmtSince(e.created_at, accepted)),
      el("td", { "data-field": "event" }, e.event),
      el("td", {}, e.provider || ""),
      el("td", { class: "by" }, e.created_by || ""),
      el("td", { class: "detail" }, eventDetail(e))));
    // What the provider reported afterwards through its webhooks, joined by message id.
    const reports = trace.feedback.map((f) => el("tr", { "data-feedback": f.event },
      el("td", { class: "time" }, fmtStamp(f.created_at)),
      el("td", { class: "num" }, fmtSince(f.created_at, accepted)),
      el("td", { "data-field": "event" }, f.event),
      el("td", {}, f.provider),
      el("td", { class: "by" }, "webhook"),
      el("td", { class: "detail" }, [`recipient=${f.recipient}`, f.bounce && `bounce=${f.bounce}`,
        f.reason && `reason=${f.reason}`, f.url && `url=${f.url}`].filter(Boolean).join(" "))));
    box.replaceChildren(
      el("p", { class: "summary", "data-mail": id },
        el("strong", { "data-field": "trace-status", "data-value": trace.status },
          trace.bounce ? `${trace.status} (${trace.bounce})` : trace.status),
        ` · accepted ${fmtStamp(accepted)} · finished ${fmtStamp(trace.finished_at)} · providers tried: `,
        trace.providers_tried.join(", ") || "none"),
      el("table", { class: "events" },
        el("thead", {}, el("tr", {}, ...["time", "since acceptance", "event", "provider", "by", "outcome / cause / status / reason"]
          .map((h) => el("th", {}, h)))),
        el("tbody", {}, ...rows, ...reports)));
  }

  // ---- refresh loop ----

  async function refresh() {
    const mine = ++generation;
    clearTimeout(timer);
    const now = Date.now();
    const since = now - windowS * 1000;
    const requests = {
      providers: getJson(`${API}/providers?since=${since}`),
      breakers: getBreakers(since),
      timeline: getJson(`${API}/providers/timeline?since=${since}&bucket_s=${BUCKETS[windowS]}`),
      queue: getJson(`${API}/queue-time?since=${since}`),
      delivery: getJson(`${API}/delivery-time?since=${since}`),
      causes: getJson(`${API}/failure-causes?since=${since}`),
      unfinished: getJson(`${API}/unfinished?older_than_s=${UNFINISHED_AFTER_S}&limit=${UNFINISHED_LIMIT}`),
      lag: getJson(`${API}/lag`),
    };
    const settled = await Promise.allSettled(Object.values(requests));
    if (mine !== generation) return;
    Object.keys(requests).forEach((source, i) => {
      const result = settled[i];
      if (result.status === "fulfilled") {
        state[source] = result.value;
        errors.delete(source);
      } else {
        errors.set(source, result.reason.message);
      }
    });
    const sections = { health: renderHealth, queues: renderQueues, timeline: () => renderTimeline(since, now),
      durations: renderDurations, failures: renderFailureCauses };
    for (const [section, render] of Object.entries(sections)) {
      try {
        render();
        errors.delete(`drawing ${section}`);
      } catch (err) {
        errors.set(`drawing ${section}`, err.message);
      }
    }
    if (traced && !traced.finished) await showTrace(traced.id);
    showErrors();
    const stamp = document.getElementById("last-refresh");
    stamp.dataset.value = now;
    stamp.textContent = `${fmtClock(now)}${errors.size ? " (with errors)" : ""}`;
    timer = setTimeout(refresh, REFRESH_MS);
  }

  function selectWindow(seconds) {
    windowS = seconds;
    for (const button of document.querySelectorAll("#window button")) {
      button.setAttribute("aria-pressed", String(Number(button.dataset.windowS) === seconds));
    }
    const url = new URL(location.href);
    url.searchParams.set("window", seconds);
    history.replaceState(null, "", url);
  }

  document.getElementById("window").addEventListener("click", (event) => {
    const seconds = Number(event.target.dataset && event.target.dataset.windowS);
    if (BUCKETS[seconds]) {
      selectWindow(seconds);
      refresh();
    }
  });
  document.getElementById("api-key").value = apiKey;
  document.getElementById("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    apiKey = document.getElementById("api-key").value.trim();
    sessionStorage.setItem(KEY_STORE, apiKey);
    refresh();
    if (traced) showTrace(traced.id);
  });
  document.getElementById("mail-search").addEventListener("submit", (event) => {
    event.preventDefault();
    const id = document.getElementById("mail-id").value.trim();
    if (id) showTrace(id);
  });
  document.getElementById("trace").closest("main").addEventListener("click", (event) => {
    const link = event.target.closest("a[data-mail]");
    if (link) {
      event.preventDefault();
      showTrace(link.dataset.mail);
      document.getElementById("search").scrollIntoView();
    }
  });

  for (const [id, sources] of [["health", "providers breakers"], ["queues", "lag unfinished"],
    ["timeline", "timeline breakers"], ["durations", "queue delivery"], ["failures", "causes"]]) {
    document.getElementById(id).dataset.sources = sources;
  }
  selectWindow(windowS);
  if (params.get("mail")) showTrace(params.get("mail"));
  refresh();
})();
