// A subsystem's namespaces on the Subsystems page: the table (NSID, backend, size, block
// size, identifiers; grow and remove) and the form that adds one on any backend.

import * as api from "../api.js";
import { h, table, change, confirmButton, notice, add } from "../dom.js";
import * as fmt from "../format.js";

export function backendText(b) {
  if (typeof b === "string") return b;
  switch (b.kind) {
    case "nvme-vfio": return `nvme-vfio ${b.pci} ns ${b.nsid}`;
    case "nvme-uring": return `nvme-uring ${b.path}`;
    case "zoned-ram": return `zoned-ram, zones of ${fmt.bytes(b.zone_size)}`;
    default: return b.kind;
  }
}

// The namespaces of `nqn`; `reload` re-reads the page after a change.
export function namespaceTable(nqn, namespaces, canChange, reload) {
  if (!namespaces.length) return h("p", {}, "No namespaces.");
  const base = `/api/v1/subsystems/${api.seg(nqn)}/namespaces`;
  const rows = namespaces.map((ns) => {
    const kind = typeof ns.backend === "string" ? ns.backend : ns.backend.kind;
    // Drives and zoned namespaces keep their size; the server refuses a block device's.
    const resizable = ["ram", "null", "file"].includes(kind);
    let actions = null;
    if (canChange) {
      const size = h("input", { type: "text", size: 8, placeholder: "new size", "aria-label": `new size of namespace ${ns.nsid}` });
      actions = h("td", { class: "actions" },
        resizable ? h("form", {
          class: "inline",
          onsubmit: (ev) => {
            ev.preventDefault();
            const bytes = fmt.parseSize(size.value);
            if (bytes === null) {
              notice("error", `Resize namespace ${ns.nsid}: "${size.value}" is not a size (e.g. 2GiB)`);
              return;
            }
            change(`Resize namespace ${ns.nsid} of ${nqn} to ${fmt.bytes(bytes)}`,
              () => api.patch(`${base}/${ns.nsid}`, { size: bytes }), reload);
          },
        }, size, h("button", { type: "submit" }, "Grow")) : null,
        confirmButton("Remove", "Really remove?", () => change(`Remove namespace ${ns.nsid} of ${nqn}`,
          () => api.del(`${base}/${ns.nsid}`), reload), { "data-action": "remove-namespace", "data-nsid": ns.nsid }));
    }
    return h("tr", { dataset: { nsid: ns.nsid } },
      h("td", { class: "num" }, ns.nsid),
      h("td", {}, backendText(ns.backend), ns.zoned ? h("span", { class: "badge zoned" }, "zoned") : null,
        ns.path ? h("div", { class: "sub" }, ns.path) : null),
      h("td", { class: "num" }, fmt.bytes(ns.size_bytes)),
      h("td", { class: "num" }, ns.block_size),
      h("td", { class: "num" }, ns.blocks),
      h("td", { class: "ids" }, h("div", {}, `NGUID ${ns.nguid}`), h("div", {}, `EUI-64 ${ns.eui64}`), h("div", {}, `UUID ${ns.uuid}`)),
      actions);
  });
  const headers = ["NSID", "Backend", "Size", "Block", "Blocks", "Identifiers"];
  if (canChange) headers.push("");
  return table(headers, rows, { class: "namespaces" });
}

// The fields each backend takes (the others are hidden and not sent).
const USED = {
  ram: ["size", "block_size", "nsid"],
  null: ["size", "block_size", "nsid"],
  file: ["size", "block_size", "nsid", "path"],
  "zoned-ram": ["size", "block_size", "nsid", "path", "zone_size", "zone_capacity", "max_open", "max_active"],
  "nvme-vfio": ["nsid", "pci", "drive_nsid", "bind"],
  "nvme-uring": ["nsid", "path"],
};

// The request body for the fields of `form` (see namespaceFields), or an error sentence.
export function namespaceRequest(form) {
  const kind = form.elements.backend.value;
  const used = USED[kind] || [];
  const v = (name) => (used.includes(name) && form.elements[name] ? form.elements[name].value.trim() : "");
  const req = {};
  if (v("nsid")) req.nsid = Number(v("nsid"));
  const size = v("size");
  if (size) {
    const bytes = fmt.parseSize(size);
    if (bytes === null) return `"${size}" is not a size (e.g. 64MiB)`;
    req.size = bytes;
  }
  if (v("block_size")) req.block_size = Number(v("block_size"));
  switch (kind) {
    case "ram":
    case "null":
      req.backend = kind;
      break;
    case "file":
      req.backend = "file";
      req.path = v("path");
      break;
    case "zoned-ram": {
      const zone = fmt.parseSize(v("zone_size"));
      if (zone === null) return "zoned-ram needs a zone size (e.g. 4MiB)";
      req.backend = { kind: "zoned-ram", zone_size: zone };
      const cap = v("zone_capacity");
      if (cap) {
        const c = fmt.parseSize(cap);
        if (c === null) return `"${cap}" is not a zone capacity`;
        req.backend.zone_capacity = c;
      }
      if (v("max_open")) req.backend.max_open = Number(v("max_open"));
      if (v("max_active")) req.backend.max_active = Number(v("max_active"));
      if (v("path")) req.path = v("path");
      break;
    }
    case "nvme-vfio":
      req.backend = { kind: "nvme-vfio", pci: v("pci"), nsid: Number(v("drive_nsid") || 1), bind: form.elements.bind.checked };
      break;
    case "nvme-uring":
      req.backend = { kind: "nvme-uring", path: v("path") };
      break;
    default:
      return `unknown backend ${kind}`;
  }
  return req;
}

// Inputs for a namespace on any backend; the ones a backend does not use are hidden.
export function namespaceFields(prefix) {
  const field = (name, label, attrs = {}) => h("label", { class: `f-${name}` }, label,
    h("input", { name, type: "text", id: `${prefix}-${name}`, ...attrs }));
  const backend = h("select", { name: "backend", id: `${prefix}-backend` },
    ["ram", "null", "file", "zoned-ram", "nvme-vfio", "nvme-uring"].map((b) => h("option", { value: b }, b)));
  const box = h("div", { class: "fields" },
    h("label", {}, "Backend", backend),
    field("size", "Size", { placeholder: "64MiB", value: "64MiB" }),
    field("block_size", "Block size", { placeholder: "512" }),
    field("nsid", "NSID", { placeholder: "lowest free" }),
    field("path", "Path", { placeholder: "/var/lib/vol.img or /dev/ng0n1" }),
    field("zone_size", "Zone size", { placeholder: "4MiB" }),
    field("zone_capacity", "Zone capacity", { placeholder: "= zone size" }),
    field("max_open", "Max open zones", { placeholder: "0: no limit" }),
    field("max_active", "Max active zones", { placeholder: "0: no limit" }),
    field("pci", "PCI address", { placeholder: "0000:00:04.0" }),
    field("drive_nsid", "Drive NSID", { placeholder: "1" }),
    h("label", { class: "f-bind check" }, h("input", { name: "bind", type: "checkbox" }), "Move the device to vfio-pci"));
  const sync = () => {
    const used = USED[backend.value];
    for (const label of box.querySelectorAll("label[class^='f-']")) {
      const name = label.className.replace(/^f-/, "").split(" ")[0];
      label.hidden = !used.includes(name);
    }
  };
  backend.addEventListener("change", sync);
  sync();
  return box;
}

export function addNamespaceForm(nqn, reload) {
  const form = h("form", { class: "add-namespace", dataset: { nqn } });
  add(form, h("h3", {}, "Add a namespace"), namespaceFields(`ns-${nqn}`), h("button", { type: "submit" }, "Add namespace"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const req = namespaceRequest(form);
    if (typeof req === "string") {
      notice("error", `Add a namespace to ${nqn}: ${req}`);
      return;
    }
    change(`Add a namespace to ${nqn}`, () => api.post(`/api/v1/subsystems/${api.seg(nqn)}/namespaces`, req), reload);
  });
  return form;
}
