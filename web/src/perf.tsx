// /perf.html: the Compare page's chart with 5 jobs of 100,000 points each, then 100 points per
// job every 100 ms for a few seconds. What it measured goes to window.__perf (tests/perf.test.mjs).
import { render } from "preact";
import { CompareChart } from "./components/CompareChart";
import { JobTrace } from "./trace";
import "uplot/dist/uPlot.min.css";
import "./style.css";

const params = new URLSearchParams(location.search);
const JOBS = Number(params.get("jobs") ?? 5);
const POINTS = Number(params.get("points") ?? 100_000);
const BATCH = 100;
const INTERVAL_MS = 100;
const UPDATE_MS = Number(params.get("seconds") ?? 6) * 1000;
const ITERS_PER_EPOCH = 1000;

export interface PerfResult {
  jobs: number;
  pointsPerJob: number;
  dataMs: number;
  firstRenderMs: number;
  updateMs: number;
  frames: number;
  worstFrameMs: number;
  p95FrameMs: number;
  longestTaskMs: number;
  pointsInChart: number;
}

declare global {
  interface Window {
    __perf?: PerfResult;
  }
}

/** A plausible noisy training curve, with a spike now and then. */
function addTrainPoints(trace: JobTrace, job: number, from: number, count: number) {
  for (let iter = from; iter < from + count; iter++) {
    const spike = iter % 9973 === 0 ? 3 : 0;
    const loss = 2.3 / (1 + iter / (3000 * (job + 1))) + 0.1 * Math.random() + spike;
    trace.ingest({
      event: "train",
      iter,
      epoch: iter / ITERS_PER_EPOCH,
      loss,
      top1: 1 - loss / 2.5,
      lr: 0.01 * 0.5 ** Math.floor(iter / 30000),
    });
  }
}

const nextFrame = () => new Promise<number>((done) => requestAnimationFrame(done));

function percentile(values: number[], p: number) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? 0;
}

/** Appends points at the live rate for `UPDATE_MS`, timing every frame meanwhile. */
async function measureUpdates(traces: JobTrace[], next: number) {
  let longestTask = 0;
  const observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) longestTask = Math.max(longestTask, e.duration);
  });
  observer.observe({ type: "longtask", buffered: false });
  const feeder = setInterval(() => {
    traces.forEach((t, job) => addTrainPoints(t, job, next, BATCH));
    next += BATCH;
  }, INTERVAL_MS);
  const gaps: number[] = [];
  const start = performance.now();
  let last = await nextFrame();
  while (last - start < UPDATE_MS) {
    const now = await nextFrame();
    gaps.push(now - last);
    last = now;
  }
  clearInterval(feeder);
  observer.disconnect();
  return { gaps, longestTask, updateMs: last - start };
}

async function main() {
  const t0 = performance.now();
  const traces = Array.from({ length: JOBS }, () => new JobTrace());
  traces.forEach((t, job) => addTrainPoints(t, job, 1, POINTS));
  const dataMs = performance.now() - t0;

  const t1 = performance.now();
  const jobs = traces.map((trace, i) => ({ label: `#${i + 1} synthetic`, trace }));
  render(<CompareChart jobs={jobs} initial="trainLoss" />, document.getElementById("perf")!);
  const plot = () => document.querySelector<HTMLElement>(".chart-plot[data-points]");
  while (!plot()) await nextFrame();
  await nextFrame();
  const firstRenderMs = performance.now() - t1;

  const { gaps, longestTask, updateMs } = await measureUpdates(traces, POINTS + 1);
  await nextFrame();
  window.__perf = {
    jobs: JOBS,
    pointsPerJob: POINTS,
    dataMs,
    firstRenderMs,
    updateMs,
    frames: gaps.length,
    worstFrameMs: Math.max(...gaps),
    p95FrameMs: percentile(gaps, 0.95),
    longestTaskMs: longestTask,
    pointsInChart: Number(plot()!.dataset.points),
  };
}

main();
