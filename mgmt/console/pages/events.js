// Events: the box's event record (GET /api/v1/events) — connects, refusals, disconnects,
// asynchronous events, changes applied and refused — newest first, re-read every 2 s.

import * as api from "../api.js";
import { h, table, failed, add, fill } from "../dom.js";
import * as fmt from "../format.js";

const LABELS = {
  connected: "host connected",
  connect_refused: "connect refused",
  disconnected: "disconnected",
  async_event: "async event",
  change: "change",
  change_refused: "change refused",
};

export function show(root) {
  const kept = []; // oldest first, at most the server's capacity
  let latest = 0;
  let capacity = 256;
  let timer;
  let stopped = false;
  const filter = h("select", { id: "event-filter", "aria-label": "show" },
    h("option", { value: "" }, "everything"),
    Object.entries(LABELS).map(([v, l]) => h("option", { value: v }, l)));
  const body = h("div", { id: "events" }, h("p", {}, "Loading…"));
  const stamp = h("p", { class: "sub" });
  filter.addEventListener("change", render);
  add(root, h("h1", {}, "Events"), h("p", {}, "Show ", filter, " ", stamp), body);

  function render() {
    const shown = kept.filter((e) => !filter.value || e.category === filter.value).slice().reverse();
    stamp.textContent = `${kept.length} of the last ${capacity} kept; newest first; read again every 2 s.`;
    fill(body, shown.length
      ? table(["Time", "Severity", "What", "Subsystem", "Host", "Controller", "Message"], shown.map((e) => h("tr", { class: e.severity, dataset: { seq: e.seq, category: e.category } },
        h("td", { class: "time" }, fmt.time(e.unix_ms)),
        h("td", {}, h("span", { class: `badge ${e.severity}` }, e.severity)),
        h("td", {}, LABELS[e.category] || e.category),
        h("td", { class: "nqn" }, e.subsystem || ""),
        h("td", { class: "nqn" }, e.host || ""),
        h("td", { class: "num" }, e.cntlid ?? ""),
        h("td", { class: "message" }, e.message))))
      : h("p", {}, "Nothing recorded yet."));
  }

  async function poll() {
    clearTimeout(timer);
    try {
      const answer = await api.get(`/api/v1/events?after=${latest}`);
      if (answer.latest_seq < latest) kept.length = 0; // the daemon restarted
      capacity = answer.capacity;
      kept.push(...answer.events);
      while (kept.length > capacity) kept.shift();
      latest = answer.latest_seq;
      render();
    } catch (e) {
      fill(body, failed("The events could not be read", e));
      if (e.status === 401) return;
    }
    if (!stopped) timer = setTimeout(poll, 2000);
  }
  poll();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
