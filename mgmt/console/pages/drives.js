// Drives: the local NVMe drives, exported or not — those namespaces are opened on (identity,
// health, the SMART / Health log with its warnings highlighted, queues, their namespaces and
// where each is exported), then every other NVMe drive of the PCI bus, marked not exported,
// with what it takes to export it (PCI address, bound driver, the kernel's namespaces and
// their generic devices) — and for every zoned namespace a zone map: one cell per zone,
// coloured by state, filled up to its write pointer.

import * as api from "../api.js";
import { h, svg, clear, table, section, failed, add, fill } from "../dom.js";
import * as fmt from "../format.js";

const STATES = [
  ["empty", "#aab4c0", "Empty"],
  ["implicitly-opened", "#56B4E9", "Implicitly opened"],
  ["explicitly-opened", "#0072B2", "Explicitly opened"],
  ["closed", "#E69F00", "Closed"],
  ["full", "#009E73", "Full"],
  ["read-only", "#CC79A7", "Read only"],
  ["offline", "#D55E00", "Offline"],
  ["unknown", "#7f7f7f", "Unknown"],
];
const COLOR = Object.fromEntries(STATES.map(([s, c]) => [s, c]));

export function show(root) {
  const drives = h("div", { id: "drive-list" }, h("p", {}, "Loading…"));
  const zoned = h("div", { id: "zone-maps" }, h("p", {}, "Loading…"));
  add(root, h("h1", {}, "Drives"),
    section("Local NVMe drives", drives),
    section("Zoned namespaces", zoned));
  loadDrives(drives);
  loadZoned(zoned);
  return null;
}

async function loadDrives(out) {
  let list;
  try {
    list = await api.get("/api/v1/drives");
  } catch (e) {
    fill(out, failed("The drives could not be read", e));
    return;
  }
  if (!list.length) {
    fill(out, h("p", {}, "No local NVMe drive: the PCI bus shows none, and no namespace is on " +
      "an nvme-vfio (ferrofab's userspace driver) or nvme-uring (the kernel's driver, io_uring " +
      "passthrough) backend."));
    return;
  }
  fill(out, list.map((d) => {
    const hl = d.health;
    const facts = [
      ["Driver", d.driver ?? "none (not exported)"],
      ["PCI address", d.pci ?? "–"],
      ["Bound to", d.driver_bound ?? "–"],
      ["Model", d.model ?? "–"],
      ["Serial", d.serial ?? "–"],
      ["Firmware", d.firmware ?? "–"],
      ["Capacity", fmt.bytes(d.capacity_bytes)],
      ["Health", `${hl.state}${hl.detail ? ` (${hl.detail})` : ""}`],
      // With a SMART / Health log the temperature is shown there.
      hl.smart_log ? null : ["Temperature", hl.temperature_celsius === null ? "–" : `${hl.temperature_celsius.toFixed(1)} °C (composite)`],
      ["Controller resets", hl.controller_resets ?? "–"],
      ["I/O queues", hl.io_queues === null ? "–" : `${hl.io_queues} × ${hl.queue_entries} entries`],
      ["Largest transfer", hl.max_transfer_bytes === null ? "–" : fmt.bytes(hl.max_transfer_bytes)],
    ];
    return h("div", { class: `drive ${hl.state}${d.exported ? "" : " unexported"}`, dataset: { id: d.id } },
      h("h3", {}, d.id, h("span", { class: `badge ${hl.state}` }, hl.state),
        d.exported ? null : h("span", { class: "badge not-exported" }, "not exported")),
      d.exported ? null : h("p", { class: "sub export-hint" }, exportHint(d)),
      h("dl", { class: "facts" }, facts.filter(Boolean).map(([k, v]) => [h("dt", {}, k), h("dd", {}, String(v))])),
      smartBlock(hl),
      table(["NSID", "Device", "Size", "Block", "Blocks", "Zoned", "Exported as"], d.namespaces.map((n) => h("tr", {},
        h("td", { class: "num" }, n.nsid ?? "–"), h("td", {}, n.device ?? ""),
        h("td", { class: "num" }, fmt.bytes(n.size_bytes)), h("td", { class: "num" }, n.block_size),
        h("td", { class: "num" }, n.blocks), h("td", {}, n.zoned ? "yes" : "no"),
        h("td", { class: "nqn" }, n.exported_as.map((x) => `${x.subsystem} ns ${x.nsid}`).join(", ") || "not exported")))));
  }));
}

// How a drive no namespace is opened on gets exported: a namespace on it, through the kernel's
// generic device while its nvme driver holds it, or through ferrofab's driver by PCI address.
function exportHint(d) {
  const devices = d.namespaces.map((n) => n.device).filter(Boolean);
  const vfio = d.pci ? `backend nvme-vfio with PCI address ${d.pci}${d.driver_bound === "vfio-pci" ? "" : " (bind moves it to vfio-pci)"}` : null;
  const uring = devices.length ? `backend nvme-uring with ${devices.join(" or ")}` : null;
  const ways = [uring, vfio].filter(Boolean).join(", or ");
  return `No namespace of this drive is exported. Add a namespace on it to a subsystem to export it${ways ? `: ${ways}` : ""}.`;
}

const WARNINGS = {
  available_spare: "Available spare below its threshold",
  temperature: "Temperature out of range",
  reliability: "Reliability degraded (media or internal errors)",
  read_only: "Media placed in read-only mode",
  volatile_memory_backup: "Volatile memory backup failed",
  persistent_memory_region: "Persistent Memory Region read only or unreliable",
};

// The SMART / Health log (NVMe Base 2.0 §5.16.1.3) of a drive, or why there is none. Values a
// critical warning concerns are marked: amber for a warning, red for a critical one.
function smartBlock(hl) {
  const log = hl.smart_log;
  if (!log) {
    return h("div", { class: "smart unavailable" },
      h("h4", {}, "SMART / Health log"),
      h("p", { class: "sub" }, `Not available: ${hl.smart_log_unavailable ?? "no reason given"}.`));
  }
  const has = (w) => log.warnings.includes(w);
  const level = (w) => (has(w) ? (["available_spare", "temperature"].includes(w) ? "warn" : "bad") : null);
  const hours = Number(log.power_on_hours);
  const n = (v) => Number(v).toLocaleString("en-US");
  const units = (v) => `${n(v)} data unit${Number(v) === 1 ? "" : "s"}`;
  const rows = [
    ["Temperature", `${log.temperature_celsius.toFixed(1)} °C (${log.temperature_kelvin} K, composite)`, level("temperature")],
    ["Available spare", `${log.available_spare_percent} % (warns below ${log.available_spare_threshold_percent} %)`, level("available_spare")],
    ["Wear", `${log.percentage_used} % of rated life used${log.percentage_used > 100 ? " (past its rating)" : ""}`,
      log.percentage_used >= 100 ? "bad" : log.percentage_used >= 90 ? "warn" : null],
    ["Data written", `${fmt.siBytes(log.data_written_bytes)} (${units(log.data_units_written)})`, null],
    ["Data read", `${fmt.siBytes(log.data_read_bytes)} (${units(log.data_units_read)})`, null],
    ["Host commands", `${n(log.host_write_commands)} writes, ${n(log.host_read_commands)} reads`, null],
    ["Power-on time", `${n(hours)} h${hours >= 48 ? ` (${fmt.duration(hours * 3600)})` : ""}, ${n(log.power_cycles)} power cycles`, null],
    ["Unsafe shutdowns", n(log.unsafe_shutdowns), null],
    ["Media errors", n(log.media_errors), log.media_errors > 0 ? "bad" : null],
    ["Error log entries", n(log.error_log_entries), null],
  ];
  return h("div", { class: `smart ${log.severity}`, dataset: { severity: log.severity } },
    h("h4", {}, "SMART / Health log", h("span", { class: `badge ${log.severity}` }, log.severity)),
    log.warnings.length ? h("ul", { class: "smart-warnings" }, log.warnings.map((w) =>
      h("li", { class: level(w) }, WARNINGS[w] ?? w))) : null,
    log.failure_predicted ? h("p", { class: "bad" }, "The drive predicts its own failure: replace it.") : null,
    h("dl", { class: "facts" }, rows.map(([k, v, mark]) => [h("dt", {}, k), h("dd", { class: mark }, String(v))])));
}

async function loadZoned(out) {
  let found = [];
  try {
    const subsystems = await api.get("/api/v1/subsystems");
    for (const s of subsystems) {
      const namespaces = await api.get(`/api/v1/subsystems/${api.seg(s.nqn)}/namespaces`);
      found.push(...namespaces.filter((n) => n.zoned).map((n) => ({ nqn: s.nqn, ns: n })));
    }
  } catch (e) {
    fill(out, failed("The namespaces could not be read", e));
    return;
  }
  if (!found.length) {
    fill(out, h("p", {}, "No zoned namespace (zoned-ram, or a ZNS drive's namespace) is served."));
    return;
  }
  clear(out);
  for (const { nqn, ns } of found) {
    const box = h("div", { class: "zone-map", dataset: { nqn, nsid: ns.nsid } }, h("p", {}, "Reading zones…"));
    add(out, h("h3", {}, `${nqn} namespace ${ns.nsid}`), box);
    zoneMap(box, nqn, ns.nsid);
  }
}

async function zoneMap(box, nqn, nsid) {
  let r;
  try {
    r = await api.get(`/api/v1/subsystems/${api.seg(nqn)}/namespaces/${nsid}/zones?count=1024`);
  } catch (e) {
    fill(box, failed("The zones could not be read", e));
    return;
  }
  const cols = 24;
  const cell = 28;
  const left = 56; // row labels: the first zone index of the row
  const rows = Math.ceil(r.zones.length / cols);
  const map = svg("svg", { viewBox: `0 0 ${left + cols * cell + 2} ${rows * cell + 2}`, class: "zones", role: "img", "aria-label": `zone map of namespace ${nsid}` });
  const counts = {};
  for (let row = 0; row < rows; row += 1) {
    map.appendChild(svg("text", { x: left - 8, y: row * cell + cell / 2 + 5, class: "tick", "text-anchor": "end" }, `zone ${r.from + row * cols}`));
  }
  r.zones.forEach((z, i) => {
    counts[z.state] = (counts[z.state] || 0) + 1;
    const x = left + (i % cols) * cell + 1;
    const y = Math.floor(i / cols) * cell + 1;
    const written = z.write_pointer === null ? (z.state === "full" ? z.capacity : 0)
      : Math.max(0, Math.min(z.capacity, z.write_pointer - z.zslba));
    const share = z.capacity ? written / z.capacity : 0;
    const where = z.write_pointer === null ? "no write pointer" : `write pointer ${z.write_pointer}`;
    const g = svg("g", { class: "zone", dataset: { zslba: z.zslba, state: z.state, wp: z.write_pointer ?? "" } },
      svg("rect", { x, y, width: cell - 2, height: cell - 2, fill: "#fff", stroke: COLOR[z.state], "stroke-width": 1.5 }),
      share > 0 ? svg("rect", { x: x + 1.5, y: y + 1.5 + (cell - 5) * (1 - share), width: cell - 5, height: (cell - 5) * share, fill: COLOR[z.state] }) : null,
      svg("title", {}, `zone ${r.from + i}: ZSLBA ${z.zslba}, ${z.state}, ${where} (${written} of ${z.capacity} blocks written)`));
    if (z.state === "offline" || z.state === "read-only") {
      g.firstChild.setAttribute("fill", COLOR[z.state]);
    }
    map.appendChild(g);
  });
  const legend = h("ul", { class: "legend" }, STATES.filter(([s]) => counts[s]).map(([s, c, label]) => {
    const sw = h("span", { class: "swatch" });
    sw.style.background = c;
    return h("li", {}, sw, h("span", { class: "series-name" }, label), h("span", { class: "series-value" }, `${counts[s]} zone(s)`));
  }));
  const active = r.zones.filter((z) => z.state !== "empty").slice(0, 12);
  fill(box, 
    h("p", { class: "sub" }, `${r.zone_count} zones of ${r.zone_size} blocks (${fmt.bytes(r.zone_size * r.block_size)}), ` +
      `${r.zone_capacity} writable each; at most ${r.max_open || "any number of"} open and ${r.max_active || "any number of"} active. ` +
      `Each cell is a zone, filled as far as it is written${r.zones.length < r.zone_count ? `; zones ${r.from}–${r.from + r.zones.length - 1} shown` : ""}.`),
    map, legend,
    active.length ? table(["ZSLBA", "State", "Write pointer", "Written"], active.map((z) => h("tr", { dataset: { zslba: z.zslba } },
      h("td", { class: "num" }, z.zslba), h("td", {}, z.state), h("td", { class: "num" }, z.write_pointer ?? "none"),
      h("td", { class: "num" }, z.write_pointer === null ? (z.state === "full" ? `${z.capacity} / ${z.capacity} blocks` : "–")
        : `${z.write_pointer - z.zslba} / ${z.capacity} blocks`)))) : null);
}
