// The uPlot side of <Chart>: one plot that redraws at most once per animation frame while its
// feeds report points, thinned to the pixel columns of the visible x range.
import uPlot from "uplot";
import type { Feed, Series } from "./series";
import { thin } from "./thin";

export interface ChartLine {
  label: string;
  color: string;
  series: Series;
  dash?: boolean;
  /** Draw a dot at each point (sparse series such as test passes). */
  points?: boolean;
}

export interface ChartSpec {
  lines: ChartLine[];
  feeds: Feed[];
  /** The x of a vertical marker (the best test accuracy), read at each draw. */
  marker?: () => number | null | undefined;
  xLabel?: string;
  /** x is Unix time in seconds. */
  time?: boolean;
  /** Show only the last `span` of x (a rolling window). */
  span?: number;
  /** A fixed y range, e.g. [0, 100] for a utilisation. */
  yRange?: [number, number];
  format?: (v: number) => string;
  height?: number;
}

const MARKER_COLOR = "#1f9d55";

export class LiveChart {
  private plot: uPlot;
  private zoom: [number, number] | null = null;
  private frame = 0;
  private unsubscribe: (() => void)[];
  private resizer: ResizeObserver;

  constructor(
    private host: HTMLElement,
    private spec: { current: ChartSpec },
    private log: boolean,
    private onZoom: (zoomed: boolean) => void,
  ) {
    this.plot = new uPlot(this.options(), [[]], host);
    this.plot.over.addEventListener("dblclick", this.resetZoom);
    this.unsubscribe = spec.current.feeds.map((feed) => feed.subscribe(this.schedule));
    this.resizer = new ResizeObserver(() => this.fit());
    this.resizer.observe(host);
    this.redraw();
  }

  destroy() {
    cancelAnimationFrame(this.frame);
    this.unsubscribe.forEach((stop) => stop());
    this.resizer.disconnect();
    this.plot.destroy();
  }

  /** Asks for a redraw at the next animation frame; many calls before it make one. */
  schedule = () => {
    if (!this.frame) this.frame = requestAnimationFrame(this.redraw);
  };

  private redraw = () => {
    this.frame = 0;
    const series = this.spec.current.lines.map((line) => line.series);
    const [lo, hi] = this.range(series);
    const columns = Math.max(8, Math.round(this.plot.bbox.width / devicePixelRatio));
    const data = thin(series, { lo, hi, columns, positiveOnly: this.log });
    this.plot.batch(() => {
      this.plot.setData(data, false);
      this.plot.setScale("x", { min: lo, max: hi });
    });
    // Off the plot, the legend shows the latest values.
    if (this.cursorX(this.plot) == null) this.plot.setLegend({ idx: data[0].length - 1 });
    const total = series.reduce((n, s) => n + s.length, 0);
    this.host.dataset.points = String(total);
    this.host.classList.toggle("empty", total === 0);
  };

  /** The zoomed range, else all of x; with `span`, always the last `span` (whole-minute ticks
   *  on a rolling time chart, even while its first samples arrive). */
  private range(series: Series[]): [number, number] {
    if (this.zoom) return this.zoom;
    let lo = Infinity;
    let hi = -Infinity;
    for (const s of series) {
      if (!s.length) continue;
      lo = Math.min(lo, s.firstX);
      hi = Math.max(hi, s.lastX);
    }
    const { span, time } = this.spec.current;
    if (hi === -Infinity) hi = time ? Date.now() / 1000 : 1;
    if (lo === Infinity) lo = 0;
    if (span) lo = hi - span;
    return lo < hi ? [lo, hi] : [lo - 0.5, hi + 0.5];
  }

  private fit() {
    const width = this.host.clientWidth;
    if (width > 0 && width !== this.plot.width) {
      this.plot.setSize({ width, height: this.spec.current.height ?? 220 });
      this.schedule();
    }
  }

  private resetZoom = () => {
    this.zoom = null;
    this.onZoom(false);
    this.schedule();
  };

  private zoomToSelection = (u: uPlot) => {
    const { left, width } = u.select;
    if (width > 3) {
      this.zoom = [u.posToVal(left, "x"), u.posToVal(left + width, "x")];
      this.onZoom(true);
    }
    u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
    this.schedule();
  };

  /** x under the cursor, or null when the cursor is off the plot. */
  private cursorX(u: uPlot): number | null {
    const left = u.cursor.left;
    return left != null && left >= 0 ? u.posToVal(left, "x") : null;
  }

  /** A line's legend value: its real point nearest the cursor (else its last point). */
  private legendValue(line: ChartLine) {
    return (u: uPlot) => {
      const s = line.series;
      const i = s.nearest(this.cursorX(u) ?? s.lastX);
      const format = this.spec.current.format ?? defaultFormat;
      return i < 0 || Number.isNaN(s.y[i]) ? "–" : format(s.y[i]);
    };
  }

  private xValue = (u: uPlot) => {
    const x = this.cursorX(u);
    if (x == null) return "";
    return this.spec.current.time ? new Date(x * 1000).toLocaleTimeString() : x.toFixed(2);
  };

  private drawMarker = (u: uPlot) => {
    const x = this.spec.current.marker?.();
    if (x == null || x < u.scales.x.min! || x > u.scales.x.max!) return;
    const px = Math.round(u.valToPos(x, "x", true));
    const dpr = devicePixelRatio;
    const { ctx, bbox } = u;
    ctx.save();
    ctx.strokeStyle = ctx.fillStyle = MARKER_COLOR;
    ctx.lineWidth = dpr;
    ctx.setLineDash([4 * dpr, 3 * dpr]);
    ctx.beginPath();
    ctx.moveTo(px, bbox.top);
    ctx.lineTo(px, bbox.top + bbox.height);
    ctx.stroke();
    ctx.font = `${11 * dpr}px sans-serif`;
    ctx.fillText("best", px + 4 * dpr, bbox.top + 12 * dpr);
    ctx.restore();
  };

  private options(): uPlot.Options {
    const spec = this.spec.current;
    const format = spec.format ?? defaultFormat;
    return {
      width: Math.max(100, this.host.clientWidth),
      height: spec.height ?? 220,
      scales: {
        x: { time: !!spec.time, auto: false },
        y: { distr: this.log ? 3 : 1, ...(spec.yRange ? { range: spec.yRange } : {}) },
      },
      series: [
        { label: spec.xLabel ?? "epoch", value: this.xValue },
        ...spec.lines.map((line) => ({
          label: line.label,
          stroke: line.color,
          width: 1.5,
          spanGaps: true,
          dash: line.dash ? [6, 4] : undefined,
          points: { show: !!line.points, size: 5, fill: line.color },
          value: this.legendValue(line),
        })),
      ],
      axes: [{}, { size: 64, values: (_u, ticks) => ticks.map(format) }],
      cursor: { drag: { x: true, y: false, setScale: false } },
      hooks: { setSelect: [this.zoomToSelection], draw: [this.drawMarker] },
    };
  }
}

function defaultFormat(v: number): string {
  if (v === 0) return "0";
  const a = Math.abs(v);
  return a >= 1000 || a < 0.001 ? v.toExponential(1) : String(Number(v.toPrecision(3)));
}
