import { api, h, clear, content, status, init, guarded, table, badge, when, bytes, liveEvents, may, workload as refName } from "/ui/static/app.js";

// The network map: who talks to whom, where card data flows in clear. Workloads are grouped by
// namespace (compound nodes; a namespace can be collapsed into one node, and large ones start
// collapsed), external addresses and the internet are nodes of their own. Edges are coloured by
// status and encryption, with a DLP badge where card numbers or personal data went in clear.

const COLLAPSE_ABOVE = 40; // workloads in a namespace before it starts collapsed
const params = new URLSearchParams(location.search);
const state = {
  level: params.get("level") || "workload",
  namespace: params.get("namespace") || "",
  encryption: params.get("encryption") || "",
  violations: params.get("violations") === "1",
  since: params.get("since") || "24h",
  protocol: params.get("protocol") || "",
  search: "",
  hidden: new Set(JSON.parse(localStorage.getItem("stockade.map.hidden") || "[]")),
  collapsed: new Set(),
  expanded: new Set(),
};
let graph = { nodes: [], edges: [] };
let byId = new Map(); // node id -> node
let byKey = new Map(); // "namespace/name" (or the address) -> node
let drawnAs = new Map(); // node id -> the id it is drawn as (itself, or its collapsed namespace)
let cy = null;
let stopLive = null;
let refreshTimer = null;
const timings = {};

const COLOURS = { clear: "#c62828", tls: "#2e7d32", violation: "#ef6c00", blocked: "#6a1b9a", ok: "#607d8b" };

function edgeClass(e) {
  if (e.status === "blocked") return "blocked";
  if (e.status === "violation") return "violation";
  // "mixed": some connections in clear, which is what matters
  return e.encryption === "tls" ? "tls" : e.encryption === "clear" || e.encryption === "mixed" ? "clear" : "ok";
}

function dlpCount(e) {
  if (typeof e.dlp_hits === "number" && !e.members) return e.dlp_hits;
  if (!e.dlp) return 0;
  if (typeof e.dlp === "number") return e.dlp;
  return Object.values(e.dlp).reduce((a, b) => a + Number(b || 0), 0);
}

function nodeLabel(n) {
  const marks = [];
  if (n.quarantined) marks.push("QUARANTINED");
  if (n.mode) marks.push(n.mode);
  if (n.critical) marks.push(`${n.critical} critical`);
  return marks.length ? `${n.label || n.name || n.id}\n${marks.join(" · ")}` : (n.label || n.name || n.id);
}

function namespaceOf(n) {
  return n.namespace || (n.kind === "namespace" ? n.name : null);
}

// The graph as drawn: hidden nodes dropped, collapsed namespaces folded into one node each.
function drawn() {
  const text = state.search.toLowerCase();
  const counts = new Map();
  for (const n of graph.nodes) {
    const ns = namespaceOf(n);
    if (state.level === "workload" && ns && n.kind !== "namespace") counts.set(ns, (counts.get(ns) || 0) + 1);
  }
  for (const [ns, count] of counts) if (count > COLLAPSE_ABOVE && !state.expanded.has(ns)) state.collapsed.add(ns);
  const fold = (n) => {
    const ns = namespaceOf(n);
    return state.level === "workload" && ns && state.collapsed.has(ns) && n.kind !== "external" ? `ns:${ns}` : n.id;
  };
  const elements = [];
  const seen = new Set();
  const alias = new Map();
  drawnAs = alias;
  const parents = new Set();
  for (const n of graph.nodes) {
    if (state.hidden.has(n.id)) continue;
    const id = fold(n);
    alias.set(n.id, id);
    if (seen.has(id)) continue;
    seen.add(id);
    const ns = namespaceOf(n);
    if (id.startsWith("ns:") && id !== n.id) {
      elements.push({ group: "nodes", data: { id, label: `${ns} (collapsed)`, kind: "collapsed", namespace: ns }, classes: "collapsed" });
      continue;
    }
    const parent = state.level === "workload" && ns && n.kind !== "namespace" ? `parent:${ns}` : undefined;
    if (parent) parents.add(ns);
    const classes = [n.kind || "workload"];
    if (n.quarantined) classes.push("quarantined");
    if (n.critical) classes.push("vulnerable");
    if (text && !(`${n.label || ""} ${n.name || ""} ${ns || ""}`.toLowerCase().includes(text))) classes.push("faded");
    elements.push({ group: "nodes", data: { ...n, id, parent, label: nodeLabel(n) }, classes: classes.join(" ") });
  }
  for (const ns of parents) elements.push({ group: "nodes", data: { id: `parent:${ns}`, label: ns, kind: "namespace-box", namespace: ns }, classes: "box" });
  const merged = new Map();
  for (const e of graph.edges) {
    const s = alias.get(e.source);
    const t = alias.get(e.target);
    if (!s || !t) continue;
    if (state.protocol && !(e.applications || e.protocols || []).includes(state.protocol)) continue;
    const key = `${s}>${t}#${e.encryption}`;
    const prior = merged.get(key);
    if (!prior) {
      merged.set(key, { ...e, id: e.id && s === e.source && t === e.target ? e.id : `m:${key}`, source: s, target: t, members: [e] });
    } else {
      prior.members.push(e);
      prior.connections = (prior.connections || 0) + (e.connections || 0);
      prior.bytes = (prior.bytes || 0) + (e.bytes || 0);
      const rank = { blocked: 3, violation: 2, ok: 1 };
      if ((rank[e.status] || 0) > (rank[prior.status] || 0)) prior.status = e.status;
      if (e.encryption === "clear") prior.encryption = "clear";
      prior.dlp = dlpCount(prior) + dlpCount(e);
    }
  }
  for (const e of merged.values()) {
    const cls = [edgeClass(e)];
    if (dlpCount(e)) cls.push("dlp");
    elements.push({ group: "edges", data: { ...e, label: dlpCount(e) ? `DLP ${dlpCount(e)}` : "" }, classes: cls.join(" ") });
  }
  return elements;
}

function style(many = false) {
  return [
    { selector: "node", style: { label: "data(label)", "text-wrap": "wrap", "font-size": 11, "text-valign": "bottom", "text-margin-y": 4, "background-color": "#546e7a", width: 26, height: 26 } },
    { selector: "node.external", style: { shape: "round-rectangle", "background-color": "#8d6e63" } },
    { selector: "node.internet", style: { shape: "star", "background-color": "#8d6e63", width: 34, height: 34 } },
    { selector: "node.collapsed", style: { shape: "round-hexagon", "background-color": "#78909c", width: 40, height: 40 } },
    { selector: "node.box", style: { "background-opacity": 0.06, "border-width": 1, "border-color": "#90a4ae", "text-valign": "top", "font-weight": "bold", shape: "round-rectangle" } },
    { selector: "node.vulnerable", style: { "background-color": "#c62828" } },
    { selector: "node.quarantined", style: { "border-width": 5, "border-color": "#6a1b9a", "border-style": "double" } },
    { selector: "node.faded, edge.faded", style: { opacity: 0.2 } },
    { selector: "node:selected", style: { "overlay-opacity": 0.2, "overlay-color": "#1f5fbf" } },
    { selector: "edge", style: { width: 2, "curve-style": many ? "straight" : "bezier", "target-arrow-shape": "triangle", "line-color": COLOURS.ok, "target-arrow-color": COLOURS.ok, "font-size": 10, label: "data(label)", "text-background-color": "#c62828", "text-background-opacity": 1, "text-background-padding": 2, color: "#fff" } },
    ...["clear", "tls", "violation", "blocked"].map((c) => ({ selector: `edge.${c}`, style: { "line-color": COLOURS[c], "target-arrow-color": COLOURS[c] } })),
    { selector: "edge.clear", style: { "line-style": "dashed" } },
    { selector: "edge.dlp", style: { width: 4 } },
    { selector: "edge:selected", style: { width: 6 } },
  ];
}

function side() {
  return document.getElementById("side");
}

async function showEdge(e) {
  const box = clear(side());
  const members = e.members || [e];
  box.append(h("h2", {}, `${e.source_label || e.source} → ${e.target_label || e.target}`),
    h("p", {}, badge(edgeClass(e)), dlpCount(e) ? badge(`DLP ${dlpCount(e)}`, "dlp") : null),
    table([
      { title: "Ports", value: (m) => (m.ports || []).join(", ") },
      { title: "Application", value: (m) => (m.applications || m.protocols || []).join(", ") },
      { title: "Encryption", value: (m) => [m.encryption, ...(m.tls_versions || [])].filter(Boolean).join(" ") },
      { title: "Status", value: (m) => m.status },
      { title: "Connections", value: (m) => m.connections },
      { title: "Bytes", value: (m) => bytes(m.bytes) },
      { title: "Last seen", value: (m) => when(m.last_seen) },
    ], members));
  const from = byId.get(members[0].source);
  const to = byId.get(members[0].target);
  if (from && to) {
    const q = new URLSearchParams({ limit: "50", since: state.since });
    if (from.namespace) q.set("namespace", from.namespace);
    const found = await api(`/api/v1/events?${q}`);
    const related = found.events.filter((ev) => refName(ev.resource) === nodeKey(from) && (!ev.peer || refName(ev.peer) === nodeKey(to) || ev.peer.name === to.name));
    box.append(h("h2", {}, "Events on this edge (masked evidence)"),
      table([
        { title: "Time", value: (ev) => when(ev.at) },
        { title: "Event", value: (ev) => ev.kind },
        { title: "Evidence", value: (ev) => (ev.data?.evidence || []).join(", ") || ev.message },
      ], related, { empty: "No events in the window." }));
    const port = (members[0].ports || [])[0];
    const app = (members[0].applications || members[0].protocols || [])[0];
    const rule = ruleFor(from, to, port, app);
    box.append(h("h2", {}, "Make a rule from this"), rule
      ? [h("pre", { id: "rule-snippet" }, rule), h("a", { href: `/ui/policy?add=${encodeURIComponent(rule)}` }, "Open it in the policy editor (diff, then apply)")]
      : h("p", {}, "Both ends need a firewall group first: no group selects one of them."));
  }
}

function nodeKey(n) {
  return n.namespace ? `${n.namespace}/${n.name}` : n.name;
}

function ruleFor(from, to, port, app) {
  const a = (from.groups || [])[0];
  const b = (to.groups || [])[0];
  if (!a || !b) return null;
  return [
    `- name: ${`allow-${a}-to-${b}`.toLowerCase().replace(/[^a-z0-9.-]+/g, "-").slice(0, 60)}`,
    `  from: [${a}]`,
    `  to: [${b}]`,
    port ? `  ports: [${port}]` : null,
    app ? `  protocols: [${app.startsWith("proto.") ? app : `proto.${app}`}]` : null,
  ].filter(Boolean).join("\n");
}

async function showNode(n) {
  const box = clear(side());
  if (n.kind === "collapsed" || n.kind === "namespace-box") {
    const ns = n.namespace;
    box.append(h("h2", {}, `namespace ${ns}`), h("button", { type: "button", onclick: () => { toggle(ns); } }, state.collapsed.has(ns) ? "Expand" : "Collapse"));
    return;
  }
  box.append(h("h2", {}, n.name || n.id),
    h("p", {}, n.namespace ? `namespace ${n.namespace}` : n.kind, " ", n.mode ? badge(n.mode, n.mode.toLowerCase()) : null,
      n.quarantined ? badge("quarantined") : null, n.critical ? badge(`${n.critical} critical`, "critical") : null));
  const group = (n.groups || [])[0];
  if (n.groups?.length) box.append(h("p", {}, `groups ${n.groups.join(", ")}`));
  const actions = h("div", { class: "actions" });
  if (n.namespace && may("operator")) {
    const path = `/api/v1/quarantine/${encodeURIComponent(n.namespace)}/${encodeURIComponent(n.name)}`;
    actions.append(n.quarantined
      ? h("button", { type: "button", id: "lift", onclick: () => guarded(async () => { await api(path, { method: "DELETE" }); status(`quarantine of ${nodeKey(n)} lifted`); await again(n); }) }, "Lift quarantine")
      : h("button", { type: "button", id: "quarantine", class: "danger", onclick: () => guarded(async () => { await api(path, { method: "POST", json: { reason: "quarantined from the network map" } }); status(`${nodeKey(n)} quarantined`); await again(n); }) }, "Quarantine"));
    if (group) {
      for (const mode of ["Discover", "Monitor", "Protect"]) {
        actions.append(h("button", { type: "button", class: "secondary", "data-mode": mode, disabled: (n.mode || "").toLowerCase() === mode.toLowerCase(), onclick: () => guarded(async () => {
          await api(`/api/v1/groups/${encodeURIComponent(group)}/mode`, { method: "PUT", json: { mode: mode.toLowerCase() } });
          status(`group ${group} is in ${mode}`);
          await again(n);
        }) }, mode));
      }
    }
    actions.append(h("button", { type: "button", class: "secondary", id: "capture", onclick: () => guarded(async () => {
      const made = await api("/api/v1/captures", { method: "POST", json: { namespace: n.namespace, name: n.name, duration: "30s" } });
      status(`capture ${made.id} requested (30 s); see the events page`);
    }) }, "Capture 30 s"));
  }
  box.append(actions);
  const hide = h("button", { type: "button", class: "secondary", onclick: () => { state.hidden.add(n.id); saveHidden(); render(); } }, "Hide from the map");
  box.append(hide);
  if (n.namespace) {
    const q = new URLSearchParams({ namespace: n.namespace, since: state.since, limit: "100" });
    const found = await api(`/api/v1/events?${q}`);
    const mine = found.events.filter((ev) => refName(ev.resource) === nodeKey(n) || refName(ev.peer) === nodeKey(n));
    box.append(h("h2", {}, "Events"), table([
      { title: "Time", value: (ev) => when(ev.at) },
      { title: "Level", value: (ev) => badge(ev.severity, ev.severity) },
      { title: "Event", value: (ev) => ev.kind },
      { title: "Message", value: (ev) => ev.message },
    ], mine.slice(0, 30), { empty: "No events in the window." }));
    box.append(h("a", { href: `/ui/vulnerabilities?workload=${encodeURIComponent(nodeKey(n))}` }, "Vulnerabilities of its images"), " · ",
      h("a", { href: "/ui/policy" }, "Policy"));
  }
}

// After an action: the graph again, and the panel of the same node with its new state.
async function again(n) {
  await refresh(true);
  const fresh = byId.get(n.id);
  if (fresh) await showNode(fresh);
}

function saveHidden() {
  localStorage.setItem("stockade.map.hidden", JSON.stringify([...state.hidden]));
  renderHidden();
}

function renderHidden() {
  const box = clear(document.getElementById("hidden"));
  if (!state.hidden.size) return;
  box.append("Hidden: ");
  for (const id of state.hidden) {
    box.append(h("button", { type: "button", class: "secondary", title: "Show again", onclick: () => { state.hidden.delete(id); saveHidden(); render(); } }, `${id} ✕`), " ");
  }
}

function toggle(ns) {
  if (state.collapsed.has(ns)) { state.collapsed.delete(ns); state.expanded.add(ns); } else { state.collapsed.add(ns); state.expanded.delete(ns); }
  render();
}

function render() {
  let t = performance.now();
  const elements = drawn();
  timings.prepare = Math.round(performance.now() - t);
  if (!cy) {
    const many = elements.length > 800; // large maps: straight edges, no edges drawn while panning
    cy = window.cytoscape({
      container: document.getElementById("graph"), elements, style: style(many), wheelSensitivity: 0.3, minZoom: 0.05,
      hideEdgesOnViewport: many, textureOnViewport: many,
    });
    cy.on("tap", "node", (ev) => guarded(() => showNode(ev.target.data())));
    cy.on("tap", "edge", (ev) => guarded(() => showEdge(ev.target.data())));
    cy.on("dbltap", "node.box, node.collapsed", (ev) => toggle(ev.target.data("namespace")));
  } else {
    const nodeIds = elements.filter((e) => e.group === "nodes").map((e) => e.data.id).sort().join("\n");
    const sameNodes = nodeIds === cy.nodes().map((n) => n.id()).sort().join("\n");
    cy.batch(() => {
      if (sameNodes) {
        // the same nodes: update what is drawn in place and keep the layout the user sees
        const keep = new Set();
        for (const e of elements) {
          keep.add(e.data.id);
          const found = cy.getElementById(e.data.id);
          if (found.nonempty()) { found.data(e.data); found.classes(e.classes || ""); } else cy.add(e);
        }
        cy.edges().filter((edge) => !keep.has(edge.id())).remove();
      } else {
        cy.elements().remove();
        cy.add(elements);
      }
    });
    if (sameNodes) { finishRender(elements); return; }
  }
  t = performance.now();
  // force-directed (fcose) while the map is small enough to settle at once; past 100 nodes the
  // most connected in the middle (concentric: milliseconds, where a force layout takes seconds)
  const n = cy.nodes().length;
  cy.layout(n > 100 || !window.cytoscapeFcose
    ? { name: "concentric", animate: false, concentric: (node) => node.degree(), levelWidth: () => 2, minNodeSpacing: 18 }
    : { name: "fcose", animate: false, quality: "default", randomize: true, nodeRepulsion: 6000 }).run();
  timings.layout = Math.round(performance.now() - t);
  t = performance.now();
  finishRender(elements);
  timings.lists = Math.round(performance.now() - t);
}

function finishRender(elements) {
  document.body.dataset.mapNodes = String(cy.nodes().length);
  document.body.dataset.mapEdges = String(cy.edges().length);
  renderHidden();
  renderLists(elements);
}

// The same graph as lists: reachable with the keyboard and by screen readers (the canvas is not).
function renderLists(elements) {
  const name = (id) => { const n = byId.get(id); return n ? nodeKey(n) || n.id : id.replace(/^ns:/, "namespace "); };
  // what matters first: blocked, violations, DLP in clear, then clear, then the rest
  const rank = (e) => (e.status === "blocked" ? 0 : e.status === "violation" ? 1 : dlpCount(e) ? 2 : edgeClass(e) === "clear" ? 3 : 4);
  const allEdges = elements.filter((e) => e.group === "edges").map((e) => e.data).sort((a, b) => rank(a) - rank(b));
  const edges = allEdges.slice(0, 500);
  const text = state.search.toLowerCase();
  const all = graph.nodes.filter((n) => !state.hidden.has(n.id) && (!text || `${nodeKey(n)} ${n.id}`.toLowerCase().includes(text)));
  const LIST = 500;
  const nodes = all.slice(0, LIST);
  clear(document.getElementById("edge-list")).append(table([
    { title: "From", value: (e) => name(e.source) },
    { title: "To", value: (e) => name(e.target) },
    { title: "Ports", value: (e) => (e.ports || []).join(", ") },
    { title: "Protocols", value: (e) => (e.protocols || []).join(", ") },
    { title: "Encryption", value: (e) => badge(edgeClass(e) === "tls" ? "tls" : e.encryption || "unknown", edgeClass(e) === "tls" ? "tls" : e.encryption === "clear" || e.encryption === "mixed" ? "clear" : "") },
    { title: "Status", value: (e) => badge(e.status || "ok", e.status || "ok") },
    { title: "DLP", value: (e) => (dlpCount(e) ? badge(`DLP ${dlpCount(e)}`, "dlp") : "") },
    { title: "Connections", value: (e) => e.connections ?? "" },
    { title: "Bytes", value: (e) => bytes(e.bytes) },
  ], edges, { caption: allEdges.length > edges.length ? `Connections (the first ${edges.length} of ${allEdges.length}, what needs attention first)` : "Connections", empty: "No connection in the window.", onrow: (e) => guarded(() => showEdge(e)) }));
  clear(document.getElementById("node-list")).append(table([
    { title: "Workload", value: (n) => nodeKey(n) || n.id },
    { title: "Kind", value: (n) => n.kind },
    { title: "Groups", value: (n) => (n.groups || []).join(", ") },
    { title: "Mode", value: (n) => (n.mode ? badge(n.mode, n.mode) : "") },
    { title: "Quarantined", value: (n) => (n.quarantined ? badge("quarantined") : "") },
    { title: "Critical", value: (n) => (n.critical ? badge(String(n.critical), "critical") : "") },
  ], nodes, { caption: all.length > LIST ? `Workloads and addresses (the first ${LIST} of ${all.length}: search to narrow)` : "Workloads and addresses", onrow: (n) => guarded(() => showNode(n)) }));
}

// An event that changes an edge is applied at once (status, DLP count), then the graph is refetched.
function applyLive(ev) {
  if (!cy) return;
  const from = byKey.get(refName(ev.resource));
  const to = byKey.get(refName(ev.peer)) || byKey.get(ev.peer?.name);
  let changed = false;
  if (from && to) {
    const s = drawnAs.get(from.id);
    const t = drawnAs.get(to.id);
    const between = cy.edges().filter((edge) => edge.data("source") === s && edge.data("target") === t);
    // DLP hits and blocks concern what went in clear: the TLS edge between the two stays as it is
    const inClear = between.filter((edge) => edge.data("encryption") !== "tls");
    (inClear.nonempty() ? inClear : between).forEach((edge) => {
      const d = edge.data();
      if (ev.kind.startsWith("dlp.")) {
        const n = dlpCount(d) + 1;
        edge.data({ dlp: n, dlp_hits: n, label: `DLP ${n}` });
        edge.addClass("dlp");
        changed = true;
      }
      if (ev.action === "block" || ev.kind.endsWith("blocked")) {
        edge.data("status", "blocked");
        edge.removeClass("ok clear tls violation").addClass("blocked");
        changed = true;
      } else if (ev.kind.includes("violation")) {
        edge.data("status", "violation");
        edge.removeClass("ok clear tls").addClass("violation");
        changed = true;
      }
    });
  }
  if (changed) document.body.dataset.liveApplied = ev.id;
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => guarded(() => refresh()), 1500);
}

// Loads and live refreshes may take the controller's previous answer while it builds the new one
// (at most 10 s old); after the user's own action the answer must be the store's.
async function refresh(consistent = false) {
  const q = new URLSearchParams({ level: state.level, since: state.since, split: "encryption" });
  if (!consistent) q.set("allow_stale", "1");
  if (state.namespace) q.set("namespace", state.namespace);
  if (state.encryption) q.set("encryption", state.encryption);
  if (state.violations) q.set("violations", "1");
  const t0 = performance.now();
  graph = await api(`/api/v1/graph?${q}`);
  const t1 = performance.now();
  byId = new Map(graph.nodes.map((n) => [n.id, n]));
  byKey = new Map(graph.nodes.map((n) => [nodeKey(n), n]));
  for (const e of graph.edges) {
    e.source_label = byId.get(e.source)?.name;
    e.target_label = byId.get(e.target)?.name;
  }
  render();
  const t2 = performance.now();
  // where the time went (read by benchmarks/console_map.py)
  document.body.dataset.mapTimings = JSON.stringify({ fetch: Math.round(t1 - t0), draw: Math.round(t2 - t1), ...timings });
  status(`${graph.nodes.length} nodes, ${graph.edges.length} edges`);
}

function controls() {
  const select = (name, label, options) => {
    const input = h("select", { id: `m-${name}` }, options.map(([v, t]) => h("option", { value: v }, t)));
    input.value = state[name];
    input.addEventListener("change", () => { state[name] = input.value; guarded(refresh); });
    return h("label", { for: `m-${name}` }, label, input);
  };
  const text = (name, label, live) => {
    const input = h("input", { id: `m-${name}`, value: state[name], size: 12 });
    input.addEventListener(live ? "input" : "change", () => { state[name] = input.value.trim(); if (live) render(); else guarded(refresh); });
    return h("label", { for: `m-${name}` }, label, input);
  };
  const violations = h("input", { id: "m-violations", type: "checkbox", checked: state.violations });
  violations.addEventListener("change", () => { state.violations = violations.checked; guarded(refresh); });
  return h("form", { class: "filters", onsubmit: (e) => e.preventDefault() },
    select("level", "Level", [["workload", "workloads"], ["group", "groups"], ["namespace", "namespaces"]]),
    text("namespace", "Namespace"),
    select("encryption", "Encryption", [["", "any"], ["clear", "clear"], ["tls", "TLS"]]),
    text("protocol", "Protocol", true),
    text("since", "Window (24h, 7d)"),
    h("label", { for: "m-violations" }, "Violations only", violations),
    text("search", "Search", true));
}

guarded(async () => {
  await init();
  content().append(controls(),
    h("div", { class: "legend" }, ...["clear", "tls", "violation", "blocked"].map((c) => h("span", {}, h("i", { class: c }), c)), h("span", {}, "thick edge + DLP n: card numbers or personal data in clear"), h("span", {}, "double border: quarantined; red node: critical vulnerabilities")),
    h("div", { id: "hidden", class: "muted" }),
    h("div", { class: "split" }, h("div", { id: "graph", role: "img", "aria-label": "Network map; the lists below hold the same connections and workloads" }), h("aside", { id: "side", class: "side", "aria-live": "polite" }, h("p", { class: "muted" }, "Select a workload or an edge."))),
    h("div", { id: "edge-list" }), h("div", { id: "node-list" }));
  await refresh();
  stopLive = liveEvents({}, applyLive, (s) => { document.body.dataset.live = s; });
});
