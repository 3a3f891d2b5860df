// Several jobs' curves of one metric on one chart, one colour per job.
import { useState } from "preact/hooks";
import { percent } from "../format";
import { METRICS, type JobTrace, type Metric } from "../trace";
import { Chart, PALETTE } from "./Chart";

export interface Compared {
  label: string;
  trace: JobTrace;
}

export const colorOf = (index: number) => PALETTE[index % PALETTE.length];

export function CompareChart({
  jobs,
  initial = "testTop1",
}: {
  jobs: Compared[];
  initial?: Metric;
}) {
  const [metric, setMetric] = useState<Metric>(initial);
  const shown = METRICS.find((m) => m.key === metric)!;
  return (
    <div class="compare-chart">
      <div class="tabs" role="tablist">
        {METRICS.map((m) => (
          <button class={m.key === metric ? "on" : ""} onClick={() => setMetric(m.key)}>
            {m.label}
          </button>
        ))}
      </div>
      <Chart
        title={shown.label}
        name="compare"
        height={340}
        logToggle={!shown.percent}
        format={shown.percent ? (v) => percent(v, 1) : undefined}
        feeds={jobs.map((j) => j.trace)}
        empty={jobs.length ? "No points yet" : "Pick jobs to compare"}
        lines={jobs.map((j, i) => ({
          label: j.label,
          color: colorOf(i),
          series: j.trace.series[metric],
          points: shown.sparse,
        }))}
      />
    </div>
  );
}
