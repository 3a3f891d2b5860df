// The text a text network drew after each test pass: the latest, following the run live, and
// the older ones a step or a slider away.
import { useState } from "preact/hooks";
import type { JobTrace, Sample } from "../trace";
import { useFeed } from "../trace";
import { symbolLabel, visibleText } from "./textShow";
import { Card } from "./ui";
import "./SamplesCard.css";

function about(sample: Sample): string {
  const parts = [`iteration ${sample.iter}`];
  if (Number.isFinite(sample.epoch)) parts.push(`epoch ${sample.epoch.toFixed(2)}`);
  if (Number.isFinite(sample.temperature)) parts.push(`temperature ${sample.temperature}`);
  if (sample.prime) parts.push(`primed with ${symbolLabel(sample.prime)}`);
  return parts.join(" · ");
}

export function SamplesCard({ trace, waiting }: { trace: JobTrace; waiting: string }) {
  useFeed(trace);
  const samples = trace.samples;
  // null: the latest, as new samples come; else the index a person picked.
  const [picked, setPicked] = useState<number | null>(null);
  const last = samples.length - 1;
  const index = picked == null ? last : Math.min(picked, last);
  const pick = (i: number) => setPicked(i >= last ? null : Math.max(0, i));
  const sample = samples[index];
  const actions = samples.length > 1 && (
    <div class="sample-nav">
      <button onClick={() => pick(index - 1)} disabled={index === 0} aria-label="Older sample">
        ‹ Older
      </button>
      <input
        type="range"
        min={0}
        max={last}
        value={index}
        aria-label="Sample"
        onInput={(e) => pick(Number(e.currentTarget.value))}
      />
      <button onClick={() => pick(index + 1)} disabled={index === last} aria-label="Newer sample">
        Newer ›
      </button>
      <span class="muted sample-count">
        {index + 1} of {samples.length}
        {picked == null ? " (latest)" : ""}
      </span>
    </div>
  );
  return (
    <Card title="Samples" actions={actions}>
      <div class="samples" data-samples={samples.length}>
        {sample ? (
          <>
            <p class="muted sample-about" data-iter={sample.iter}>
              {about(sample)}
            </p>
            <pre class="sample-text">{visibleText(sample.text)}</pre>
          </>
        ) : (
          <p class="muted">{waiting}</p>
        )}
      </div>
    </Card>
  );
}
