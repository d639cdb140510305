import { api, h, clear, content, status, init, guarded, table, badge, when, liveEvents, dialog, workload } from "/ui/static/app.js";

const filters = { category: "", level: "", namespace: "", since: "24h", kind: "" };
let rows = [];
let next = null;
let stop = null;

const columns = [
  { title: "Time", value: (e) => when(e.at) },
  { title: "Level", value: (e) => badge(e.severity, e.severity) },
  { title: "Category", value: (e) => e.category || "" },
  { title: "Event", value: (e) => e.kind },
  { title: "Workload", value: (e) => workload(e.resource) },
  { title: "Peer", value: (e) => workload(e.peer) },
  { title: "Action", value: (e) => e.action || "" },
  { title: "Message", value: (e) => e.message },
];

function show(event) {
  dialog(`${event.kind} · ${when(event.at)}`, h("pre", {}, JSON.stringify(event, null, 2)));
}

function render() {
  const box = document.getElementById("events");
  clear(box).append(table(columns, rows, { onrow: show, empty: "No events match." }));
  document.getElementById("more").disabled = !next;
}

async function load(more = false) {
  const q = new URLSearchParams({ limit: "100" });
  for (const [k, v] of Object.entries(filters)) if (v) q.set(k, v);
  if (more && next) q.set("cursor", next);
  const page = await api(`/api/v1/events?${q}`);
  rows = more ? rows.concat(page.events) : page.events;
  next = page.next;
  render();
  status(`${rows.length} events shown`);
}

function live() {
  if (stop) stop();
  const { since, ...rest } = filters;
  stop = liveEvents(rest, (event) => {
    rows.unshift(event);
    if (rows.length > 1000) rows.length = 1000;
    render();
  }, (state) => { document.getElementById("live").textContent = state === "live" ? "● live" : state; });
}

function field(name, label, options) {
  const input = options
    ? h("select", { id: `f-${name}`, name }, options.map((o) => h("option", { value: o }, o || "any")))
    : h("input", { id: `f-${name}`, name, value: filters[name], size: 14 });
  input.value = filters[name];
  input.addEventListener("change", () => { filters[name] = input.value.trim(); guarded(() => load()); live(); });
  return h("label", { for: `f-${name}` }, label, input);
}

guarded(async () => {
  await init();
  const params = new URLSearchParams(location.search);
  for (const k of Object.keys(filters)) if (params.get(k)) filters[k] = params.get(k);
  content().append(
    h("form", { class: "filters", onsubmit: (e) => e.preventDefault() },
      field("category", "Category"),
      field("kind", "Event name"),
      field("level", "Level at least", ["", "low", "medium", "high", "critical"]),
      field("namespace", "Namespace"),
      field("since", "Since (24h, 7d, ISO)"),
      h("span", { id: "live", class: "badge" }, "…")),
    h("div", { id: "events" }),
    h("button", { type: "button", id: "more", class: "secondary", onclick: () => guarded(() => load(true)) }, "Older events"));
  await load();
  live();
});
