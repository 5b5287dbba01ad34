// Subsystems: create and delete; each one's namespaces, allowed hosts and the listeners it
// is reachable on; the box's listeners (open, close).

import * as api from "../api.js";
import { h, table, section, change, confirmButton, notice, failed, add, fill } from "../dom.js";
import { namespaceTable, addNamespaceForm, namespaceFields, namespaceRequest } from "./namespaces.js";

export function show(root, session) {
  const can = session.can_change;
  const body = h("div", { id: "subsystems" }, h("p", {}, "Loading…"));
  add(root, h("h1", {}, "Subsystems"), can ? createForm(reload) : null, body);

  async function reload() {
    let subsystems;
    let listeners;
    try {
      [subsystems, listeners] = await Promise.all([api.get("/api/v1/subsystems"), api.get("/api/v1/listeners")]);
    } catch (e) {
      fill(body, failed("The subsystems could not be read", e));
      return;
    }
    const details = await Promise.all(subsystems.map(async (s) => {
      const at = `/api/v1/subsystems/${api.seg(s.nqn)}`;
      try {
        const [namespaces, hosts] = await Promise.all([api.get(`${at}/namespaces`), api.get(`${at}/hosts`)]);
        return { s, namespaces, hosts };
      } catch (e) {
        return { s, error: e };
      }
    }));
    fill(body, 
      section(`Subsystems (${subsystems.length})`, subsystems.length
        ? table(["NQN", "Serial", "Model", "Namespaces", "Hosts", "Controllers", "Listeners"], subsystems.map((s) => h("tr", { dataset: { nqn: s.nqn } },
          h("td", { class: "nqn" }, h("a", { href: `#/subsystems/${encodeURIComponent(s.nqn)}`, onclick: (ev) => { ev.preventDefault(); document.getElementById(`sub-${s.nqn}`)?.scrollIntoView(); } }, s.nqn)),
          h("td", {}, s.serial), h("td", {}, s.model),
          h("td", { class: "num" }, s.nsids.join(", ") || "none"),
          h("td", {}, s.allowed_hosts === null ? "any host" : `${s.allowed_hosts.length} allowed`),
          h("td", { class: "num" }, s.controller_count),
          h("td", {}, s.listeners === null ? "all" : s.listeners.join(", ")))), { id: "subsystem-list" })
        : h("p", {}, "No subsystems yet.")),
      details.map((d) => d.error ? failed(`Subsystem ${d.s.nqn}`, d.error) : subsystemCard(d, listeners, can, reload)),
      listenersCard(listeners, can, reload),
    );
  }
  reload();
  return null;
}

function createForm(reload) {
  const form = h("form", { id: "create-subsystem", class: "card" },
    h("h2", {}, "Create a subsystem"),
    h("div", { class: "fields" },
      h("label", {}, "NQN", h("input", { name: "nqn", id: "new-nqn", type: "text", size: 48, required: true, placeholder: "nqn.2026-01.io.ferrofab:vol1" })),
      h("label", {}, "Serial", h("input", { name: "serial", type: "text", placeholder: "derived from the NQN" })),
      h("label", {}, "Model", h("input", { name: "model", type: "text", placeholder: "ferrofab" })),
      h("label", { class: "wide" }, "Allowed hosts (one NQN a line; empty: any host)",
        h("textarea", { name: "hosts", id: "new-hosts", rows: 2, cols: 60 }))),
    h("label", { class: "check" }, h("input", { name: "with_ns", id: "new-with-ns", type: "checkbox", checked: true }), "with a first namespace"),
    namespaceFields("new-ns"),
    h("button", { type: "submit", id: "create-subsystem-button" }, "Create subsystem"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const v = (n) => form.elements[n].value.trim();
    const req = { nqn: v("nqn") };
    if (v("serial")) req.serial = v("serial");
    if (v("model")) req.model = v("model");
    const hosts = v("hosts").split(/\s+/).filter(Boolean);
    if (hosts.length) req.allowed_hosts = hosts;
    if (form.elements.with_ns.checked) {
      const ns = namespaceRequest(form);
      if (typeof ns === "string") {
        notice("error", `Create subsystem ${req.nqn}: ${ns}`);
        return;
      }
      req.namespaces = [ns];
    }
    change(`Create subsystem ${req.nqn}`, () => api.post("/api/v1/subsystems", req), async () => {
      form.elements.nqn.value = "";
      form.elements.hosts.value = "";
      await reload();
    });
  });
  return form;
}

function subsystemCard({ s, namespaces, hosts }, listeners, can, reload) {
  const at = `/api/v1/subsystems/${api.seg(s.nqn)}`;
  return h("section", { class: "card subsystem", id: `sub-${s.nqn}`, dataset: { nqn: s.nqn } },
    h("h2", {}, s.nqn,
      can ? confirmButton("Delete subsystem", "Really delete it and disconnect its hosts?",
        () => change(`Delete subsystem ${s.nqn}`, () => api.del(at), reload), { "data-action": "delete-subsystem" }) : null),
    h("p", { class: "sub" }, `serial ${s.serial} · model ${s.model} · firmware ${s.firmware} · ${s.controller_count} controller(s) connected`),
    h("h3", {}, "Namespaces"),
    namespaceTable(s.nqn, namespaces, can, reload),
    can ? addNamespaceForm(s.nqn, reload) : null,
    h("h3", {}, "Allowed hosts"),
    hostList(s.nqn, hosts, can, reload),
    h("h3", {}, "Listeners"),
    listenerChoice(s, listeners, can, reload));
}

function hostList(nqn, hosts, can, reload) {
  const at = `/api/v1/subsystems/${api.seg(nqn)}/hosts`;
  const out = h("div", { class: "hosts", dataset: { nqn } });
  if (hosts.any_host) {
    add(out, h("p", {}, "Any host may connect (no allow-list)."));
    if (can) {
      add(out, h("button", {
        type: "button", dataset: { action: "restrict" },
        onclick: () => change(`Give ${nqn} an allow-list (no host admitted yet)`, () => api.put(at, { hosts: [] }), reload),
      }, "Restrict to an allow-list"));
    }
  } else {
    add(out, hosts.hosts.length
      ? h("ul", { class: "host-list" }, hosts.hosts.map((host) => h("li", { dataset: { host } },
        h("span", { class: "nqn" }, host),
        can ? confirmButton("Revoke", "Really revoke (disconnects it)?", () => change(`Revoke host ${host} on ${nqn}`,
          () => api.del(`${at}/${api.seg(host)}`), reload), { "data-action": "revoke" }) : null)))
      : h("p", {}, "No host is allowed."));
    if (can) {
      const input = h("input", { type: "text", name: "host", size: 60, placeholder: "nqn.2014-08.org.nvmexpress:uuid:…", "aria-label": `host NQN to allow on ${nqn}` });
      add(out, h("form", {
        class: "inline add-host",
        onsubmit: (ev) => {
          ev.preventDefault();
          const host = input.value.trim();
          change(`Allow host ${host} on ${nqn}`, () => api.post(at, { host }), reload);
        },
      }, input, h("button", { type: "submit" }, "Allow host")),
      h("button", {
        type: "button", class: "secondary", dataset: { action: "any-host" },
        onclick: () => change(`Admit any host on ${nqn}`, () => api.put(at, { hosts: null }), reload),
      }, "Admit any host"));
    }
  }
  return out;
}

// Which listeners the subsystem is reachable on: all, or the ones ticked.
function listenerChoice(s, listeners, can, reload) {
  const named = s.listeners;
  const isOn = (l) => named === null || named.includes(l.configured_address) ||
    named.includes(`${l.transport}://${l.configured_address}`);
  const text = named === null ? "Reachable on every listener." : `Reachable on: ${named.join(", ") || "none"}.`;
  if (!can) return h("p", {}, text);
  const boxes = listeners.map((l) => h("label", { class: "check" },
    h("input", { type: "checkbox", value: `${l.transport}://${l.configured_address}`, checked: isOn(l) }),
    `${l.transport} ${l.configured_address}`));
  const form = h("form", { class: "inline listener-choice" }, h("p", {}, text), boxes,
    h("button", { type: "submit" }, "Set listeners"),
    h("button", {
      type: "button", class: "secondary", dataset: { action: "every-listener" },
      onclick: () => change(`Make ${s.nqn} reachable on every listener`,
        () => api.patch(`/api/v1/subsystems/${api.seg(s.nqn)}`, { listeners: null }), reload),
    }, "Every listener"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const chosen = boxes.map((b) => b.querySelector("input")).filter((i) => i.checked).map((i) => i.value);
    change(`Set the listeners of ${s.nqn}`, () => api.patch(`/api/v1/subsystems/${api.seg(s.nqn)}`, { listeners: chosen }), reload);
  });
  return form;
}

function listenersCard(listeners, can, reload) {
  const rows = listeners.map((l) => h("tr", { dataset: { address: l.configured_address, transport: l.transport } },
    h("td", { class: "num" }, l.portid), h("td", {}, l.transport),
    h("td", {}, l.configured_address), h("td", {}, l.address),
    can ? h("td", {}, confirmButton("Close", "Really close (disconnects its hosts)?", () => change(`Close ${l.transport} listener ${l.configured_address}`,
      () => api.del(`/api/v1/listeners/${api.seg(l.configured_address)}?transport=${l.transport}`), reload))) : null));
  const headers = ["Port ID", "Transport", "Configured", "Bound"];
  if (can) headers.push("");
  let form = null;
  if (can) {
    const transport = h("select", { name: "transport" }, h("option", { value: "tcp" }, "tcp"), h("option", { value: "rdma" }, "rdma"));
    const address = h("input", { type: "text", name: "address", placeholder: "0.0.0.0:4421", "aria-label": "listener address" });
    form = h("form", {
      class: "inline",
      onsubmit: (ev) => {
        ev.preventDefault();
        change(`Open ${transport.value} listener ${address.value.trim()}`,
          () => api.post("/api/v1/listeners", { transport: transport.value, address: address.value.trim() }), reload);
      },
    }, transport, address, h("button", { type: "submit" }, "Open listener"));
  }
  return h("section", { class: "card", id: "listeners" }, h("h2", {}, "Listeners of the box"), table(headers, rows), form);
}
