// The console's shell: log-in with an API token, the role it has, and the pages behind the
// navigation (#/dashboard, #/subsystems, #/hosts, #/drives, #/events). Each page module
// exports show(root, session) and may return a function that stops its timers.

import * as api from "./api.js";
import { clear, notice, errorText } from "./dom.js";
import * as dashboard from "./pages/dashboard.js";
import * as subsystems from "./pages/subsystems.js";
import * as hosts from "./pages/hosts.js";
import * as drives from "./pages/drives.js";
import * as events from "./pages/events.js";

const PAGES = { dashboard, subsystems, hosts, drives, events };

let session = null;
let stopPage = null;

const $ = (id) => document.getElementById(id);

function showLogin(message) {
  session = null;
  stopCurrent();
  $("nav").hidden = true;
  $("who").hidden = true;
  $("page").hidden = true;
  clear($("page"));
  $("notice").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message || "";
  $("token").focus();
}

function stopCurrent() {
  if (stopPage) {
    stopPage();
    stopPage = null;
  }
}

async function logIn(token) {
  api.setToken(token);
  try {
    session = await api.get("/api/v1/session");
  } catch (e) {
    api.setToken(null);
    showLogin(`Not logged in: ${errorText(e)}`);
    return;
  }
  document.body.dataset.role = session.role;
  $("role").textContent = session.role === "admin" ? "admin" : "read-only";
  $("role").className = `badge ${session.role}`;
  $("login").hidden = true;
  $("nav").hidden = false;
  $("who").hidden = false;
  $("page").hidden = false;
  route();
}

function route() {
  if (!session) return;
  const name = (location.hash.replace(/^#\/?/, "") || "dashboard").split("/")[0];
  const page = PAGES[name] ? name : "dashboard";
  for (const a of document.querySelectorAll("#nav a")) {
    a.classList.toggle("current", a.dataset.page === page);
    if (a.dataset.page === page) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  stopCurrent();
  const root = clear($("page"));
  root.dataset.page = page;
  $("notice").hidden = true;
  document.title = `ferrofab — ${page}`;
  try {
    stopPage = PAGES[page].show(root, session) || null;
  } catch (e) {
    notice("error", `The ${page} page failed: ${errorText(e)}`);
  }
}

api.whenUnauthorized((e) => {
  api.setToken(null);
  showLogin(`Logged out: ${e.message}`);
});

window.addEventListener("hashchange", route);
window.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const value = $("token").value.trim();
    $("token").value = "";
    logIn(value);
  });
  $("logout").addEventListener("click", () => {
    api.setToken(null);
    showLogin("Logged out.");
  });
  const saved = api.token();
  if (saved) {
    logIn(saved);
  } else {
    showLogin("");
  }
});
