import { api, h, clear, content, status, init, guarded, table, when, may, dialog } from "/ui/static/app.js";

async function render() {
  const box = clear(content());
  if (!may("admin")) {
    box.append(h("p", {}, "Only administrators manage users and tokens."));
    return;
  }
  const [users, tokens] = await Promise.all([api("/api/v1/users"), api("/api/v1/tokens")]);
  const roles = ["reader", "operator", "admin", "agent"];
  const name = h("input", { id: "user-name", maxlength: 64, required: true });
  const role = h("select", { id: "user-role" }, roles.slice(0, 3).map((r) => h("option", { value: r }, r)));
  box.append(h("h2", {}, "Users"),
    table([
      { title: "Name", value: (u) => u.name },
      { title: "Role", value: (u) => u.role },
      { title: "Created", value: (u) => when(u.created_at) },
    ], users),
    h("form", { class: "filters", onsubmit: (e) => { e.preventDefault(); guarded(async () => {
      const made = await api("/api/v1/users", { method: "POST", json: { name: name.value, role: role.value } });
      dialog("User added", h("p", {}, `Password for ${made.name} (shown once): `, h("code", {}, made.password)));
      await render();
    }); } },
      h("label", { for: "user-name" }, "New user", name), h("label", { for: "user-role" }, "Role", role),
      h("button", { type: "submit" }, "Add user (password generated)")));
  const tname = h("input", { id: "token-name", maxlength: 64, required: true });
  const trole = h("select", { id: "token-role" }, roles.map((r) => h("option", { value: r }, r)));
  box.append(h("h2", {}, "API tokens"),
    table([
      { title: "Name", value: (t) => t.name },
      { title: "Role", value: (t) => t.role },
      { title: "Created", value: (t) => `${when(t.created_at)} by ${t.created_by}` },
      { title: "Revoked", value: (t) => (t.revoked_at ? when(t.revoked_at) : "") },
      { title: "", value: (t) => (t.revoked_at ? "" : h("button", { type: "button", class: "danger", onclick: () => guarded(async () => {
        await api(`/api/v1/tokens/${encodeURIComponent(t.id)}`, { method: "DELETE" });
        status(`token ${t.name} revoked`);
        await render();
      }) }, "Revoke")) },
    ], tokens),
    h("form", { class: "filters", onsubmit: (e) => { e.preventDefault(); guarded(async () => {
      const made = await api("/api/v1/tokens", { method: "POST", json: { name: tname.value, role: trole.value } });
      dialog("Token created", h("p", {}, `Token ${made.name} (shown once): `, h("code", {}, made.token)));
      await render();
    }); } },
      h("label", { for: "token-name" }, "New token", tname), h("label", { for: "token-role" }, "Role", trole),
      h("button", { type: "submit" }, "Create token")));
}

guarded(async () => {
  await init();
  await render();
});
