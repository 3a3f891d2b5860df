// A job's curves: loss, accuracy and learning rate over epochs, the best test pass marked.
import type { JobTrace } from "../trace";
import { percent } from "../format";
import { Chart, PALETTE } from "./Chart";

const asPercent = (v: number) => percent(v, 1);

export function JobCharts({ trace, waiting }: { trace: JobTrace; waiting: string }) {
  const s = trace.series;
  const feeds = [trace];
  const common = { feeds, marker: trace.bestX, empty: waiting };
  return (
    <div class="job-charts">
      <Chart
        {...common}
        title="Loss"
        name="loss"
        logToggle
        lines={[
          { label: "train", color: PALETTE[0], series: s.trainLoss },
          { label: "test", color: PALETTE[1], series: s.testLoss, points: true },
        ]}
      />
      <Chart
        {...common}
        title="Accuracy (top-1)"
        name="accuracy"
        format={asPercent}
        lines={[
          { label: "train", color: PALETTE[0], series: s.trainTop1 },
          { label: "test", color: PALETTE[1], series: s.testTop1, points: true },
        ]}
      />
      <Chart
        {...common}
        title="Learning rate"
        name="lr"
        logToggle
        lines={[{ label: "lr", color: PALETTE[2], series: s.lr }]}
      />
    </div>
  );
}
