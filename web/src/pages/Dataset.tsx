// One dataset: its build's progress (live) or its error; once ready, its classes per split,
// its mean image and examples of every class (a text dataset: its most frequent symbols and
// excerpts of its text); training on it; deleting it.
import { useState } from "preact/hooks";
import { ApiError, del, get, url, type Dataset, type TextExcerpt } from "../api";
import { ClassHistogram } from "../components/ClassHistogram";
import { useLiveDatasets } from "../components/liveDatasets";
import { PageTitle } from "../components/PageTitle";
import { PixelImage } from "../components/PixelImage";
import { Stat } from "../components/Stat";
import { symbolLabel, visibleText } from "../components/textShow";
import {
  asApiError,
  Card,
  ErrorBox,
  Loading,
  Progress,
  StateBadge,
  useData,
} from "../components/ui";
import { ago, bytes } from "../format";
import { navigate } from "../router";
import {
  buildTime,
  isText,
  levelName,
  shape,
  splitNames,
  splits,
  symbolsText,
  tokensText,
} from "./Datasets";
import "./Datasets.css";

export function DatasetPage({ id }: { id: number }) {
  const { datasets, error } = useLiveDatasets();
  if (error && !datasets) return <ErrorBox error={error} />;
  if (!datasets) return <Loading />;
  const d = datasets.get(id);
  if (!d)
    return (
      <div class="error" role="alert">
        There is no dataset {id}; it may have been deleted. <a href="#/datasets">All datasets</a>
      </div>
    );
  return (
    <>
      <DatasetHeader dataset={d} />
      {d.state === "building" && (
        <Card title="Building">
          <Progress value={d.progress} />
          <p class="muted">
            The page follows the build; it shows the {isText(d) ? "text" : "classes"} once it is
            done.
          </p>
        </Card>
      )}
      {d.state === "failed" && (
        <div class="error" role="alert">
          <strong>The build failed:</strong> {d.error ?? "the server gave no reason"}
        </div>
      )}
      {d.state === "ready" &&
        (isText(d) ? <TextDataset dataset={d} /> : <ReadyDataset dataset={d} />)}
    </>
  );
}

function DatasetHeader({ dataset: d }: { dataset: Dataset }) {
  return (
    <>
      <PageTitle
        crumbs={
          <>
            <a href="#/datasets">Datasets</a> / #{d.id}
          </>
        }
        title={d.name}
      >
        <StateBadge state={d.state} />
        <span class="spacer" />
        {d.state === "ready" && (
          <a href={`#/new?dataset=${d.id}`}>
            <button class="primary">Train on it</button>
          </a>
        )}
        <DeleteButton dataset={d} />
      </PageTitle>
      <div class="stats card">
        <Stat label="source" value={sourceName(d.source)} />
        {isText(d) ? (
          <>
            <Stat label="symbols" value={levelName(d)} />
            <Stat label="vocabulary" value={symbolsText(d)} />
            <Stat label="tokens" value={tokensText(d)} />
            <Stat label="files" value={d.text ? String(d.text.files) : "–"} />
          </>
        ) : (
          <>
            <Stat label="shape (C × H × W)" value={shape(d.shape)} />
            <Stat label="classes" value={d.num_classes ? String(d.num_classes) : "–"} />
            <Stat label="examples" value={splits(d.examples)} />
          </>
        )}
        <Stat label="on disk" value={d.state === "ready" ? bytes(d.bytes) : "–"} />
        <Stat label="build time" value={buildTime(d.build_seconds)} />
        <Stat label="options" value={optionsText(d)} />
        <Stat
          label="created"
          value={`${ago(d.created)}${d.owner_name ? ` by ${d.owner_name}` : ""}`}
        />
      </div>
    </>
  );
}

function ReadyDataset({ dataset: d }: { dataset: Dataset }) {
  const classes = d.classes ?? [];
  const names = splitNames(d.examples);
  return (
    <>
      <div class="dataset-overview">
        <Card title={`Examples per class (${classes.length} classes)`}>
          <ClassHistogram classes={classes} splits={names} />
        </Card>
        <Card title="Mean image">
          <PixelImage
            src={url(`/datasets/${d.id}/mean.png`)}
            alt="The training split's mean image"
            fit={220}
          />
          <p class="muted">The average of every training image.</p>
        </Card>
      </div>
      <Gallery dataset={d} />
    </>
  );
}

/** A text dataset: an excerpt of its text and its most frequent symbols. */
function TextDataset({ dataset: d }: { dataset: Dataset }) {
  return (
    <div class="dataset-overview text-overview">
      <Excerpt dataset={d} />
      <Card title="Most frequent symbols">
        <Symbols dataset={d} />
      </Card>
    </div>
  );
}

/** About a page of text: characters, or fewer words. */
const EXCERPT_TOKENS = { char: 1500, word: 400 };

function Excerpt({ dataset: d }: { dataset: Dataset }) {
  const [split, setSplit] = useState<"train" | "validation">("train");
  const [offset, setOffset] = useState(0);
  const length = EXCERPT_TOKENS[d.text?.level ?? "char"];
  const total = (split === "train" ? d.text?.train_tokens : d.text?.validation_tokens) ?? 0;
  const { data, error } = useData(
    () =>
      get<TextExcerpt>(`/datasets/${d.id}/text?split=${split}&offset=${offset}&length=${length}`),
    [d.id, split, offset],
  );
  const another = () => setOffset(Math.floor(Math.random() * Math.max(0, total - length)));
  const n = (x: number) => x.toLocaleString("en");
  return (
    <Card
      title="Text"
      actions={
        <>
          <div class="tabs">
            {(["train", "validation"] as const).map((s) => (
              <button class={s === split ? "on" : ""} onClick={() => (setSplit(s), setOffset(0))}>
                {s}
              </button>
            ))}
          </div>
          <button onClick={another} disabled={total <= length}>
            Another excerpt
          </button>
        </>
      }
    >
      <ErrorBox error={error} />
      {data ? (
        <>
          <p class="muted excerpt-about">
            {data.length
              ? `Tokens ${n(data.offset)} to ${n(data.offset + data.length)} of the ${n(data.tokens)} in the ${data.split} text.`
              : `The ${data.split} text is empty.`}
          </p>
          <pre class="excerpt">{visibleText(data.text)}</pre>
        </>
      ) : (
        !error && <Loading />
      )}
    </Card>
  );
}

function Symbols({ dataset: d }: { dataset: Dataset }) {
  const t = d.text;
  if (!t) return <p class="muted">–</p>;
  const all = t.train_tokens + t.validation_tokens;
  const top = t.symbols[0]?.count || 1;
  return (
    <>
      <p class="muted">
        {t.symbols.length < t.vocabulary_size
          ? `The ${t.symbols.length} most frequent of ${t.vocabulary_size.toLocaleString("en")}`
          : `All ${t.vocabulary_size} symbols`}
        , with their share of all the text.
      </p>
      <ol class="symbols">
        {t.symbols.map((s) => (
          <li>
            <span class="symbol" title={`${s.count.toLocaleString("en")} times`}>
              {symbolLabel(s.symbol)}
            </span>
            <span class="symbol-bar">
              <i style={{ width: `${(100 * s.count) / top}%` }} />
            </span>
            <span class="symbol-share">{((100 * s.count) / Math.max(1, all)).toFixed(1)}%</span>
          </li>
        ))}
      </ol>
    </>
  );
}

const PER_CLASS = 12;

function Gallery({ dataset: d }: { dataset: Dataset }) {
  const names = splitNames(d.examples);
  const [split, setSplit] = useState(names[0] ?? "train");
  const [seed, setSeed] = useState(1);
  return (
    <Card
      title="Examples of each class"
      actions={
        <>
          <div class="tabs">
            {names.map((s) => (
              <button class={s === split ? "on" : ""} onClick={() => setSplit(s)}>
                {s}
              </button>
            ))}
          </div>
          <button onClick={() => setSeed(seed + 1)}>Other examples</button>
        </>
      }
    >
      <div class="gallery">
        {(d.classes ?? []).map((c) => (
          <div class="gallery-row" key={c.label}>
            <span class="class-name">{c.name}</span>
            <PixelImage
              src={url(`/datasets/${d.id}/examples.png`, {
                class: c.label,
                count: PER_CLASS,
                columns: PER_CLASS,
                split,
                seed,
              })}
              alt={`Examples of ${c.name}`}
              fit={720}
              maxScale={3}
            />
          </div>
        ))}
      </div>
    </Card>
  );
}

function DeleteButton({ dataset: d }: { dataset: Dataset }) {
  const [asking, setAsking] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const remove = () =>
    del(`/datasets/${d.id}`).then(
      () => navigate("#/datasets"),
      (e) => (setError(asApiError(e)), setAsking(false)),
    );
  if (error?.status === 409)
    return (
      <div class="error" role="alert">
        Cannot delete it: {error.message}.{" "}
        <button class="link" onClick={() => setError(null)}>
          OK
        </button>
      </div>
    );
  if (error) return <ErrorBox error={error} onClose={() => setError(null)} />;
  if (!asking)
    return (
      <button class="danger" onClick={() => setAsking(true)}>
        Delete
      </button>
    );
  return (
    <span class="confirm">
      Delete “{d.name}” and its files?{" "}
      <button class="danger" onClick={remove}>
        Yes, delete
      </button>
      <button onClick={() => setAsking(false)}>Cancel</button>
    </span>
  );
}

function sourceName(source: Dataset["source"]): string {
  if (typeof source === "number" || /^\d+$/.test(source)) return `upload #${source}`;
  return source === "fashion-mnist" ? "Fashion-MNIST" : source === "mnist" ? "MNIST" : source;
}

function optionsText({ source, kind, options: o }: Dataset): string {
  if (source === "fashion-mnist" || source === "mnist") return "as published";
  if (kind === "text") return `last ${o.validation ?? 5}% held out`;
  const parts = [
    o.size && `size ${o.size}`,
    o.channels && `${o.channels} channel${o.channels > 1 ? "s" : ""}`,
    o.resize && o.size && o.resize,
    o.validation && `${o.validation}% held out`,
  ].filter(Boolean);
  return parts.length ? parts.join(", ") : "as stored";
}
