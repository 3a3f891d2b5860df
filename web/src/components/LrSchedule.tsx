// The learning rate over the run (uPlot), one line per run of a sweep, computed in the browser
// by learningRate.ts (which mirrors src/train/schedule.cpp). x in epochs or iterations.
import { useEffect, useRef, useState } from "preact/hooks";
import uPlot from "uplot";
import { lrAt, sampleIterations, type Schedule } from "./learningRate";

export interface ScheduledRun {
  label: string;
  schedule: Schedule;
  maxIter: number;
  itersPerEpoch: number;
}

const COLORS = ["#2f6fed", "#d64545", "#1f9d55", "#c98a00", "#8a4fd8", "#14a3a3"];

type Axis = "epochs" | "iterations";

/** One x array for every run (the union of their samples, in the chosen unit) and a y per run. */
function plotData(runs: ScheduledRun[], axis: Axis): uPlot.AlignedData {
  const xs = new Set<number>();
  const toX = (run: ScheduledRun, iter: number) =>
    axis === "epochs" ? iter / run.itersPerEpoch : iter;
  for (const run of runs)
    for (const i of sampleIterations(run.schedule, run.maxIter)) xs.add(toX(run, i));
  const x = [...xs].sort((a, b) => a - b);
  const ys = runs.map((run) =>
    x.map((v) => {
      const iter = axis === "epochs" ? Math.round(v * run.itersPerEpoch) : v;
      return iter < run.maxIter ? lrAt(run.schedule, iter, run.maxIter) : null;
    }),
  );
  return [x, ...ys];
}

function options(runs: ScheduledRun[], axis: Axis, width: number): uPlot.Options {
  return {
    width,
    height: 220,
    legend: { show: runs.length > 1, live: false },
    cursor: { drag: { x: false, y: false } },
    scales: { x: { time: false } },
    axes: [
      { label: axis, size: 40 },
      {
        label: "learning rate",
        size: 70,
        values: (_, ticks) => ticks.map((t) => t.toPrecision(2)),
      },
    ],
    series: [
      { label: axis },
      ...runs.map((run, i) => ({
        label: run.label,
        stroke: COLORS[i % COLORS.length],
        width: 2,
        points: { show: false },
        spanGaps: false,
      })),
    ],
  };
}

export function LrSchedule({ runs }: { runs: ScheduledRun[] }) {
  const [axis, setAxis] = useState<Axis>("epochs");
  const box = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const element = box.current;
    if (!element || !runs.length) return;
    const plot = new uPlot(options(runs, axis, element.clientWidth), plotData(runs, axis), element);
    return () => plot.destroy();
  }, [runs, axis]);
  return (
    <div class="lr-schedule">
      <div class="tabs" role="group" aria-label="x axis">
        {(["epochs", "iterations"] as const).map((a) => (
          <button type="button" class={a === axis ? "on" : ""} onClick={() => setAxis(a)}>
            {a}
          </button>
        ))}
      </div>
      <div ref={box} />
    </div>
  );
}
