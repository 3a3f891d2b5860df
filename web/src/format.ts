// How numbers look in the UI: sizes, durations, rates, percentages.

export function bytes(n: number | null | undefined): string {
  if (n == null || !isFinite(n)) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (Math.abs(n) >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i === 0 || n >= 100 ? 0 : 1)} ${units[i]}`;
}

export function duration(seconds: number | null | undefined): string {
  if (seconds == null || !isFinite(seconds) || seconds < 0) return "–";
  if (seconds < 60) return `${Math.round(seconds)} s`;
  const m = Math.floor(seconds / 60);
  if (m < 60) return `${m} min ${Math.round(seconds % 60)} s`;
  const h = Math.floor(m / 60);
  return `${h} h ${m % 60} min`;
}

export function percent(x: number | null | undefined, digits = 1): string {
  return x == null || !isFinite(x) ? "–" : `${(x * 100).toFixed(digits)}%`;
}

/** 1234567 -> "1.23M": parameter and FLOP counts. */
export function count(n: number | null | undefined): string {
  if (n == null || !isFinite(n)) return "–";
  const units = ["", "k", "M", "G", "T", "P"];
  let i = 0;
  while (Math.abs(n) >= 1000 && i < units.length - 1) {
    n /= 1000;
    i++;
  }
  return `${i === 0 ? n : n.toFixed(n >= 100 ? 0 : n >= 10 ? 1 : 2)}${units[i]}`;
}

export function number(x: number | null | undefined, digits = 4): string {
  if (x == null || !isFinite(x)) return "–";
  return Math.abs(x) >= 1000 ? Math.round(x).toLocaleString("en") : x.toPrecision(digits);
}

export function ago(unixSeconds: number | null | undefined): string {
  if (!unixSeconds) return "–";
  const s = Date.now() / 1000 - unixSeconds;
  if (s < 60) return "just now";
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return new Date(unixSeconds * 1000).toLocaleDateString();
}
