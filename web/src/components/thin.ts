// Thinning for drawing: of each series only the lowest and highest point of each pixel column
// is drawn (in the order they came), so a spike survives however many points share a pixel.
import type uPlot from "uplot";
import type { Series } from "./series";

export interface Window {
  lo: number;
  hi: number;
  columns: number;
  /** Log scale: values <= 0 cannot be drawn and are left out. */
  positiveOnly: boolean;
}

/** One x array of two slots per column and, per series, its values in those slots (or null). */
export function thin(lines: Series[], w: Window): uPlot.AlignedData {
  const width = (w.hi - w.lo) / w.columns;
  const xs = new Array<number>(w.columns * 2);
  for (let c = 0; c < w.columns; c++) {
    xs[2 * c] = w.lo + (c + 0.25) * width;
    xs[2 * c + 1] = w.lo + (c + 0.75) * width;
  }
  return [xs, ...lines.map((series) => thinSeries(series, w, width))];
}

function thinSeries(s: Series, w: Window, width: number): (number | null)[] {
  const out = new Array<number | null>(w.columns * 2).fill(null);
  const end = s.upperBound(w.hi);
  let column = -1;
  let min = 0;
  let max = 0;
  let minAt = 0;
  let maxAt = 0;
  const flush = () => {
    if (column < 0) return;
    const firstIsMin = minAt <= maxAt;
    out[2 * column] = firstIsMin ? min : max;
    if (minAt !== maxAt) out[2 * column + 1] = firstIsMin ? max : min;
  };
  for (let i = s.lowerBound(w.lo); i < end; i++) {
    const y = s.y[i];
    if (Number.isNaN(y) || (w.positiveOnly && y <= 0)) continue;
    const c = Math.min(w.columns - 1, Math.floor((s.x[i] - w.lo) / width));
    if (c !== column) {
      flush();
      column = c;
      min = max = y;
      minAt = maxAt = i;
    } else if (y < min) {
      min = y;
      minAt = i;
    } else if (y > max) {
      max = y;
      maxAt = i;
    }
  }
  flush();
  return out;
}
