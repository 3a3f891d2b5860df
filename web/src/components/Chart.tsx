// A live chart: the whole series is kept, thinned per pixel column for drawing, redrawn at most
// once per animation frame as points arrive. Drag to zoom, double-click for the whole range,
// hover for the values nearest the cursor; an optional log scale and a marker (the best epoch).
import { useEffect, useRef, useState } from "preact/hooks";
import { LiveChart, type ChartSpec } from "./liveChart";
import "./Chart.css";

export type { ChartLine } from "./liveChart";

/** One colour per line, in order: readable on white and apart from each other. */
export const PALETTE = ["#2f6fed", "#d64545", "#1f9d55", "#c98a00", "#8e44ad", "#00838f"];

export interface ChartProps extends ChartSpec {
  title: string;
  /** Names the chart for tests: data-chart="NAME". */
  name?: string;
  /** Offer a log-scale y axis. */
  logToggle?: boolean;
  /** What an empty chart says. */
  empty?: string;
}

export function Chart(props: ChartProps) {
  const host = useRef<HTMLDivElement>(null);
  const spec = useRef<ChartSpec>(props);
  spec.current = props;
  const [log, setLog] = useState(false);
  const [zoomed, setZoomed] = useState(false);
  const identity = props.lines.map((line) => `${line.series.id}:${line.label}:${line.color}`);

  useEffect(() => {
    const chart = new LiveChart(host.current!, spec, log, setZoomed);
    return () => chart.destroy();
  }, [identity.join("|"), log]);

  return (
    <div class="chart" data-chart={props.name}>
      <header>
        <h3>{props.title}</h3>
        <span class="muted hint">
          {zoomed ? "double-click: whole range" : "drag: zoom · hover: values"}
        </span>
        {props.logToggle && (
          <label class="log-toggle">
            <input
              type="checkbox"
              checked={log}
              onChange={(e) => setLog(e.currentTarget.checked)}
            />
            log
          </label>
        )}
      </header>
      <div class="chart-plot" ref={host} data-empty={props.empty ?? "No points yet"} />
    </div>
  );
}
