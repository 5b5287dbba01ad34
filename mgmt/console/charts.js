// Hand-drawn SVG charts: a time-series line chart with a value axis (units on every tick),
// a time axis (seconds before now), a legend with each series' latest value; and a
// percentage bar list. No library: the shapes are a few paths and lines.

import { h, svg, clear } from "./dom.js";

const W = 640;
const H = 230;
const M = { left: 70, right: 14, top: 12, bottom: 34 };

// Distinct on white and for the common colour-vision deficiencies (Okabe–Ito).
export const PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#7f7f7f", "#F0E442"];

// 1, 2, 2.5 or 5 times a power of ten, at least `raw`.
function niceStep(raw) {
  if (!(raw > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 2.5, 5, 10]) {
    if (m * power >= raw) return m * power;
  }
  return 10 * power;
}

export class LineChart {
  // format(v): a tick/legend label with its unit; axisLabel: the quantity and unit.
  constructor({ id, title, axisLabel, format, note, windowSeconds = 60 }) {
    this.format = format;
    this.windowSeconds = windowSeconds;
    this.svg = svg("svg", {
      viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img",
      "aria-label": `${title} over the last ${windowSeconds} seconds`, id,
    });
    this.legend = h("ul", { class: "legend" });
    this.element = h("figure", { class: "chart-box" },
      h("figcaption", {}, title, h("span", { class: "axis-name" }, ` — ${axisLabel}`)),
      this.svg, this.legend, note ? h("p", { class: "sub" }, note) : null);
  }

  // series: [{name, color, dashed, width, points: [[unixMs, value|null], …]}]; nowMs: the
  // right edge.
  render(series, nowMs) {
    const s = clear(this.svg);
    const x0 = nowMs - this.windowSeconds * 1000;
    const plotW = W - M.left - M.right;
    const plotH = H - M.top - M.bottom;
    let max = 0;
    for (const one of series) {
      for (const [t, v] of one.points) {
        if (t >= x0 && v !== null && v > max) max = v;
      }
    }
    const step = niceStep((max || 1) / 4);
    const top = Math.max(step * Math.ceil((max || 1) / step), step);
    const xOf = (t) => M.left + ((t - x0) / (this.windowSeconds * 1000)) * plotW;
    const yOf = (v) => M.top + plotH - (v / top) * plotH;
    s.dataset.max = String(max);
    // Value axis: grid lines with labels.
    for (let v = 0; v <= top + step / 2; v += step) {
      const y = yOf(v);
      s.appendChild(svg("line", { x1: M.left, x2: W - M.right, y1: y, y2: y, class: v === 0 ? "axis" : "grid" }));
      s.appendChild(svg("text", { x: M.left - 6, y: y + 4, class: "tick", "text-anchor": "end" }, this.format(v)));
    }
    // Time axis: five ticks.
    const every = this.windowSeconds / 4;
    for (let ago = 0; ago <= this.windowSeconds; ago += every) {
      const x = xOf(nowMs - ago * 1000);
      s.appendChild(svg("line", { x1: x, x2: x, y1: M.top + plotH, y2: M.top + plotH + 4, class: "axis" }));
      s.appendChild(svg("text", { x, y: H - 16, class: "tick", "text-anchor": "middle" }, ago === 0 ? "now" : `−${ago} s`));
    }
    s.appendChild(svg("text", { x: M.left + plotW / 2, y: H - 2, class: "tick", "text-anchor": "middle" }, "time (seconds before now)"));
    s.appendChild(svg("line", { x1: M.left, x2: M.left, y1: M.top, y2: M.top + plotH, class: "axis" }));
    // The series, with gaps where a value is missing; the first one drawn last, on top.
    clear(this.legend);
    const paths = [];
    for (const one of series) {
      let d = "";
      let pen = false;
      let last = null;
      for (const [t, v] of one.points) {
        if (t < x0 - 1000 || v === null) {
          pen = false;
          continue;
        }
        d += `${pen ? "L" : "M"}${xOf(Math.max(t, x0)).toFixed(1)},${yOf(v).toFixed(1)}`;
        pen = true;
        last = v;
      }
      const path = svg("path", {
        d: d || `M${M.left},${yOf(0)}`, fill: "none", stroke: one.color,
        "stroke-width": one.width || 2, "stroke-dasharray": one.dashed ? "6 4" : null,
        "stroke-linejoin": "round", class: "series",
        dataset: { name: one.name, last: last === null ? "" : String(last) },
      });
      if (!d) path.setAttribute("stroke-opacity", "0");
      paths.push(path);
      this.legend.appendChild(h("li", {},
        h("span", { class: `swatch${one.dashed ? " dashed" : ""}`, dataset: { color: one.color } }),
        h("span", { class: "series-name" }, one.name),
        h("span", { class: "series-value" }, last === null ? "–" : this.format(last))));
    }
    for (const path of paths.reverse()) s.appendChild(path);
    for (const sw of this.legend.querySelectorAll(".swatch")) {
      sw.style.borderColor = sw.dataset.color;
    }
  }
}

// Horizontal bars, one per item: [{label, percent, detail}], scaled 0–100 %.
export function percentBars(items) {
  const rowH = 26;
  const width = 640;
  const left = 170;
  const right = 70;
  const height = items.length * rowH + 24;
  const s = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "bars", role: "img", "aria-label": "reactor load" });
  const plotW = width - left - right;
  for (const pct of [0, 25, 50, 75, 100]) {
    const x = left + (pct / 100) * plotW;
    s.appendChild(svg("line", { x1: x, x2: x, y1: 0, y2: height - 18, class: pct ? "grid" : "axis" }));
    s.appendChild(svg("text", { x, y: height - 4, class: "tick", "text-anchor": "middle" }, `${pct} %`));
  }
  items.forEach((item, i) => {
    const y = i * rowH + 4;
    const pct = Math.max(0, Math.min(100, item.percent));
    s.appendChild(svg("text", { x: left - 8, y: y + 14, class: "tick label", "text-anchor": "end" }, item.label));
    s.appendChild(svg("rect", { x: left, y, width: Math.max((pct / 100) * plotW, 1), height: rowH - 8, class: "bar", dataset: { percent: String(item.percent) } }));
    s.appendChild(svg("text", { x: left + (pct / 100) * plotW + 6, y: y + 14, class: "tick value" }, `${item.percent.toFixed(1)} %`));
    if (item.detail) {
      s.appendChild(svg("title", {}, item.detail));
    }
  });
  return s;
}
