import { api, h, clear, content, status, init, guarded, table, badge, when, dialog } from "/ui/static/app.js";

// CIS runs and their checks; the framework reports (PCI DSS, HIPAA, GDPR, NIST 800-190) and their HTML export.

const FRAMEWORKS = [["pci-dss", "PCI DSS"], ["hipaa", "HIPAA"], ["gdpr", "GDPR"], ["nist-800-190", "NIST 800-190"]];
let framework = new URLSearchParams(location.search).get("framework") || "pci-dss";
let since = "7d";

// a run's benchmark is {id, title, version} (POST /api/v1/cis/runs)
function benchmarkName(b) {
  return b ? [b.title || b.id, b.version].filter(Boolean).join(" ") : "";
}

function statusBadge(s) {
  const kind = { PASS: "pass", FAIL: "fail", ERROR: "high", WARN: "violation" }[s] || "";
  return badge(s, kind);
}

async function showRun(run) {
  const found = await api(`/api/v1/cis/runs/${encodeURIComponent(run.id)}`);
  dialog(`${benchmarkName(run.benchmark) || "CIS"} on ${run.node}`, table([
    { title: "Check", value: (c) => c.number || c.id },
    { title: "Title", value: (c) => c.title },
    { title: "Status", value: (c) => statusBadge(c.status) },
    { title: "Evidence", value: (c) => (typeof c.evidence === "string" ? c.evidence : c.evidence ? JSON.stringify(c.evidence) : "") },
    { title: "Remediation", value: (c) => c.remediation || "" },
  ], found.results));
}

async function report(box) {
  clear(box);
  const r = await api(`/api/v1/compliance/${framework}?since=${encodeURIComponent(since)}`);
  const s = r.summary || {};
  box.append(h("p", {}, `${r.framework.title} ${r.framework.version}: `, ...Object.entries(s).map(([k, v]) => [statusBadge(k.toUpperCase()), `${v} `])),
    h("p", {}, h("a", { href: `/api/v1/compliance/${framework}?format=html&since=${encodeURIComponent(since)}`, target: "_blank", rel: "noopener" }, "HTML export (evidence for an assessor)")),
    table([
      { title: "Requirement", value: (q) => q.id },
      { title: "Title", value: (q) => q.title },
      { title: "Status", value: (q) => statusBadge(q.status) },
      { title: "Why", value: (q) => q.reason || (q.manual ? "manual" : "") },
    ], r.requirements, { onrow: (q) => dialog(`${q.id} ${q.title}`, h("pre", {}, JSON.stringify(q, null, 2))) }));
}

guarded(async () => {
  await init();
  const runs = await api("/api/v1/cis/runs?limit=100");
  const pick = h("select", { id: "c-framework" }, FRAMEWORKS.map(([v, t]) => h("option", { value: v }, t)));
  pick.value = framework;
  const win = h("input", { id: "c-since", size: 8, value: since });
  const box = h("div", { id: "report" });
  pick.addEventListener("change", () => { framework = pick.value; guarded(() => report(box)); });
  win.addEventListener("change", () => { since = win.value.trim() || "7d"; guarded(() => report(box)); });
  content().append(h("h2", {}, "CIS benchmark runs"),
    table([
      { title: "Node", value: (r) => r.node },
      { title: "Benchmark", value: (r) => benchmarkName(r.benchmark) },
      { title: "Results", value: (r) => Object.entries(r.counts).map(([k, v]) => [statusBadge(k), `${v} `]) },
      { title: "Worst failing", value: (r) => (r.worst ? badge(r.worst, r.worst) : "") },
      { title: "Run", value: (r) => when(r.finished_at) },
    ], runs.items, { onrow: (r) => guarded(() => showRun(r)), empty: "No CIS run through this controller yet (stockade bench k8s --controller URL)." }),
    h("h2", {}, "Framework reports"),
    h("form", { class: "filters", onsubmit: (e) => e.preventDefault() }, h("label", { for: "c-framework" }, "Framework", pick), h("label", { for: "c-since" }, "Events since", win)),
    box);
  await report(box);
  status("");
});
