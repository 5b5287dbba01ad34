// Numbers as an operator reads them.

const BINARY = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];

export function bytes(n) {
  if (n === null || n === undefined) return "–";
  let v = Number(n);
  let i = 0;
  while (Math.abs(v) >= 1024 && i < BINARY.length - 1) {
    v /= 1024;
    i += 1;
  }
  return `${i === 0 ? v : v.toFixed(v >= 100 ? 0 : v >= 10 ? 1 : 2)} ${BINARY[i]}`;
}

const DECIMAL = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];

// Decimal units, as drives quote data written (a SMART data unit is 512,000 bytes).
export function siBytes(n) {
  if (n === null || n === undefined) return "–";
  let v = Number(n);
  let i = 0;
  while (Math.abs(v) >= 1000 && i < DECIMAL.length - 1) {
    v /= 1000;
    i += 1;
  }
  return `${i === 0 ? v : v.toFixed(v >= 100 ? 0 : v >= 10 ? 1 : 2)} ${DECIMAL[i]}`;
}

// Decimal megabytes per second, as storage throughput is quoted.
export function mbps(bytesPerSecond) {
  const v = bytesPerSecond / 1e6;
  return `${v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)} MB/s`;
}

export function count(n) {
  if (n === null || n === undefined) return "–";
  const v = Number(n);
  if (v >= 1e6) return `${(v / 1e6).toFixed(2)} M`;
  if (v >= 1e4) return `${(v / 1e3).toFixed(1)} k`;
  return v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(v === 0 ? 0 : 2);
}

export function micros(us) {
  if (us === null || us === undefined) return "–";
  if (us >= 1e6) return `${(us / 1e6).toFixed(2)} s`;
  if (us >= 1e3) return `${(us / 1e3).toFixed(2)} ms`;
  return `${us.toFixed(us >= 100 ? 0 : 1)} µs`;
}

export function duration(seconds) {
  const s = Math.floor(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  const h = Math.floor(s / 3600);
  if (h < 48) return `${h} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(h / 24)} d ${h % 24} h`;
}

export function time(unixMs) {
  const d = new Date(unixMs);
  const pad = (n, w = 2) => String(n).padStart(w, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

// "64MiB", "1GiB", "4096" → bytes; null when it is not a size.
export function parseSize(text) {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(B|KiB|MiB|GiB|TiB|KB|MB|GB|TB)?\s*$/i.exec(text);
  if (!m) return null;
  const units = { b: 1, kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30, tib: 2 ** 40, kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12 };
  return Math.round(Number(m[1]) * units[(m[2] || "b").toLowerCase()]);
}
