// Times and durations as the CLI shows them: UTC, seconds precision.

const pad = (n) => String(n).padStart(2, '0');

// 3725 -> "1h 02m 05s", 59 -> "59s", 0 -> "0s"
export function duration(seconds) {
  let s = Math.max(0, Math.floor(seconds));
  const d = Math.floor(s / 86400); s -= d * 86400;
  const hh = Math.floor(s / 3600); s -= hh * 3600;
  const m = Math.floor(s / 60); s -= m * 60;
  if (d) return `${d}d ${hh}h ${pad(m)}m`;
  if (hh) return `${hh}h ${pad(m)}m ${pad(s)}s`;
  if (m) return `${m}m ${pad(s)}s`;
  return `${s}s`;
}

// "10:42:07Z" for today (UTC), else "2024-05-01 10:42Z".
export function time(iso) {
  if (!iso) return '—';
  const t = new Date(iso);
  if (Number.isNaN(t.getTime())) return iso;
  const hms = `${pad(t.getUTCHours())}:${pad(t.getUTCMinutes())}:${pad(t.getUTCSeconds())}Z`;
  const day = `${t.getUTCFullYear()}-${pad(t.getUTCMonth() + 1)}-${pad(t.getUTCDate())}`;
  const today = new Date().toISOString().slice(0, 10);
  return day === today ? hms : `${day} ${hms.slice(0, 5)}Z`;
}

// <time datetime=...> with the full instant on hover.
export function timeAttrs(iso) {
  return { datetime: iso || '', title: iso || '' };
}

export function plural(n, one, many) {
  return `${n} ${n === 1 ? one : many || one + 's'}`;
}

// A detail object from the audit log as "k=v k=v", strings unquoted.
export function detail(d) {
  if (d === null || d === undefined) return '';
  if (typeof d !== 'object') return String(d);
  return Object.entries(d)
    .map(([k, v]) => `${k}=${typeof v === 'object' && v !== null ? JSON.stringify(v) : v}`)
    .join(' ');
}

// The API's duration syntax (src/duration.rs): parts of <number><unit>
// with unit ms, s, m, h or d, e.g. "90s", "30m", "1h30m", "1h 30m", "2d".
const UNITS = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400 };
// The policy limits in GET /v1/targets are formatted by humantime, which
// also writes "1day", "2days", "1month".
const HUMANTIME = { ...UNITS, day: 86400, days: 86400, month: 2630016, months: 2630016, year: 31557600, years: 31557600 };

function parseWith(units, text) {
  const t = String(text || '').trim();
  if (!t) return null;
  const re = /(\d+)\s*([a-z]+)\s*/y;
  let total = 0;
  let at = 0;
  while (at < t.length) {
    re.lastIndex = at;
    const m = re.exec(t);
    if (!m || !Object.hasOwn(units, m[2])) return null;
    total += Number(m[1]) * units[m[2]];
    at = re.lastIndex;
  }
  return Number.isFinite(total) ? total : null;
}

// A duration as a person types it for the API -> seconds, or null when the
// API would refuse its syntax. The server checks again: this only lets the
// form say what is wrong before sending.
export const parseDuration = (text) => parseWith(UNITS, text);

// A policy limit from GET /v1/targets -> seconds (null if unreadable).
export const parseLimit = (text) => parseWith(HUMANTIME, text);

// Seconds -> the API's syntax: 5400 -> "1h 30m", 86400 -> "1d".
export function apiDuration(seconds) {
  let s = Math.max(0, Math.round(seconds));
  const parts = [];
  for (const [u, k] of [['d', 86400], ['h', 3600], ['m', 60], ['s', 1]]) {
    if (s >= k) {
      parts.push(`${Math.floor(s / k)}${u}`);
      s %= k;
    }
  }
  return parts.join(' ') || '0s';
}
