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
