import { api, h, content, status, init, guarded, table, badge, when, workload } from "/ui/static/app.js";

// Each card: what needs attention now, a figure and a link to where it is dealt with.
function card(title, figure, detail, href, bad) {
  return h("a", { class: `card ${bad ? "bad" : "good"}`, href },
    h("div", { class: "figure" }, String(figure)), h("div", {}, title), h("div", { class: "muted" }, detail));
}

guarded(async () => {
  await init();
  status("loading…");
  const [clear, quarantine, agents, critical, recent, groups, runs] = await Promise.all([
    api("/api/v1/events?category=dlp&level=high&since=24h&limit=1000"),
    api("/api/v1/quarantine"),
    api("/api/v1/agents"),
    api("/api/v1/vulnerabilities?severity=critical&limit=1000"),
    api("/api/v1/events?level=high&since=24h&limit=20"),
    api("/api/v1/groups"),
    api("/api/v1/cis/runs?limit=100"),
  ]);
  const cards = h("div", { class: "cards" });
  const cardEvents = clear.events.filter((e) => e.kind.startsWith("dlp."));
  cards.append(card("card data or personal data in clear (24 h)", cardEvents.length,
    cardEvents.length ? `latest ${when(cardEvents[0].at)}` : "none seen", "/ui/map?encryption=clear", cardEvents.length > 0));
  const affected = critical.items.filter((v) => v.workloads.length);
  cards.append(card("critical vulnerabilities in running workloads", affected.length,
    critical.total ? `${critical.total} critical in scanned images` : "no critical vulnerability in scanned images", "/ui/vulnerabilities?severity=critical", affected.length > 0));
  cards.append(card("quarantined workloads", quarantine.workloads.length,
    quarantine.workloads.map((w) => w.workload).slice(0, 3).join(", ") || "none", "/ui/map", quarantine.workloads.length > 0));
  const exposed = groups.groups.filter((g) => g.cde && g.mode !== "protect");
  cards.append(card("card-data groups not in Protect", exposed.length,
    exposed.map((g) => `${g.name} (${g.mode})`).join(", ") || (groups.groups.length ? "every CDE group is in Protect" : "no firewall policy applied"), "/ui/policy", exposed.length > 0));
  const newest = new Map();
  for (const r of runs.items) if (!newest.has(`${r.node}|${r.benchmark}`)) newest.set(`${r.node}|${r.benchmark}`, r);
  const failing = [...newest.values()].reduce((n, r) => n + (r.counts.FAIL || 0), 0);
  cards.append(card("failing CIS checks (newest run per node)", failing,
    newest.size ? `${newest.size} benchmark runs` : "no CIS run reported", "/ui/compliance", failing > 0));
  const up = agents.filter((a) => a.up).length;
  cards.append(card("agents reporting", `${up}/${agents.length}`, agents.length ? "heartbeat within the last minute" : "no agent has reported", "/ui/events?category=agent", up < agents.length));
  content().append(cards, h("h2", {}, "High and critical events, last 24 hours"),
    table([
      { title: "Time", value: (e) => when(e.at) },
      { title: "Level", value: (e) => badge(e.severity, e.severity) },
      { title: "Event", value: (e) => e.kind },
      { title: "Workload", value: (e) => workload(e.resource) },
      { title: "Message", value: (e) => e.message },
    ], recent.events, { empty: "Nothing high or critical in the last 24 hours.", onrow: (e) => location.assign(`/ui/events?kind=${encodeURIComponent(e.kind)}`) }));
  status("");
});
