import { api, ApiError } from "/ui/static/app.js";

const form = document.getElementById("login");
const error = document.getElementById("error");

function next() {
  const target = new URLSearchParams(location.search).get("next") || "/ui/overview";
  // only a page of this console: never an address elsewhere
  return /^\/ui\/[a-z]+(\?[^#]*)?$/.test(target) ? target : "/ui/overview";
}

form.addEventListener("submit", async (e) => {
  e.preventDefault();
  error.textContent = "";
  const data = new FormData(form);
  try {
    await api("/api/v1/login", { method: "POST", json: { name: data.get("name"), password: data.get("password") } });
    location.assign(next());
  } catch (err) {
    error.textContent = err instanceof ApiError ? err.message : "the controller cannot be reached";
    document.getElementById("password").select();
  }
});
