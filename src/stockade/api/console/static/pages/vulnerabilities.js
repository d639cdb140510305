import { api, h, clear, content, status, init, guarded, table, badge, when, dialog } from "/ui/static/app.js";

// Images and their vulnerabilities, with the running workloads affected; CSV export.

const params = new URLSearchParams(location.search);
const state = { severity: params.get("severity") || "", fixable: params.get("fixable") || "", workload: params.get("workload") || "", text: "" };
let vulns = [];

function csvCell(v) {
  const s = Array.isArray(v) ? v.join(" ") : String(v ?? "");
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

function exportCsv(rows) {
  const head = ["id", "severity", "fixable", "title", "aliases", "images", "packages", "workloads"];
  const lines = [head.join(",")].concat(rows.map((v) => [v.id, v.severity, v.fixable, v.title, v.aliases,
    v.images.map((i) => (i.names[0] || i.digest)), v.images.map((i) => `${i.package}@${i.installed}${i.fixed ? `->${i.fixed}` : ""}`), v.workloads].map(csvCell).join(",")));
  const link = h("a", { href: URL.createObjectURL(new Blob([`${lines.join("\n")}\n`], { type: "text/csv" })), download: "stockade-vulnerabilities.csv" });
  document.body.append(link);
  link.click();
  link.remove();
}

function shown() {
  const t = state.text.toLowerCase();
  return vulns.filter((v) => (!state.workload || v.workloads.includes(state.workload))
    && (!t || `${v.id} ${v.title} ${v.aliases.join(" ")} ${v.images.map((i) => i.package).join(" ")}`.toLowerCase().includes(t)));
}

function renderVulns() {
  const rows = shown();
  clear(document.getElementById("vulns")).append(table([
    { title: "Vulnerability", value: (v) => v.id },
    { title: "Severity", value: (v) => badge(v.severity, v.severity) },
    { title: "Fix", value: (v) => (v.fixable ? "available" : "none") },
    { title: "Packages", value: (v) => [...new Set(v.images.map((i) => `${i.package} ${i.installed}${i.fixed ? ` → ${i.fixed}` : ""}`))].join(", ") },
    { title: "Running workloads affected", value: (v) => v.workloads.join(", ") || "none known" },
    { title: "Title", value: (v) => v.title },
  ], rows, { empty: "No vulnerability matches.", onrow: (v) => dialog(v.id, h("pre", {}, JSON.stringify(v, null, 2))) }));
  status(`${rows.length} vulnerabilities shown`);
}

async function load() {
  const q = new URLSearchParams({ limit: "1000" });
  if (state.severity) q.set("severity", state.severity);
  if (state.fixable) q.set("fixable", state.fixable);
  const [images, found] = await Promise.all([api("/api/v1/images?limit=200"), api(`/api/v1/vulnerabilities?${q}`)]);
  vulns = found.items;
  clear(document.getElementById("images")).append(table([
    { title: "Image", value: (i) => i.names.join(", ") || i.digest },
    { title: "Critical", value: (i) => (i.counts.critical ? badge(String(i.counts.critical), "critical") : "0") },
    { title: "High", value: (i) => (i.counts.high ? badge(String(i.counts.high), "high") : "0") },
    { title: "Medium", value: (i) => i.counts.medium || 0 },
    { title: "Fixable", value: (i) => Object.values(i.fixable || {}).reduce((a, b) => a + b, 0) },
    { title: "Packages", value: (i) => i.packages ?? "" },
    { title: "Complete", value: (i) => (i.complete === false ? "partly checked" : "yes") },
    { title: "Running in", value: (i) => i.workloads.join(", ") },
    { title: "Scanned", value: (i) => when(i.last_scan.finished_at) },
  ], images.items, { empty: "No image scanned through this controller yet (stockade scan image REF --controller URL)." }));
  renderVulns();
}

guarded(async () => {
  await init();
  const sev = h("select", { id: "v-severity" }, ["", "low", "medium", "high", "critical"].map((s) => h("option", { value: s }, s || "any")));
  sev.value = state.severity;
  sev.addEventListener("change", () => { state.severity = sev.value; guarded(load); });
  const fix = h("select", { id: "v-fixable" }, [["", "any"], ["true", "with a fix"], ["false", "without a fix"]].map(([v, t]) => h("option", { value: v }, t)));
  fix.value = state.fixable;
  fix.addEventListener("change", () => { state.fixable = fix.value; guarded(load); });
  const text = h("input", { id: "v-text", size: 16 });
  text.addEventListener("input", () => { state.text = text.value.trim(); renderVulns(); });
  const workload = h("input", { id: "v-workload", size: 18, value: state.workload });
  workload.addEventListener("change", () => { state.workload = workload.value.trim(); renderVulns(); });
  content().append(h("h2", {}, "Images"), h("div", { id: "images" }), h("h2", {}, "Vulnerabilities"),
    h("form", { class: "filters", onsubmit: (e) => e.preventDefault() },
      h("label", { for: "v-severity" }, "Severity at least", sev), h("label", { for: "v-fixable" }, "Fix", fix),
      h("label", { for: "v-workload" }, "Running workload (ns/name)", workload), h("label", { for: "v-text" }, "Search", text),
      h("button", { type: "button", id: "export", class: "secondary", onclick: () => exportCsv(shown()) }, "Export CSV")),
    h("div", { id: "vulns" }));
  await load();
});
