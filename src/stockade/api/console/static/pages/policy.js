import { api, h, clear, content, status, init, guarded, table, badge, may } from "/ui/static/app.js";

// Firewall groups and their modes, the virtual patches the groups' vulnerabilities call for, the
// policy document (diff, apply); admission policy.

const MODES = ["discover", "monitor", "protect"];

function selector(sel) {
  return Object.entries(sel || {}).map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`).join("; ");
}

function editor(id, label, text, diffPath, applyPath) {
  const area = h("textarea", { id, "aria-label": label, spellcheck: "false" });
  area.value = text;
  const out = h("pre", { id: `${id}-diff`, hidden: true });
  const diff = h("button", { type: "button", class: "secondary", onclick: () => guarded(async () => {
    const r = await api(diffPath, { method: "POST", text: area.value });
    out.hidden = false;
    out.textContent = r.changed ? r.diff : "No change against the policy in force.";
  }) }, "Diff against the policy in force");
  const apply = h("button", { type: "button", disabled: !may("operator"), onclick: () => guarded(async () => {
    await api(applyPath, { method: "PUT", text: area.value });
    status(`${label}: applied`);
    await render();
  }) }, "Apply");
  return h("details", { open: new URLSearchParams(location.search).has("add") && id === "fw-doc" }, h("summary", {}, label), area, h("div", { class: "actions" }, diff, apply), out);
}

async function firewall(box) {
  const groups = await api("/api/v1/groups");
  if (!groups.version) {
    box.append(h("p", {}, "No firewall policy applied yet."));
    box.append(editor("fw-doc", "Firewall policy document", "", "/api/v1/firewall/policy/diff", "/api/v1/firewall/policy"));
    return;
  }
  const policy = await api("/api/v1/firewall/policy");
  box.append(h("h2", {}, `Firewall policy ${policy.name} (version ${policy.version})`),
    table([
      { title: "Group", value: (g) => [g.name, g.cde ? " " : "", g.cde ? badge("CDE", "critical") : null] },
      { title: "Selector", value: (g) => selector(g.selector) },
      { title: "Data rules", value: (g) => [...g.dlp, ...(g.waf || [])].join(", ") },
      { title: "Mode", value: (g) => h("span", { class: "modes", role: "group", "aria-label": `mode of ${g.name}` },
        MODES.map((m) => h("button", {
          type: "button",
          class: m === g.mode ? "" : "secondary",
          "aria-pressed": m === g.mode ? "true" : "false",
          "data-group": g.name,
          "data-mode": m,
          disabled: !may("operator") || m === g.mode,
          onclick: () => guarded(async () => {
            await api(`/api/v1/groups/${encodeURIComponent(g.name)}/mode`, { method: "PUT", json: { mode: m } });
            status(`group ${g.name} is now in ${m}`);
            await render();
          }),
        }, m))) },
    ], groups.groups));
  await patches(box);
  let text = policy.yaml;
  const add = new URLSearchParams(location.search).get("add");
  if (add) text = withRule(text, add);
  box.append(editor("fw-doc", "Firewall policy document", text, "/api/v1/firewall/policy/diff", "/api/v1/firewall/policy"));
}

// Virtual patches: a WAF sensor covering CVEs of a group's running images; Apply adds its block rule.
async function patches(box) {
  const found = await api("/api/v1/virtual-patches");
  box.append(h("h2", {}, "Virtual patches"), table([
    { title: "Group", value: (p) => p.group },
    { title: "Sensor", value: (p) => [p.sensor, " ", badge(p.severity, p.severity)] },
    { title: "CVEs", value: (p) => p.cves.join(", ") },
    { title: "Running workloads", value: (p) => p.workloads.join(", ") },
    { title: "Mode", value: (p) => p.mode + (p.auto ? " (auto)" : "") },
    { title: "Patch", value: (p) => (p.applied ? "applied" : h("button", {
      type: "button",
      "data-group": p.group,
      "data-sensor": p.sensor,
      disabled: !may("operator"),
      onclick: () => guarded(async () => {
        const r = await api("/api/v1/virtual-patches", { method: "POST", json: { group: p.group, sensor: p.sensor } });
        status(`virtual patch ${p.sensor} applied to ${p.group} (policy version ${r.version})`);
        await render();
      }),
    }, p.action === "alert" ? "Block" : "Apply")) },
  ], found.items, { empty: "No CVE of the groups' running images is covered by a WAF sensor." }));
}

// The proposed rule inserted as the first item of spec.rules, indented like the items there.
export function withRule(text, rule) {
  const lines = text.replace(/\s+$/, "").split("\n");
  const at = lines.findIndex((l) => /^\s+rules:\s*$/.test(l));
  if (at < 0) return `${lines.join("\n")}\n  rules:\n${rule.split("\n").map((l) => `    ${l}`).join("\n")}\n`;
  const item = lines.slice(at + 1).find((l) => /^\s*- /.test(l));
  const indent = item ? item.match(/^\s*/)[0] : `${lines[at].match(/^\s*/)[0]}  `;
  lines.splice(at + 1, 0, ...rule.split("\n").map((l) => indent + l));
  return `${lines.join("\n")}\n`;
}

async function admission(box) {
  const policy = await api("/api/v1/admission/policy");
  box.append(h("h2", {}, `Admission policy ${policy.name || ""}`),
    h("p", {}, policy.stored ? "Stored policy in force." : "The built-in default is in force.", policy.mode ? ` Mode: ${policy.mode}.` : ""),
    editor("adm-doc", "Admission policy document", policy.yaml, "/api/v1/admission/policy/diff", "/api/v1/admission/policy"));
}

async function render() {
  const box = clear(content());
  await firewall(box);
  await admission(box);
}

guarded(async () => {
  await init();
  await render();
});
