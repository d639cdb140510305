import { api, h, clear, content, status, init, guarded, table, badge, may } from "/ui/static/app.js";

// Response rules and notification targets: see them, replace them with a document, send a test.

function rulesDocument(summary) {
  return JSON.stringify({
    apiVersion: "stockade.dev/v1",
    kind: "ResponseRules",
    metadata: { name: summary.name },
    spec: { rules: summary.rules.map((r) => r.spec) },
  }, null, 2);
}

function conditions(spec) {
  const m = spec.match || {};
  const parts = [];
  for (const [key, value] of Object.entries(m)) {
    if (Array.isArray(value) && value.length) parts.push(`${key}: ${value.join(" | ")}`);
    else if (value && typeof value === "object") parts.push(`${key}: ${Object.entries(value).map(([k, v]) => `${k} ${Array.isArray(v) ? v.join("|") : `>= ${v}`}`).join(", ")}`);
    else if (value && !Array.isArray(value)) parts.push(`${key} >= ${value}`);
  }
  return parts.join("; ");
}

async function render() {
  const [rules, targets] = await Promise.all([api("/api/v1/response-rules"), api("/api/v1/notification-targets")]);
  const box = clear(content());
  box.append(h("h2", {}, `Rules (${rules.name})`),
    table([
      { title: "Rule", value: (r) => r.name },
      { title: "Mode", value: (r) => badge(r.mode, r.mode === "active" ? "protect" : "monitor") },
      { title: "When (types ANDed, values ORed)", value: (r) => conditions(r.spec) },
      { title: "Actions", value: (r) => r.actions.join(", ") + (r.spec.notify?.length ? ` → ${r.spec.notify.join(", ")}` : "") },
      { title: "Cooldown", value: (r) => r.spec.cooldown },
      { title: "Enabled", value: (r) => (r.spec.enabled === false ? "no" : "yes") },
    ], rules.rules, { empty: "No response rules." }));
  const editor = h("textarea", { id: "rules-doc", "aria-label": "Response rules document (YAML or JSON)", spellcheck: "false" });
  editor.value = rulesDocument(rules);
  const save = h("button", { type: "button", id: "save-rules", disabled: !may("operator"), onclick: () => guarded(async () => {
    await api("/api/v1/response-rules", { method: "PUT", text: editor.value });
    status("rules saved", "ok");
    await render();
  }) }, "Replace the rules");
  box.append(h("details", {}, h("summary", {}, "Edit the rules document"), editor, save));

  box.append(h("h2", {}, "Notification targets"),
    table([
      { title: "Target", value: (t) => t.name },
      { title: "Kind", value: (t) => t.kind },
      { title: "Categories", value: (t) => (t.categories.length ? t.categories.join(", ") : "all") },
      { title: "Level at least", value: (t) => t.min_severity },
      { title: "", value: (t) => h("button", { type: "button", class: "secondary", disabled: !may("operator"), onclick: () => guarded(async () => {
        status(`sending a test to ${t.name}…`);
        const r = await api(`/api/v1/notification-targets/${encodeURIComponent(t.name)}/test`, { method: "POST" });
        status(r.ok ? `test delivered to ${t.name}` : `test to ${t.name} failed: ${r.error}`, r.ok ? "ok" : "error");
      }) }, "Send test") },
    ], targets, { empty: "No notification targets." }));
  const targetsDoc = h("textarea", { id: "targets-doc", "aria-label": "Notification targets document (YAML or JSON)", spellcheck: "false",
    placeholder: "A targets document (see docs/notifications.md); settings such as secrets are never shown back." });
  box.append(h("details", {}, h("summary", {}, "Replace the targets"), targetsDoc,
    h("button", { type: "button", disabled: !may("operator"), onclick: () => guarded(async () => {
      await api("/api/v1/notification-targets", { method: "PUT", text: targetsDoc.value });
      status("targets saved", "ok");
      await render();
    }) }, "Replace the targets")));
}

guarded(async () => {
  await init();
  await render();
});
