// Building the page from data: elements with text nodes only (never HTML from the box), a
// notice line for every change's result, and buttons that run a change and report it.

import { ApiError } from "./api.js";

const SVG_NS = "http://www.w3.org/2000/svg";

// h("tr", {class: "x", onclick: f}, "text", child, [more, children]).
export function h(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

export function svg(tag, attrs, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

function build(el, attrs, children) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") {
      el.addEventListener(k.slice(2), v);
    } else if (k === "dataset") {
      Object.assign(el.dataset, v);
    } else if (k === "value" && "value" in el) {
      el.value = v;
    } else {
      el.setAttribute(k, v === true ? "" : String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) {
      append(el, c);
    } else if (c instanceof Node) {
      el.appendChild(c);
    } else {
      el.appendChild(document.createTextNode(String(c)));
    }
  }
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

// Append children (nested arrays flattened; null, undefined and false skipped).
export function add(el, ...children) {
  append(el, children);
  return el;
}

// Replace the children.
export function fill(el, ...children) {
  return add(clear(el), ...children);
}

let noticeTimer;

// Show the result of a change (kind: "ok" or "error"); errors stay until the next notice.
export function notice(kind, text) {
  const el = document.getElementById("notice");
  el.className = `notice ${kind}`;
  el.textContent = text;
  el.hidden = false;
  el.dataset.kind = kind;
  clearTimeout(noticeTimer);
  if (kind === "ok") {
    noticeTimer = setTimeout(() => {
      el.hidden = true;
    }, 8000);
  }
}

export function errorText(e) {
  return e instanceof ApiError ? e.describe() : String(e && e.message ? e.message : e);
}

// Run `action` (a change) and show what it did, or the server's refusal; `done` runs after a
// success (usually a reload of the page's data). Resolves to whether it succeeded.
export async function change(description, action, done) {
  try {
    const result = await action();
    const said = outcomeText(result);
    notice("ok", `${description}: done${said ? ` (${said})` : ""}`);
    if (done) await done(result);
    return true;
  } catch (e) {
    notice("error", `${description} failed: ${errorText(e)}`);
    return false;
  }
}

// What an applied change's answer adds to its description (the REST OutcomeView).
export function outcomeText(o) {
  if (!o || typeof o !== "object") return "";
  const cut = o.controllers_disconnected;
  const parts = [];
  if (o.outcome === "subsystem_added" && o.namespaces) {
    parts.push(`namespaces ${o.namespaces.join(", ") || "none"}`);
  }
  if (o.outcome === "namespace_added") parts.push(`NSID ${o.nsid}`);
  if (o.configured_address !== undefined && o.address) parts.push(`listening on ${o.address}`);
  if (o.outcome === "zone_failed") parts.push(`${o.controllers_notified} controllers notified`);
  if (o.outcome === "allowed_hosts_changed") {
    parts.push(o.hosts === null ? "any host may connect" : `${o.hosts.length} hosts allowed`);
  }
  if (typeof cut === "number") {
    parts.push(`${cut} controller${cut === 1 ? "" : "s"} disconnected`);
  }
  if (o.nsid !== undefined && o.blocks !== undefined) {
    parts.push(`namespace ${o.nsid}, ${o.blocks} blocks`);
  }
  if (o.nqn && o.serial !== undefined) parts.push(`serial ${o.serial}`);
  return parts.join("; ");
}

// A button that asks once more before it acts (no modal dialog).
export function confirmButton(label, confirmLabel, onConfirm, attrs = {}) {
  let armed = false;
  let timer;
  const button = h("button", { type: "button", class: "danger", ...attrs }, label);
  button.addEventListener("click", async () => {
    if (!armed) {
      armed = true;
      button.textContent = confirmLabel;
      button.classList.add("armed");
      timer = setTimeout(() => {
        armed = false;
        button.textContent = label;
        button.classList.remove("armed");
      }, 5000);
      return;
    }
    clearTimeout(timer);
    button.disabled = true;
    await onConfirm();
    button.disabled = false;
    armed = false;
    button.textContent = label;
    button.classList.remove("armed");
  });
  return button;
}

export function table(headers, rows, attrs = {}) {
  return h("table", attrs,
    h("thead", {}, h("tr", {}, headers.map((x) => h("th", {}, x)))),
    h("tbody", {}, rows));
}

export function section(title, ...children) {
  return h("section", { class: "card" }, h("h2", {}, title), children);
}

// An element for the result of a read that failed: the server's message, in place.
export function failed(what, e) {
  return h("p", { class: "error", role: "alert" }, `${what}: ${errorText(e)}`);
}
