// shoal's dashboard: polls the same API any client uses
// (GET /api/tm/1.0/status and /api/tm/1.0/events) once a second, and
// acts through it (PUT /api/tm/1.0/nodes/NODE). No library, no build
// step: the browser already holds the credentials it was asked for.
"use strict";
const API = "/api/tm/1.0";
const HISTORY = 300; // seconds of chart
const history = [];
let last = null;

const $ = (id) => document.getElementById(id);
const el = (tag, attrs = {}, ...kids) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v; else if (k.startsWith("on")) e.addEventListener(k.slice(2), v); else e.setAttribute(k, v);
  }
  for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  return e;
};
const fmt = (n, unit = "") => {
  if (!isFinite(n)) return "–";
  const a = Math.abs(n);
  const s = a >= 1e9 ? (n / 1e9).toFixed(1) + "G" : a >= 1e6 ? (n / 1e6).toFixed(1) + "M" : a >= 1e4 ? (n / 1e3).toFixed(1) + "k" : (a >= 100 || Number.isInteger(n) ? n.toFixed(0) : n.toFixed(1));
  return s + unit;
};

function totals(st) {
  let requests = 0, bytes = 0, conns = 0, errors = 0, time = 0;
  for (const v of Object.values(st.virtual_servers)) {
    requests += v.requests; bytes += v.bytes_out; conns += v.current_connections;
    errors += Object.values(v.errors).reduce((a, b) => a + b, 0);
    time += v.request_time_avg_seconds * v.requests;
  }
  return { requests, bytes, conns, errors, time, at: performance.now() };
}

function overview(st) {
  const t = totals(st);
  if (last) {
    const dt = (t.at - last.at) / 1000;
    const rate = (t.requests - last.requests) / dt;
    $("rate").textContent = fmt(rate);
    $("bandwidth").textContent = fmt((t.bytes - last.bytes) / dt, "B");
    $("errors").textContent = fmt((t.errors - last.errors) / dt);
    const dr = t.requests - last.requests;
    $("rt").textContent = dr > 0 ? fmt(((t.time - last.time) / dr) * 1000, " ms") : "–";
    history.push(rate);
    if (history.length > HISTORY) history.shift();
    chart();
  }
  $("connections").textContent = fmt(t.conns);
  last = t;
}

function chart() {
  const svg = $("chart");
  const max = Math.max(1, ...history);
  const pts = history.map((v, i) => `${(600 * (i + HISTORY - history.length)) / (HISTORY - 1)},${118 - (v / max) * 110}`).join(" ");
  svg.innerHTML = `<polyline fill="none" stroke="#0969da" stroke-width="2" points="${pts}"/>` +
    `<text x="4" y="12" font-size="10" fill="#656d76">${fmt(max)}/s</text>`;
  svg.dataset.points = history.length;
}

function virtualServers(st) {
  const body = $("vs").tBodies[0];
  body.replaceChildren(...Object.entries(st.virtual_servers).map(([name, v]) => el("tr", {},
    el("td", {}, name), el("td", {}, v.protocol), el("td", {}, v.pool), el("td", {}, v.current_connections),
    el("td", {}, v.requests), el("td", {}, `${v.responses["2xx"]}/${v.responses["4xx"]}/${v.responses["5xx"]}`),
    el("td", {}, v.cache ? v.cache.hits : 0))));
}

// The reason a node is down: the last node.down event that names it.
let reasons = new Map();

async function act(node, pool, state) {
  if (!(await confirmed(`Set node ${node} ${state} in pool ${pool}?`))) return;
  const r = await fetch(`${API}/nodes/${encodeURIComponent(node)}`, {
    method: "PUT", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ state, pools: [pool] }),
  });
  if (!r.ok) alert(`${node}: ${r.status} ${await r.text()}`);
  refresh();
}

function pools(st) {
  const out = Object.entries(st.pools).map(([name, p]) => {
    const rows = p.nodes.map((n) => {
      const down = n.health !== "alive" || n.state === "disabled";
      const reason = n.health !== "alive" ? (reasons.get(n.node) || n.health) : "";
      return el("tr", { class: down ? "down" : "", "data-node": n.node },
        el("td", {}, n.node),
        el("td", { class: "state state-" + n.state }, n.state),
        el("td", { class: "health health-" + n.health }, n.health),
        el("td", { class: "text reason" }, reason),
        el("td", {}, n.current_connections), el("td", {}, n.idle_connections), el("td", {}, n.requests),
        el("td", {}, fmt(n.response_time_avg_seconds * 1000, " ms")),
        el("td", {}, n.seconds_since_last_used == null ? "never" : fmt(n.seconds_since_last_used, " s ago")),
        el("td", {}, ...["draining", "disabled", "active"].filter((s) => s !== n.state).map((s) =>
          el("button", { type: "button", "data-action": s, onclick: () => act(n.node, name, s) },
            s === "active" ? "enable" : s === "draining" ? "drain" : "disable"))));
    });
    return el("div", { class: "pool", id: "pool-" + name },
      el("h3", {}, `${name} `, el("span", { class: "muted" }, `${p.nodes.length} node(s)`)),
      el("table", {}, el("thead", {}, el("tr", {}, ...["Node", "State", "Health", "Reason", "Conns", "Idle", "Requests", "Response", "Last used", "Actions"].map((h) => el("th", {}, h)))),
        el("tbody", {}, ...rows)));
  });
  // Keep focus on a button across refreshes (keyboard users).
  const focused = document.activeElement && document.activeElement.closest("[data-node]");
  const key = focused ? [focused.dataset.node, document.activeElement.dataset.action] : null;
  $("pools").replaceChildren(...out);
  if (key) {
    const b = document.querySelector(`[data-node="${key[0]}"] [data-action="${key[1]}"]`);
    if (b) b.focus();
  }
}

function classes(st) {
  const rows = [];
  for (const [n, c] of Object.entries(st.service_levels || {})) {
    rows.push(el("tr", { "data-class": n }, el("td", {}, n), el("td", {}, "service level"),
      el("td", { class: "slm-" + c.state }, c.state),
      el("td", {}, `${c.window.percent_conforming}% of ${c.window.requests} within ${c.response_time_ms} ms (last 10 s)`)));
  }
  for (const [n, c] of Object.entries(st.rate_classes || {})) {
    rows.push(el("tr", { "data-class": n }, el("td", {}, n), el("td", {}, "rate"), el("td", {}, ""),
      el("td", {}, `${c.passed} passed, ${c.queued} queued, ${c.refused} refused`)));
  }
  for (const [n, c] of Object.entries(st.bandwidth_classes || {})) {
    rows.push(el("tr", { "data-class": n }, el("td", {}, n), el("td", {}, "bandwidth"), el("td", {}, ""),
      el("td", {}, `${fmt(c.max_rate_bits, "bit/s")}${c.per_connection ? " per connection" : ""}, ${fmt(c.bytes, "B")} sent`)));
  }
  $("classes").tBodies[0].replaceChildren(...rows);
}

function cache(st) {
  const m = st.cache.memory, d = st.cache.disk;
  const rows = [
    el("tr", {}, el("td", {}, "cache (memory)"), el("td", { id: "cache-objects" }, m.objects), el("td", {}, fmt(m.bytes, "B")),
      el("td", {}, `${m.stored} stored, ${m.evictions} evicted, ${m.purged} purged`)),
    el("tr", {}, el("td", {}, "cache (disk)"), el("td", {}, d.objects), el("td", {}, fmt(d.bytes, "B")),
      el("td", {}, `${d.writes} written, ${d.evictions} evicted`)),
  ];
  for (const [n, p] of Object.entries(st.persistence || {})) {
    rows.push(el("tr", {}, el("td", {}, `persistence ${n} (${p.type})`), el("td", {}, p.entries), el("td", {}, ""),
      el("td", {}, `max ${p.max_entries}, ${p.evictions} evicted`)));
  }
  $("cache").tBodies[0].replaceChildren(...rows);
}

async function confirmed(text) {
  const d = $("confirm");
  $("confirm-text").textContent = text;
  d.showModal();
  return (await new Promise((ok) => d.addEventListener("close", () => ok(d.returnValue), { once: true }))) === "ok";
}

$("purge").addEventListener("click", async () => {
  if (!(await confirmed("Purge every object from the cache, on every shard?"))) return;
  const r = await fetch(`${API}/cache/purge`, { method: "POST", headers: { "Content-Type": "application/json" }, body: '{"all": true}' });
  $("purged").textContent = r.ok ? `purged ${(await r.json()).purged} object(s)` : `purge failed: ${r.status}`;
  refresh();
});

function events(list) {
  reasons = new Map();
  for (const e of list) {
    if (e.type === "node.down") for (const t of e.tags) reasons.set(t, e.text);
    if (e.type === "node.up") for (const t of e.tags) reasons.delete(t);
  }
  $("events").tBodies[0].replaceChildren(...list.slice(-20).reverse().map((e) => el("tr", {},
    el("td", {}, e.time.replace("T", " ").replace(/\.\d+Z$/, "Z")), el("td", {}, e.level), el("td", {}, e.type),
    el("td", { class: "text" }, e.text))));
}

async function refresh() {
  try {
    const [s, e] = await Promise.all([fetch(`${API}/status`), fetch(`${API}/events?limit=200`)]);
    if (!s.ok) throw new Error(`status: ${s.status}`);
    const st = await s.json();
    if (e.ok) events((await e.json()).events);
    $("generation").textContent = `configuration generation ${st.generation}, ${st.shards} shard(s)`;
    overview(st);
    virtualServers(st);
    classes(st);
    cache(st);
    if (!$("confirm").open) pools(st);
    $("updated").textContent = "updated " + new Date().toLocaleTimeString();
  } catch (err) {
    $("updated").textContent = "not updated: " + err.message;
  }
}

refresh();
setInterval(refresh, 1000);
