// shoal's dashboard: polls the same API any client uses
// (GET /api/tm/1.0/status, /status/history and /events) once a second,
// and acts through it (PUT /api/tm/1.0/nodes/NODE, POST /cache/purge). No library, no build
// step: the browser already holds the credentials it was asked for.
"use strict";
const API = "/api/tm/1.0";
const WINDOW = 600; // seconds the charts span (the API keeps as many samples)
let samples = []; // GET /status/history, oldest first
let lastMs = null; // time_ms of the newest sample held

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

// The overview's figures are the newest sample; its charts, the samples
// of the last WINDOW seconds, kept by shoal (so a new page starts full).
const CHARTS = [
  ["chart", "requests_per_second", "/s"],
  ["chart-bandwidth", "bytes_out_per_second", "B/s"],
  ["chart-connections", "connections", ""],
  ["chart-errors", "errors_per_second", "/s"],
  ["chart-rt", "response_time_avg_ms", " ms"],
];

function overview(history) {
  samples = samples.concat(history.samples);
  if (!samples.length) return;
  lastMs = samples[samples.length - 1].time_ms;
  samples = samples.filter((s) => s.time_ms > lastMs - WINDOW * 1000);
  const s = samples[samples.length - 1];
  $("rate").textContent = fmt(s.requests_per_second);
  $("bandwidth").textContent = fmt(s.bytes_out_per_second, "B");
  $("connections").textContent = fmt(s.connections);
  $("errors").textContent = fmt(s.errors_per_second);
  $("rt").textContent = s.requests_per_second > 0 ? fmt(s.response_time_avg_ms, " ms") : "–";
  // The time axis spans what shoal has kept: a minute at least, WINDOW at most.
  const span = Math.min(WINDOW, Math.max(60, Math.ceil((lastMs - samples[0].time_ms) / 1000) + 1));
  for (const [id, key, unit] of CHARTS) chart($(id), key, unit, lastMs - span * 1000, span);
}

function chart(svg, key, unit, from, span) {
  const w = 600, h = Number(svg.viewBox.baseVal.height) || 120;
  const max = Math.max(1e-9, ...samples.map((s) => s[key]));
  const pts = samples.map((s) => `${(((s.time_ms - from) / (span * 1000)) * w).toFixed(1)},${(h - 2 - (s[key] / max) * (h - 14)).toFixed(1)}`).join(" ");
  svg.innerHTML = `<polyline fill="none" stroke="#0969da" stroke-width="2" vector-effect="non-scaling-stroke" points="${pts}"/>`;
  svg.dataset.points = samples.length;
  // The scale is HTML beside the drawing: text in a stretched SVG would be stretched too.
  const ago = span >= 120 ? `${Math.round(span / 60)} min` : `${span} s`;
  $(svg.id + "-max").textContent = `(top: ${fmt(max, unit)}, last ${ago})`;
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

// The pools of each node, from the last status (for "in every pool").
let nodePools = new Map();

async function act(node, pool, state) {
  const others = (nodePools.get(node) || []).filter((p) => p !== pool);
  const choice = others.length ? `also in ${others.join(", ")} (every pool that has it)` : null;
  if (!(await confirmed(`Set node ${node} ${state} in pool ${pool}?`, choice))) return;
  const everywhere = choice && $("confirm-all").checked;
  const r = await fetch(`${API}/nodes/${encodeURIComponent(node)}`, {
    method: "PUT", headers: { "Content-Type": "application/json" },
    // Without "pools" the API sets the node's state in every pool that has it.
    body: JSON.stringify(everywhere ? { state } : { state, pools: [pool] }),
  });
  if (!r.ok) alert(`${node}: ${r.status} ${await r.text()}`);
  refresh();
}

function pools(st) {
  nodePools = new Map();
  for (const [name, p] of Object.entries(st.pools)) for (const n of p.nodes) nodePools.set(n.node, [...(nodePools.get(n.node) || []), name]);
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

// A modal confirmation; `choice`, when given, is the label of a checkbox
// (#confirm-all) the caller reads after it.
async function confirmed(text, choice = null) {
  const d = $("confirm");
  $("confirm-text").textContent = text;
  $("confirm-choice").hidden = !choice;
  $("confirm-all").checked = false;
  $("confirm-all-label").textContent = choice || "";
  d.showModal();
  return (await new Promise((ok) => d.addEventListener("close", () => ok(d.returnValue), { once: true }))) === "ok";
}

// POST /cache/purge with `body` once the operator confirms `question`.
async function purge(question, body) {
  if (!(await confirmed(question))) return;
  const r = await fetch(`${API}/cache/purge`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  $("purged").textContent = r.ok ? `purged ${(await r.json()).purged} object(s)` : `purge failed: ${r.status} ${(await r.json().catch(() => ({}))).error_text || ""}`;
  refresh();
}

$("purge").addEventListener("click", () => purge("Purge every object from the cache, on every shard?", { all: true }));

$("purge-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const kind = $("purge-kind").value, target = $("purge-target").value.trim();
  if (target) purge(`Purge ${kind === "prefix" ? "every object under" : "the object at"} ${target}, on every shard?`, { [kind]: target });
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
    const since = lastMs === null ? "" : `?since=${lastMs}`;
    const [s, e, h] = await Promise.all([fetch(`${API}/status`), fetch(`${API}/events?limit=200`), fetch(`${API}/status/history${since}`)]);
    if (!s.ok) throw new Error(`status: ${s.status}`);
    const st = await s.json();
    if (e.ok) events((await e.json()).events);
    if (h.ok) overview(await h.json());
    $("generation").textContent = `configuration generation ${st.generation}, ${st.shards} shard(s)`;
    virtualServers(st);
    classes(st);
    cache(st);
    if (!$("confirm").open) pools(st);
    if (configShown !== null && configShown !== st.generation && $("config-view").open) loadConfig(st.generation);
    $("updated").textContent = "updated " + new Date().toLocaleTimeString();
  } catch (err) {
    $("updated").textContent = "not updated: " + err.message;
  }
}

// The configuration objects, read-only, through the same API an editor
// uses (GET /config/active/TYPE/NAME): loaded when the view is opened and
// again when the configuration's generation changes. A value that names
// another object links to it; each object lists what refers to it.
const REFS = {
  virtual_servers: { pool: "pools", request_rules: "rules", response_rules: "rules", rate_class: "rate_classes",
    bandwidth_class: "bandwidth_classes", service_level: "service_levels", sni_pools: "pools" },
  pools: { monitors: "monitors", persistence: "persistence" },
};
const HIDDEN = /secret|password|token/i; // shown as •••• (the API still has them)
let configShown = null;
const cfgId = (kind, name) => `cfg-${kind}-${name}`;

async function getJson(path) {
  const r = await fetch(API + path);
  if (!r.ok) throw new Error(`${path}: ${r.status} ${(await r.json().catch(() => ({}))).error_text || ""}`);
  return r.json();
}

async function loadConfig(generation) {
  configShown = generation;
  const box = $("config");
  try {
    const kinds = (await getJson("/config/active")).children.map((c) => c.name).filter((k) => k !== "files");
    const objects = {};
    await Promise.all(kinds.map(async (k) => {
      const names = (await getJson(`/config/active/${k}`)).children.map((c) => c.name);
      objects[k] = await Promise.all(names.map(async (n) => [n, (await getJson(`/config/active/${k}/${encodeURIComponent(n)}`)).properties]));
    }));
    // Who refers to whom, from the same keys.
    const usedBy = new Map();
    const targets = (kind, key, value) => {
      const to = (REFS[kind] || {})[key];
      if (!to) return [];
      const names = typeof value === "string" ? [value] : Array.isArray(value) ? value : value && typeof value === "object" ? Object.values(value) : [];
      return names.filter((n) => typeof n === "string").map((n) => [to, n]);
    };
    const referable = new Set(Object.values(REFS).flatMap((r) => Object.values(r)));
    for (const k of kinds) for (const [n, props] of objects[k]) for (const [key, v] of Object.entries(props.basic))
      for (const [to, t] of targets(k, key, v)) {
        const id = cfgId(to, t);
        if (!usedBy.has(id)) usedBy.set(id, []);
        usedBy.get(id).push([k, n]);
      }
    const link = (kind, name) => el("a", { href: "#" + cfgId(kind, name) }, name);
    const value = (kind, key, v) => {
      if (HIDDEN.test(key) && typeof v === "string") return "••••";
      const refs = targets(kind, key, v);
      if (!refs.length) return typeof v === "string" ? v : JSON.stringify(v);
      const span = el("span", {});
      refs.forEach(([to, t], i) => { if (i) span.append(", "); span.append(link(to, t)); });
      return span;
    };
    const out = [];
    for (const k of kinds) {
      if (!objects[k].length) continue;
      out.push(el("h3", {}, k.replace(/_/g, " ")));
      for (const [n, props] of objects[k]) {
        const rows = [];
        for (const [key, v] of Object.entries(props.basic)) rows.push(el("tr", {}, el("th", {}, key), el("td", { class: "text" }, value(k, key, v))));
        for (const [section, v] of Object.entries(props)) if (section !== "basic") {
          const shown = JSON.stringify(v, (key, x) => (HIDDEN.test(key) && typeof x === "string" ? "••••" : x));
          rows.push(el("tr", {}, el("th", {}, `[${section}]`), el("td", { class: "text code" }, shown)));
        }
        const users = usedBy.get(cfgId(k, n)) || [];
        const extra = k === "pools" ? [" · ", el("a", { href: "#pool-" + n }, "live figures")] : [];
        out.push(el("div", { class: "object", id: cfgId(k, n) },
          el("h4", {}, n, " ", el("span", { class: "muted" }, users.length ? "used by " : referable.has(k) ? "unused" : ""),
            ...users.flatMap(([uk, un], i) => [i ? ", " : "", link(uk, un)]), ...extra),
          el("table", {}, el("tbody", {}, ...rows))));
      }
    }
    box.replaceChildren(...out);
    $("config-note").textContent = `generation ${generation}, as the API reads it`;
  } catch (err) {
    box.replaceChildren(el("p", { class: "muted" }, "cannot read the configuration: " + err.message));
  }
}

$("config-view").addEventListener("toggle", () => {
  if ($("config-view").open) getJson("/status").then((st) => loadConfig(st.generation)).catch((err) => $("config").replaceChildren(String(err)));
});

refresh();
setInterval(refresh, 1000);
