// A job's curves: loss, accuracy and learning rate over epochs, the best test pass marked; a
// text network's bits per symbol in place of accuracy.
import type { JobTrace } from "../trace";
import { percent } from "../format";
import { Chart, PALETTE } from "./Chart";

const asPercent = (v: number) => percent(v, 1);

/** A text network's: loss, bits per symbol (the fewest marked) and learning rate. */
function TextCharts({ trace, waiting, unit }: { trace: JobTrace; waiting: string; unit: string }) {
  const s = trace.series;
  const common = { feeds: [trace], marker: trace.bestBitsX, empty: waiting };
  return (
    <div class="job-charts">
      <Chart
        {...common}
        title="Loss"
        name="loss"
        logToggle
        lines={[
          { label: "train", color: PALETTE[0], series: s.trainLoss },
          { label: "validation", color: PALETTE[1], series: s.testLoss, points: true },
        ]}
      />
      <Chart
        {...common}
        title={`Bits per ${unit} (validation)`}
        name="bits"
        format={(v: number) => v.toFixed(3)}
        lines={[{ label: "bits", color: PALETTE[1], series: s.testBits, points: true }]}
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

/** `unit`: a text network's symbol ("character", "word"); none for an image network. */
export function JobCharts({
  trace,
  waiting,
  unit,
}: {
  trace: JobTrace;
  waiting: string;
  unit?: string;
}) {
  if (unit) return <TextCharts trace={trace} waiting={waiting} unit={unit} />;
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
