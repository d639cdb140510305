// Shared by every console page: the API client, safe DOM building, the header, live events.
// Data from the API reaches the page only through textContent and DOM properties, never as HTML.

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

export async function api(path, { method = "GET", json, text, raw = false } = {}) {
  const headers = { Accept: "application/json" };
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (text !== undefined) {
    headers["Content-Type"] = "application/yaml";
    body = text;
  }
  const answer = await fetch(path, { method, headers, body, credentials: "same-origin" });
  if (answer.status === 401 && !path.endsWith("/login")) {
    const next = encodeURIComponent(location.pathname + location.search);
    location.assign(`/ui/login?next=${next}`);
    throw new ApiError(401, "signed out");
  }
  if (!answer.ok) {
    let detail = `${answer.status} ${answer.statusText}`;
    try {
      const data = await answer.json();
      if (data && data.detail) detail = typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail);
    } catch (_) { /* not JSON */ }
    throw new ApiError(answer.status, detail);
  }
  if (raw) return answer;
  const type = answer.headers.get("content-type") || "";
  return type.includes("json") ? answer.json() : answer.text();
}

// h("a", {href: "/x", onclick: f, class: "c"}, "text", child) -> an element; strings become text nodes.
export function h(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (value === true) node.setAttribute(key, "");
    else node.setAttribute(key, String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
  return node;
}

export function content() {
  return document.getElementById("content");
}

export function status(message, kind = "") {
  const node = document.getElementById("status");
  if (!node) return;
  node.textContent = message || "";
  node.className = `status ${kind}`;
}

export function workload(ref) {
  if (!ref) return "";
  return ref.namespace ? `${ref.namespace}/${ref.name}` : ref.name;
}

export function when(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  const today = new Date().toDateString() === d.toDateString();
  return today ? d.toLocaleTimeString() : `${d.toLocaleDateString()} ${d.toLocaleTimeString()}`;
}

export function bytes(n) {
  if (n === undefined || n === null) return "";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = Number(n);
  let i = 0;
  while (value >= 1024 && i < units.length - 1) { value /= 1024; i += 1; }
  return `${value.toFixed(i ? 1 : 0)} ${units[i]}`;
}

// table([{title, value: row => text|Node}], rows, {caption, onrow}) -> <table>
export function table(columns, rows, { caption, onrow, empty = "Nothing to show." } = {}) {
  const head = h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c.title))));
  const body = h("tbody");
  for (const row of rows) {
    const tr = h("tr", {}, columns.map((c) => h("td", {}, c.value(row) ?? "")));
    if (onrow) {
      tr.tabIndex = 0;
      tr.classList.add("clickable");
      tr.addEventListener("click", () => onrow(row));
      tr.addEventListener("keydown", (e) => { if (e.key === "Enter") onrow(row); });
    }
    body.append(tr);
  }
  const out = h("table", {}, caption ? h("caption", {}, caption) : null, head, body);
  if (!rows.length) body.append(h("tr", {}, h("td", { colspan: columns.length, class: "empty" }, empty)));
  return h("div", { class: "scroll" }, out);
}

export function badge(text, kind) {
  return h("span", { class: `badge ${kind || text}` }, text);
}

// Live events through the controller's SSE stream; returns a function that closes it.
export function liveEvents(filters, onEvent, onState = () => {}) {
  const query = new URLSearchParams();
  for (const [k, v] of Object.entries(filters || {})) if (v) query.set(k, v);
  let source;
  let closed = false;
  const open = () => {
    source = new EventSource(`/api/v1/events/stream?${query}`);
    source.addEventListener("open", () => onState("live"));
    source.addEventListener("event", (m) => onEvent(JSON.parse(m.data)));
    source.addEventListener("overflow", () => { source.close(); onState("overflow"); if (!closed) setTimeout(open, 1000); });
    source.addEventListener("error", () => onState("reconnecting"));
  };
  open();
  return () => { closed = true; source.close(); };
}

export function dialog(title, body, actions = []) {
  const box = h("dialog", { class: "panel", "aria-label": title },
    h("h2", {}, title), body,
    h("div", { class: "actions" }, ...actions, h("button", { type: "button", onclick: () => box.close() }, "Close")));
  box.addEventListener("close", () => box.remove());
  document.body.append(box);
  box.showModal();
  return box;
}

export let me = null;

export async function init() {
  const who = document.getElementById("who");
  me = await api("/api/v1/whoami");
  if (who) who.textContent = `${me.name} (${me.role})`;
  const out = document.getElementById("logout");
  if (out) out.addEventListener("click", async () => {
    try { await api("/api/v1/logout", { method: "POST" }); } finally { location.assign("/ui/login"); }
  });
  return me;
}

export function may(role) {
  const order = { reader: 1, operator: 2, admin: 3 };
  return me && (order[me.role] || 0) >= (order[role] || 9);
}

export async function guarded(work) {
  try {
    return await work();
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return undefined;
    status(e.message, "error");
    return undefined;
  }
}
