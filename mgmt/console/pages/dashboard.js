// Dashboard: live IOPS, throughput and latency (p50/p99), in total and per namespace, from
// the server-sent statistics stream (one sample a second); reactor load; connected hosts.

import * as api from "../api.js";
import { h, table, section, errorText, add, fill } from "../dom.js";
import { LineChart, percentBars, PALETTE } from "../charts.js";
import * as fmt from "../format.js";

const WINDOW_S = 60;

export function show(root) {
  const abort = new AbortController();
  const history = []; // [{t, stats}], oldest first, WINDOW_S + 5 at most
  const status = h("p", { class: "stream-status", id: "stream-status" }, "Connecting to the live statistics…");
  const cards = h("div", { class: "cards", id: "summary" });
  const iops = new LineChart({ id: "chart-iops", title: "IOPS", axisLabel: "commands completed per second", format: fmt.count, windowSeconds: WINDOW_S });
  const tput = new LineChart({ id: "chart-throughput", title: "Throughput", axisLabel: "MB/s (10⁶ bytes per second)", format: (v) => fmt.mbps(v * 1e6), windowSeconds: WINDOW_S });
  const lat = new LineChart({
    id: "chart-latency", title: "Latency", axisLabel: "completion time in the target, µs", format: fmt.micros, windowSeconds: WINDOW_S,
    note: "Percentiles of each second's commands, interpolated inside the latency histogram's buckets (10, 25, 50, 100, 250 µs, …).",
  });
  const perNs = h("div", { id: "namespaces-now" });
  const reactors = h("div", { id: "reactors" });
  const hosts = h("div", { id: "connected-hosts" });
  add(root, 
    h("h1", {}, "Dashboard"), status, cards,
    h("div", { class: "charts" }, iops.element, tput.element, lat.element),
    section("Namespaces, last second", perNs),
    h("div", { class: "two" }, section("Reactor load (busy share of each reactor thread)", reactors),
      section("Connected hosts", hosts)),
  );

  function redraw() {
    if (!history.length) return;
    const now = history[history.length - 1].t;
    const keys = new Map(); // "nqn/nsid" -> colour index
    for (const { stats } of history) {
      for (const ns of stats.namespaces) {
        const k = `${ns.subsystem} ns ${ns.nsid}`;
        if (!keys.has(k)) keys.set(k, keys.size);
      }
    }
    const nsSeries = (pick, suffix = "") => [...keys.keys()].map((k, i) => ({
      name: `${k}${suffix}`, color: PALETTE[(i + 1) % PALETTE.length], width: 1.5,
      points: history.map(({ t, stats }) => {
        const ns = stats.namespaces.find((n) => `${n.subsystem} ns ${n.nsid}` === k);
        return [t, ns ? pick(ns.rates) : null];
      }),
    }));
    const total = (pick) => history.map(({ t, stats }) => [t, pick(stats.total)]);
    const ops = (r) => r.read_iops + r.write_iops + r.other_iops;
    iops.render([{ name: "total", color: "#111", width: 2.5, points: total(ops) }, ...nsSeries(ops)], now);
    tput.render([
      { name: "read (total)", color: PALETTE[0], width: 2.5, points: total((r) => r.read_bytes_per_second / 1e6) },
      { name: "write (total)", color: PALETTE[5], width: 2.5, dashed: true, points: total((r) => r.write_bytes_per_second / 1e6) },
      ...nsSeries((r) => (r.read_bytes_per_second + r.write_bytes_per_second) / 1e6, " read+write"),
    ], now);
    lat.render([
      { name: "p50 (all namespaces)", color: PALETTE[2], width: 2.5, points: total((r) => r.latency_p50_us) },
      { name: "p99 (all namespaces)", color: "#111", width: 2.5, dashed: true, points: total((r) => r.latency_p99_us) },
      ...nsSeries((r) => r.latency_p99_us, " p99"),
    ], now);
  }

  function summarize(stats) {
    const r = stats.total;
    const card = (id, label, value) => h("div", { class: "card small", id }, h("span", { class: "label" }, label), h("span", { class: "value" }, value));
    fill(cards, 
      card("total-iops", "IOPS", fmt.count(r.read_iops + r.write_iops + r.other_iops)),
      card("total-read", "Read", fmt.mbps(r.read_bytes_per_second)),
      card("total-write", "Write", fmt.mbps(r.write_bytes_per_second)),
      card("total-p50", "Latency p50", fmt.micros(r.latency_p50_us)),
      card("total-p99", "Latency p99", fmt.micros(r.latency_p99_us)),
      card("host-count", "Connected hosts", String(stats.hosts.filter((c) => c.kind === "io").length)),
    );
    const rows = stats.namespaces.map((ns) => h("tr", {},
      h("td", {}, ns.subsystem), h("td", { class: "num" }, ns.nsid),
      h("td", { class: "num" }, fmt.count(ns.rates.read_iops)), h("td", { class: "num" }, fmt.count(ns.rates.write_iops)),
      h("td", { class: "num" }, fmt.mbps(ns.rates.read_bytes_per_second)), h("td", { class: "num" }, fmt.mbps(ns.rates.write_bytes_per_second)),
      h("td", { class: "num" }, fmt.micros(ns.rates.latency_p50_us)), h("td", { class: "num" }, fmt.micros(ns.rates.latency_p99_us)),
      h("td", { class: "num" }, fmt.count(ns.rates.errors_per_second))));
    fill(perNs, rows.length
      ? table(["Subsystem", "NSID", "Read IOPS", "Write IOPS", "Read", "Write", "p50", "p99", "Errors/s"], rows)
      : h("p", {}, "No namespaces."));
    fill(reactors, stats.reactors.length
      ? percentBars(stats.reactors.map((x) => ({
        label: `reactor ${x.id} (${x.transport})`, percent: x.busy_percent,
        detail: `${fmt.count(x.commands_per_second)} commands/s`,
      })))
      : h("p", {}, "No reactors registered."));
    const io = stats.hosts;
    fill(hosts, io.length
      ? table(["CNTLID", "Host NQN", "Subsystem", "Queues", "Connected"], io.map((c) => h("tr", {},
        h("td", { class: "num" }, c.cntlid), h("td", { class: "nqn" }, c.host_nqn || "(none)"),
        h("td", { class: "nqn" }, c.subsystem_nqn), h("td", { class: "num" }, c.io_queues),
        h("td", {}, fmt.duration(c.connected_seconds)))))
      : h("p", {}, "No host is connected."));
  }

  async function run() {
    while (!abort.signal.aborted) {
      try {
        await api.stream("/api/v1/stats/stream", (name, data) => {
          if (name !== "stats") return;
          const stats = JSON.parse(data);
          history.push({ t: stats.unix_ms, stats });
          while (history.length > WINDOW_S + 5) history.shift();
          status.textContent = `Live: a sample every second, the last ${WINDOW_S} s shown. Last sample ${fmt.time(stats.unix_ms)}.`;
          status.className = "stream-status live";
          summarize(stats);
          redraw();
        }, abort.signal);
      } catch (e) {
        if (abort.signal.aborted) return;
        status.textContent = `Live statistics interrupted (${errorText(e)}); retrying in 3 s.`;
        status.className = "stream-status error";
        if (e.status === 401) return;
        await new Promise((r) => setTimeout(r, 3000));
      }
    }
  }
  run();
  return () => abort.abort();
}
