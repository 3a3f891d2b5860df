// Datasets: every dataset with its state, shape, classes and sizes (a text dataset: its
// symbols and tokens), and the form to make one.
import type { Dataset } from "../api";
import { DatasetForm } from "../components/DatasetForm";
import { useLiveDatasets } from "../components/liveDatasets";
import { Card, ErrorBox, Loading, Progress, StateBadge } from "../components/ui";
import { ago, bytes, duration } from "../format";
import "./Datasets.css";

export function DatasetsPage() {
  const { datasets, error } = useLiveDatasets();
  const list = datasets ? [...datasets.values()].sort((a, b) => b.id - a.id) : undefined;
  return (
    <>
      <h1>Datasets</h1>
      <Card title="New dataset">
        <DatasetForm />
      </Card>
      <Card title="All datasets">
        <ErrorBox error={error} />
        {!list ? (
          <Loading />
        ) : list.length === 0 ? (
          <p class="muted">No dataset yet: make one above.</p>
        ) : (
          <DatasetTable datasets={list} />
        )}
      </Card>
    </>
  );
}

function DatasetTable({ datasets }: { datasets: Dataset[] }) {
  return (
    <div class="table-scroll">
      <table class="datasets">
        <thead>
          <tr>
            <th class="num">#</th>
            <th>Name</th>
            <th>State</th>
            <th>Shape</th>
            <th class="num">Classes</th>
            <th>Examples</th>
            <th class="num">On disk</th>
            <th class="num">Build time</th>
            <th>Created</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {datasets.map((d) => (
            <DatasetRow key={d.id} dataset={d} />
          ))}
        </tbody>
      </table>
    </div>
  );
}

function DatasetRow({ dataset: d }: { dataset: Dataset }) {
  return (
    <tr>
      <td class="num">{d.id}</td>
      <td>
        <a href={`#/datasets/${d.id}`}>{d.name}</a>
      </td>
      <td class="dataset-state">
        {d.state === "building" ? <Progress value={d.progress} /> : <StateBadge state={d.state} />}
        {d.error && <span class="error-text">{d.error}</span>}
      </td>
      <td>{isText(d) ? `text (${levelName(d)})` : shape(d.shape)}</td>
      <td class="num">{isText(d) ? symbolsText(d) : d.num_classes || "–"}</td>
      <td>{isText(d) ? tokensText(d) : splits(d.examples)}</td>
      <td class="num">{d.state === "ready" ? bytes(d.bytes) : "–"}</td>
      <td class="num">{buildTime(d.build_seconds)}</td>
      <td class="muted">
        {ago(d.created)}
        {d.owner_name && ` by ${d.owner_name}`}
      </td>
      <td>{d.state === "ready" && <a href={`#/new?dataset=${d.id}`}>Train on it</a>}</td>
    </tr>
  );
}

export const isText = (d: Dataset) => d.kind === "text";

/** "characters" or "words": what a text dataset's symbols are. */
export function levelName(d: Dataset): string {
  return (d.text?.level ?? d.options.text) === "word" ? "words" : "characters";
}

/** A text dataset's vocabulary: "65 symbols". */
export function symbolsText(d: Dataset): string {
  return d.text ? `${d.text.vocabulary_size.toLocaleString("en")} symbols` : "–";
}

/** Tokens per split: "train 95,000 · validation 5,000 tokens". */
export function tokensText(d: Dataset): string {
  const t = d.text;
  if (!t) return "–";
  const n = (x: number) => x.toLocaleString("en");
  return `train ${n(t.train_tokens)} · validation ${n(t.validation_tokens)} tokens`;
}

/** [C, H, W] as "1 × 28 × 28" (channels × height × width). */
export function shape(s: number[] | null | undefined): string {
  return s ? s.join(" × ") : "–";
}

/** A dataset's split names, training first: "train", "test". */
export function splitNames(examples: Record<string, number> | undefined): string[] {
  return Object.keys(examples ?? {}).sort((a, b) => Number(b === "train") - Number(a === "train"));
}

/** Examples per split: "train 60,000 · test 10,000". */
export function splits(examples: Record<string, number> | undefined): string {
  const names = splitNames(examples);
  if (names.length === 0) return "–";
  return names.map((split) => `${split} ${examples![split].toLocaleString("en")}`).join(" · ");
}

/** How long a build took; under a second in milliseconds. */
export function buildTime(seconds: number | null | undefined): string {
  return seconds != null && seconds < 1 ? `${Math.round(seconds * 1000)} ms` : duration(seconds);
}
