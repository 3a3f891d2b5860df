// The form that makes a dataset: from Fashion-MNIST or MNIST, a folder or list file on the
// server, or an uploaded archive; with a preview of the images as they would be stored. Or a
// text dataset, cut into characters or words: from a text file or folder on the server, or an
// uploaded text file or archive of them.
import { useEffect, useState } from "preact/hooks";
import { ApiError, post, postForImage } from "../api";
import { navigate } from "../router";
import { ArchiveUpload, type Upload } from "./ArchiveUpload";
import { PixelImage } from "./PixelImage";
import { asApiError } from "./ui";

const SOURCES = {
  "fashion-mnist": "Fashion-MNIST",
  mnist: "MNIST",
  path: "Folder on the server",
  upload: "Upload an archive",
};
type SourceKind = keyof typeof SOURCES;
const TEXT_SOURCES: Partial<Record<SourceKind, string>> = {
  path: "File or folder on the server",
  upload: "Upload a text file",
};

type Content = "images" | "text";
const CONTENTS: Record<Content, string> = { images: "Images", text: "Text" };
type Level = "char" | "word";

interface Options {
  size: string;
  channels: string;
  resize: string;
  validation: string;
  seed: string;
}
const NO_OPTIONS: Options = { size: "", channels: "", resize: "", validation: "", seed: "" };

export function DatasetForm() {
  const [content, setContent] = useState<Content>("images");
  const [level, setLevel] = useState<Level>("char");
  const [kind, setKind] = useState<SourceKind>("fashion-mnist");
  const [name, setName] = useState("");
  const [path, setPath] = useState("");
  const [upload, setUpload] = useState<Upload | null>(null);
  const [options, setOptions] = useState<Options>(NO_OPTIONS);
  const [preview, setPreview] = useState<string | null>(null);
  const [busy, setBusy] = useState<"preview" | "create" | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  useEffect(() => () => void (preview && URL.revokeObjectURL(preview)), [preview]);

  const text = content === "text";
  const source = kind === "path" ? path.trim() : kind === "upload" ? upload?.id : kind;
  const builtin = kind === "fashion-mnist" || kind === "mnist";
  const suggested = suggestedName(kind, path, upload, text);
  const request = () => ({
    name: name.trim() || suggested,
    source,
    ...(text ? textFields(level, options) : builtin ? {} : optionFields(options)),
  });
  const run = (what: "preview" | "create", call: () => Promise<void>) => {
    setBusy(what);
    setError(null);
    call()
      .catch((e) => setError(asApiError(e)))
      .finally(() => setBusy(null));
  };
  const showPreview = () =>
    run("preview", async () =>
      setPreview(await postForImage("/datasets/preview", { ...request(), count: 16 })),
    );
  const create = () =>
    run("create", async () => {
      const { id } = await post<{ id: number }>("/datasets", request());
      navigate(`#/datasets/${id}`);
    });
  const pick = (next: SourceKind) => {
    setKind(next);
    setPreview(null);
    setError(null);
  };
  const pickContent = (next: Content) => {
    setContent(next);
    setUpload(null);
    setOptions(NO_OPTIONS);
    pick(next === "text" ? "path" : "fashion-mnist");
  };
  const sources = text ? TEXT_SOURCES : SOURCES;

  return (
    <form class="dataset-form" onSubmit={(e) => (e.preventDefault(), create())}>
      <div class="tabs content-tabs" role="radiogroup" aria-label="Content">
        {(Object.keys(CONTENTS) as Content[]).map((c) => (
          <button
            type="button"
            role="radio"
            name={`content-${c}`}
            aria-checked={c === content}
            class={c === content ? "on" : ""}
            onClick={() => pickContent(c)}
          >
            {CONTENTS[c]}
          </button>
        ))}
      </div>
      <div class="tabs source-tabs" role="radiogroup" aria-label="Source">
        {(Object.keys(sources) as SourceKind[]).map((k) => (
          <button
            type="button"
            role="radio"
            aria-checked={k === kind}
            class={k === kind ? "on" : ""}
            onClick={() => pick(k)}
          >
            {sources[k]}
          </button>
        ))}
      </div>
      <SourceDetails
        kind={kind}
        text={text}
        path={path}
        setPath={setPath}
        upload={upload}
        setUpload={setUpload}
      />
      <div class="form-grid">
        <label>
          Name
          <input
            name="name"
            value={name}
            placeholder={suggested}
            maxLength={200}
            onInput={(e) => setName(e.currentTarget.value)}
          />
        </label>
        {text ? (
          <TextOptionFields
            level={level}
            onLevel={setLevel}
            options={options}
            onChange={setOptions}
          />
        ) : (
          !builtin && <OptionFields options={options} onChange={setOptions} />
        )}
      </div>
      {builtin && (
        <p class="muted">
          {SOURCES[kind]} comes as 28×28 gray images, 60,000 for training and 10,000 for testing.
        </p>
      )}
      {text && (
        <p class="muted">
          {level === "char"
            ? "One symbol per character: a character-level language model (char-lstm) learns to write it letter by letter."
            : "Words, spaces and punctuation marks are the symbols: a larger vocabulary, fewer tokens."}{" "}
          The last {options.validation || "5"}% of the text is held out for validation.
        </p>
      )}
      <div class="row">
        {!text && (
          <button
            type="button"
            disabled={source === "" || source === undefined || !!busy}
            onClick={showPreview}
          >
            {busy === "preview" ? "Previewing…" : "Preview"}
          </button>
        )}
        <button
          type="submit"
          class="primary"
          disabled={source === "" || source === undefined || !!busy}
        >
          {busy === "create" ? "Creating…" : "Create dataset"}
        </button>
      </div>
      {error && <SourceError error={error} />}
      {preview && (
        <figure class="preview">
          <PixelImage src={preview} alt="Preview of the stored images" fit={360} />
          <figcaption class="muted">16 images as they would be stored.</figcaption>
        </figure>
      )}
    </form>
  );
}

function SourceDetails({
  kind,
  text,
  path,
  setPath,
  upload,
  setUpload,
}: {
  kind: SourceKind;
  text: boolean;
  path: string;
  setPath: (path: string) => void;
  upload: Upload | null;
  setUpload: (upload: Upload | null) => void;
}) {
  if (kind === "upload") return <ArchiveUpload upload={upload} onUpload={setUpload} text={text} />;
  if (kind !== "path") return null;
  return (
    <label>
      Absolute path on the server
      <input
        name="path"
        value={path}
        placeholder={
          text
            ? "/srv/books/moby-dick.txt, or a folder of UTF-8 text files"
            : "/srv/photos (one folder per class) or a list file of “path label” lines"
        }
        onInput={(e) => setPath(e.currentTarget.value)}
      />
    </label>
  );
}

function TextOptionFields({
  level,
  onLevel,
  options,
  onChange,
}: {
  level: Level;
  onLevel: (level: Level) => void;
  options: Options;
  onChange: (options: Options) => void;
}) {
  return (
    <>
      <label>
        Symbols
        <select
          name="level"
          value={level}
          onChange={(e) => onLevel(e.currentTarget.value as Level)}
        >
          <option value="char">characters</option>
          <option value="word">words</option>
        </select>
      </label>
      <label>
        Validation %
        <input
          name="validation"
          type="number"
          min={0.1}
          max={50}
          step="any"
          placeholder="5"
          value={options.validation}
          onInput={(e) => onChange({ ...options, validation: e.currentTarget.value })}
        />
      </label>
    </>
  );
}

function OptionFields({
  options,
  onChange,
}: {
  options: Options;
  onChange: (options: Options) => void;
}) {
  const field = (key: keyof Options) => ({
    name: key,
    value: options[key],
    onInput: (e: Event) => onChange({ ...options, [key]: (e.target as HTMLInputElement).value }),
  });
  return (
    <>
      <label>
        Size (H×W)
        <input {...field("size")} placeholder="as stored, e.g. 32x32" pattern="\d+(x\d+)?" />
      </label>
      <label>
        Channels
        <select {...field("channels")}>
          <option value="">as stored</option>
          <option value="1">1 (gray)</option>
          <option value="3">3 (color)</option>
        </select>
      </label>
      <label>
        Resize
        <select {...field("resize")}>
          <option value="">default</option>
          <option value="squash">squash (stretch to fit)</option>
          <option value="crop">crop (center)</option>
          <option value="fill">fill (pad)</option>
        </select>
      </label>
      <label>
        Validation %
        <input
          {...field("validation")}
          type="number"
          min={0}
          max={90}
          step="any"
          placeholder="default"
        />
      </label>
      <label>
        Seed
        <input {...field("seed")} type="number" min={0} step={1} placeholder="default" />
      </label>
    </>
  );
}

/** The options the user set, as the API's fields (an empty one is left to the server). */
function optionFields(o: Options) {
  const fields: Record<string, string | number> = {};
  if (o.size.trim()) fields.size = o.size.trim();
  if (o.channels) fields.channels = Number(o.channels);
  if (o.resize) fields.resize = o.resize;
  if (o.validation !== "") fields.validation = Number(o.validation);
  if (o.seed !== "") fields.seed = Number(o.seed);
  return fields;
}

/** A text dataset's fields: its level and, when set, the percent held out. */
function textFields(level: Level, o: Options) {
  const fields: Record<string, string | number> = { text: level };
  if (o.validation !== "") fields.validation = Number(o.validation);
  return fields;
}

function suggestedName(
  kind: SourceKind,
  path: string,
  upload: Upload | null,
  text: boolean,
): string {
  const fallback = text ? "text" : "images";
  if (kind === "path")
    return (
      path
        .replace(/\/+$/, "")
        .split("/")
        .pop()
        ?.replace(/\.(txt|text|md)$/i, "") || fallback
    );
  if (kind === "upload")
    return upload?.name.replace(/\.(zip|tar|tar\.gz|tgz|txt|text|md)$/i, "") || "upload";
  return SOURCES[kind];
}

/** The server's reason, in its words (a refusal of a path names --allow-dir itself). */
function SourceError({ error }: { error: ApiError }) {
  return (
    <div class="error" role="alert">
      {error.message}{" "}
      {error.status === 404 && (
        <span class="muted">Check the path, or upload the archive again.</span>
      )}
    </div>
  );
}
