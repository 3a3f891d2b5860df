// A job's weights run over its dataset's test split: accuracy, accuracy per class, the
// confusion matrix and the most confident mistakes.
import { useState } from "preact/hooks";
import { ApiError, post, url, type Evaluation } from "../api";
import { duration, number, percent } from "../format";
import { ConfusionMatrix } from "./ConfusionMatrix";
import { ModelError } from "./ModelError";
import { Stat } from "./Stat";
import { asApiError, Card } from "./ui";

export function EvaluationCard({ jobId, disabled }: { jobId: number; disabled: boolean }) {
  const [evaluation, setEvaluation] = useState<Evaluation | null>(null);
  const [running, setRunning] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const evaluate = () => {
    setRunning(true);
    setError(null);
    post<Evaluation>(`/jobs/${jobId}/evaluate`, { split: "test" })
      .then(setEvaluation, (e) => setError(asApiError(e)))
      .finally(() => setRunning(false));
  };
  return (
    <Card
      title="The test set"
      actions={
        <button class="primary" disabled={disabled || running} onClick={evaluate}>
          {running ? "Classifying…" : evaluation ? "Evaluate again" : "Classify the test set"}
        </button>
      }
    >
      <ModelError error={error} />
      {!evaluation && !error && (
        <p class="muted">
          Classifies every test image with the latest weights: accuracy per class, what is taken for
          what, and the worst mistakes.
        </p>
      )}
      {evaluation && <EvaluationResult evaluation={evaluation} />}
    </Card>
  );
}

function EvaluationResult({ evaluation: e }: { evaluation: Evaluation }) {
  return (
    <>
      <div class="stats evaluation-stats">
        <Stat value={percent(e.top1, 2)} label="accuracy (top-1)" />
        <Stat value={percent(e.top5, 2)} label="top-5" />
        <Stat value={number(e.loss)} label="loss" />
        <Stat value={e.examples.toLocaleString("en")} label={`${e.split} examples`} />
        <Stat value={seconds(e.seconds)} label={`${Math.round(e.images_per_second)} images/s`} />
      </div>
      <div class="evaluation-grid">
        <section>
          <h3>Confusion matrix</h3>
          <ConfusionMatrix names={e.class_names} counts={e.confusion} />
        </section>
        <section>
          <h3>Accuracy per class</h3>
          <PerClassTable evaluation={e} />
        </section>
      </div>
      <h3>Worst mistakes</h3>
      <WorstMistakes evaluation={e} />
    </>
  );
}

function PerClassTable({ evaluation: e }: { evaluation: Evaluation }) {
  return (
    <div class="table-scroll">
      <table class="per-class">
        <thead>
          <tr>
            <th>Class</th>
            <th class="num">Examples</th>
            <th>Accuracy</th>
            <th>Most taken for</th>
          </tr>
        </thead>
        <tbody>
          {e.class_names.map((name, i) => {
            const row = e.confusion[i] ?? [];
            const confusedWith = mostConfused(row, i);
            return (
              <tr>
                <td>{name}</td>
                <td class="num">{row.reduce((a, b) => a + b, 0)}</td>
                <td class="accuracy">
                  <span class="track">
                    <i style={{ width: `${(e.per_class_accuracy[i] ?? 0) * 100}%` }} />
                  </span>
                  {percent(e.per_class_accuracy[i])}
                </td>
                <td class="muted">
                  {confusedWith === null
                    ? "–"
                    : `${e.class_names[confusedWith]} (${row[confusedWith]})`}
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}

/** A short time to a hundredth of a second; a longer one in minutes and seconds. */
function seconds(s: number): string {
  return s < 10 ? `${s.toFixed(2)} s` : duration(s);
}

/** The class most often predicted instead of `truth`, or null when it never was. */
function mostConfused(row: number[], truth: number): number | null {
  let best: number | null = null;
  for (let j = 0; j < row.length; j++)
    if (j !== truth && row[j] > 0 && (best === null || row[j] > row[best])) best = j;
  return best;
}

function WorstMistakes({ evaluation: e }: { evaluation: Evaluation }) {
  if (e.worst.length === 0) return <p class="muted">No mistakes at all.</p>;
  return (
    <div class="mistakes">
      {e.worst.map((m) => (
        <figure class="mistake">
          <img
            class="pixel"
            loading="lazy"
            src={url(`/datasets/${e.dataset}/examples/${m.index}.png`, {
              split: e.split,
              scale: 3,
            })}
            alt={`${e.split} example ${m.index}`}
          />
          <figcaption>
            <span class="truth">{m.label_name}</span>
            <span class="predicted">
              → {m.predicted_name} {percent(m.probability, 0)}
            </span>
            <span class="muted">#{m.index}</span>
          </figcaption>
        </figure>
      ))}
    </div>
  );
}
