// Hosts: every live controller — who (host NQN and ID), to which subsystem, through which
// listener address, its queues, keep-alive and traffic — with Disconnect. Re-read every 2 s.

import * as api from "../api.js";
import { h, table, section, change, confirmButton, failed, add, fill } from "../dom.js";
import * as fmt from "../format.js";

export function show(root, session) {
  const body = h("div", { id: "controllers" }, h("p", {}, "Loading…"));
  const stamp = h("p", { class: "sub" });
  add(root, h("h1", {}, "Hosts and controllers"), section("Live controllers", stamp, body));
  let timer;
  let stopped = false;

  async function reload() {
    clearTimeout(timer);
    let controllers;
    try {
      controllers = await api.get("/api/v1/controllers");
    } catch (e) {
      fill(body, failed("The controllers could not be read", e));
      if (e.status !== 401 && !stopped) timer = setTimeout(reload, 2000);
      return;
    }
    stamp.textContent = `${controllers.length} controller(s); read ${fmt.time(Date.now())}, again every 2 s.`;
    const rows = controllers.map((c) => h("tr", { dataset: { cntlid: c.cntlid, host: c.host_nqn } },
      h("td", { class: "num" }, c.cntlid),
      h("td", {}, c.kind),
      h("td", { class: "nqn" }, c.host_nqn || "(empty host NQN)", h("div", { class: "sub" }, `host ID ${c.host_id}`)),
      h("td", { class: "nqn" }, c.subsystem_nqn),
      h("td", {}, c.local_address),
      h("td", { class: "num" }, c.io_queues),
      h("td", { class: "num" }, c.kato_ms ? `${(c.kato_ms / 1000).toFixed(1)} s` : "off"),
      h("td", { class: "num" }, fmt.duration(c.connected_seconds)),
      h("td", { class: "num" }, `${fmt.count(c.read_commands)} / ${fmt.bytes(c.bytes_read)}`),
      h("td", { class: "num" }, `${fmt.count(c.write_commands)} / ${fmt.bytes(c.bytes_written)}`),
      session.can_change ? h("td", {}, confirmButton("Disconnect", "Really disconnect?",
        () => change(`Disconnect controller ${c.cntlid} (${c.host_nqn || "no host NQN"})`,
          () => api.del(`/api/v1/controllers/${c.cntlid}`), reload), { "data-action": "disconnect" })) : null));
    const headers = ["CNTLID", "Kind", "Host", "Subsystem", "Target address", "I/O queues", "Keep-alive", "Connected", "Reads (commands / bytes)", "Writes (commands / bytes)"];
    if (session.can_change) headers.push("");
    fill(body, controllers.length ? table(headers, rows) : h("p", {}, "No host is connected."));
    if (!stopped) timer = setTimeout(reload, 2000);
  }
  reload();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
