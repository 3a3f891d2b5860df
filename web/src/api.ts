// The `myelin serve` REST API (docs/openapi.yaml): typed calls, errors as ApiError, and event
// streams that reconnect and fill the gap. The UI talks to the server through this file only.

export class ApiError extends Error {
  constructor(
    public status: number,
    message: string,
  ) {
    super(message);
  }
}

/** Called when a request answers 401, so the app can show the login page. */
let onUnauthorized: () => void = () => {};
export function setUnauthorizedHandler(handler: () => void) {
  onUnauthorized = handler;
}

async function errorOf(response: Response): Promise<ApiError> {
  let message = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    if (body && typeof body.error === "string") message = body.error;
  } catch {
    // Not JSON (a proxy's page, a dropped connection): keep the status line.
  }
  if (response.status === 401) onUnauthorized();
  return new ApiError(response.status, message);
}

async function send(method: string, path: string, body?: BodyInit, json = false) {
  let response: Response;
  try {
    response = await fetch(`/api/v1${path}`, {
      method,
      body,
      credentials: "same-origin",
      headers: json ? { "Content-Type": "application/json" } : undefined,
    });
  } catch {
    throw new ApiError(0, "The server does not answer. Is `myelin serve` still running?");
  }
  if (!response.ok) throw await errorOf(response);
  return response;
}

export async function get<T>(path: string): Promise<T> {
  return (await send("GET", path)).json();
}

export async function post<T>(path: string, body: unknown = {}): Promise<T> {
  return (await send("POST", path, JSON.stringify(body), true)).json();
}

export async function del<T>(path: string): Promise<T> {
  return (await send("DELETE", path)).json();
}

export async function getText(path: string): Promise<string> {
  return (await send("GET", path)).text();
}

/** POST a multipart form (uploads, classify, activations). */
export async function postForm<T>(path: string, form: FormData): Promise<T> {
  return (await send("POST", path, form)).json();
}

/** GET an image route as an object URL; unlike <img src>, a refusal comes as an ApiError. */
export async function getImage(path: string): Promise<string> {
  return URL.createObjectURL(await (await send("GET", path)).blob());
}

/** POST JSON and take the answer as an image (dataset previews); returns an object URL. */
export async function postForImage(path: string, body: unknown): Promise<string> {
  const blob = await (await send("POST", path, JSON.stringify(body), true)).blob();
  return URL.createObjectURL(blob);
}

export async function postFormForImage(path: string, form: FormData): Promise<string> {
  const blob = await (await send("POST", path, form)).blob();
  return URL.createObjectURL(blob);
}

/**
 * POST a multipart form through XMLHttpRequest, which (unlike fetch) reports upload progress:
 * `onProgress` gets the fraction sent, 0..1. Errors are ApiErrors, as from the other calls.
 */
export function postFormWithProgress<T>(
  path: string,
  form: FormData,
  onProgress: (fraction: number) => void,
): Promise<T> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", `/api/v1${path}`);
    xhr.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded / e.total);
    xhr.onerror = () =>
      reject(new ApiError(0, "The server does not answer. Is `myelin serve` still running?"));
    xhr.onload = () => {
      const response = new Response(xhr.responseText, {
        status: xhr.status,
        statusText: xhr.statusText,
      });
      if (xhr.status >= 200 && xhr.status < 300) response.json().then(resolve, reject);
      else errorOf(response).then(reject);
    };
    xhr.send(form);
  });
}

/** An image route as a URL for <img src> (the session cookie authenticates it). */
export function url(path: string, query: Record<string, string | number | undefined> = {}) {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined) params.set(k, String(v));
  const q = params.toString();
  return `/api/v1${path}${q ? `?${q}` : ""}`;
}

export type StreamHandlers = Record<string, (data: any, seq: number) => void>;

export interface Stream {
  close(): void;
}

/**
 * Follows a Server-Sent Events route from event `after`. The browser reconnects by itself
 * (sending Last-Event-ID); when it gives up, this opens a new stream after the last event
 * seen, so no event is lost or repeated. `onStatus` tells whether the stream is live.
 */
export function follow(
  path: string,
  after: number,
  handlers: StreamHandlers,
  onStatus: (live: boolean) => void = () => {},
): Stream {
  let last = after;
  let source: EventSource | null = null;
  let closed = false;
  let retry: ReturnType<typeof setTimeout> | undefined;

  const open = () => {
    const sep = path.includes("?") ? "&" : "?";
    source = new EventSource(`/api/v1${path}${last > 0 ? `${sep}after=${last}` : ""}`);
    source.onopen = () => onStatus(true);
    for (const kind of Object.keys(handlers)) {
      source.addEventListener(kind, (e) => {
        const message = e as MessageEvent;
        const seq = Number(message.lastEventId);
        if (seq && seq <= last) return;
        if (seq) last = seq;
        handlers[kind](JSON.parse(message.data), seq);
      });
    }
    source.onerror = () => {
      onStatus(false);
      if (source && source.readyState === EventSource.CLOSED && !closed) {
        source = null;
        retry = setTimeout(open, 1000);
      }
    };
  };
  open();
  return {
    close() {
      closed = true;
      clearTimeout(retry);
      source?.close();
    },
  };
}

// ---- The API's objects (docs/openapi.yaml components/schemas) ----

export interface Identity {
  user: number;
  name: string;
  admin: boolean;
  users: boolean;
}

export interface Layer {
  name: string;
  type: string;
  output: number[];
  params: number;
  flops: number;
  inputs: string[];
}

export interface Network {
  name: string;
  description?: string;
  input: number[];
  /** "tokens": a text network (symbol ids in, the next symbol scored at every step). */
  input_type?: "image" | "tokens";
  classes: number;
  params: number;
  flops: number;
  batch?: number;
  epochs?: number;
  solver?: string;
  lr?: number;
  lr_policy?: string;
  /** The file's whole training recipe, under the trainer's names (gamma, step_size, ...). */
  recipe?: Record<string, string | number | boolean | number[]>;
  layers: Layer[];
}

export interface MemoryEstimate {
  parameters: number;
  optimizer_state: number;
  activations: number;
  workspace: number;
  gradients: number;
  train_arena: number;
  eval_arena: number;
  total: number;
  exact: boolean;
  batch?: number;
  device?: string;
}

export interface ValidationError {
  message: string;
  line: number | null;
  column: number | null;
}

export type Validation =
  | { valid: true; network: Network; memory: MemoryEstimate }
  | { valid: false; errors: ValidationError[] };

export interface DatasetClass {
  label: number;
  name: string;
  [split: string]: number | string;
}

/** A text dataset's facts, once built. */
export interface TextFacts {
  level: "char" | "word";
  files: number;
  vocabulary_size: number;
  train_tokens: number;
  validation_tokens: number;
  /** The most frequent symbols, most frequent first. */
  symbols: { symbol: string; count: number }[];
}

/** GET /datasets/{id}/text: tokens from `offset` on, as text. */
export interface TextExcerpt {
  split: "train" | "validation";
  offset: number;
  length: number;
  tokens: number;
  text: string;
}

export interface Dataset {
  id: number;
  name: string;
  owner: number;
  owner_name: string | null;
  source: string | number;
  kind?: "image" | "text";
  options: {
    text?: "char" | "word";
    size?: string | null;
    channels?: number;
    resize?: string;
    validation?: number;
  };
  state: "building" | "ready" | "failed";
  progress: number;
  error: string | null;
  shape: number[] | null;
  num_classes?: number;
  classes?: DatasetClass[];
  examples?: Record<string, number>;
  text?: TextFacts | null;
  bytes?: number;
  build_seconds?: number | null;
  created: number;
  updated: number;
}

export type JobState = "queued" | "running" | "done" | "failed" | "aborted" | "interrupted";

export interface JobMetrics {
  iter?: number;
  max_iter?: number;
  progress?: number;
  epoch?: number;
  lr?: number;
  images_per_second?: number;
  tokens_per_second?: number;
  eta_seconds?: number;
  train_loss?: number;
  train_accuracy?: number;
  test_loss?: number;
  test_accuracy?: number;
  test_top5?: number;
  best_accuracy?: number;
  best_iter?: number;
  bits_per_symbol?: number;
  best_bits_per_symbol?: number;
  finished?: boolean;
  seconds?: number;
  iterations?: number;
  error?: string;
}

export interface Job {
  id: number;
  name: string;
  owner: number;
  spec?: { train?: Record<string, string | number>; [key: string]: unknown };
  state: JobState;
  dataset: number | null;
  sweep: number | null;
  weights_from: number | null;
  run_dir: string;
  device: string;
  pool: string | null;
  restarts: number;
  error: string | null;
  waiting_for: string | null;
  process: { rss_bytes: number; cpu_seconds: number } | null;
  metrics: JobMetrics;
  created: number;
  started: number | null;
  finished: number | null;
}

/** A line of the trainer's metrics.jsonl, as the metrics events carry it. */
export interface MetricsEvent {
  event:
    "start" | "resume" | "train" | "test" | "sample" | "snapshot" | "stopped" | "end" | "error";
  iter?: number;
  epoch?: number;
  loss?: number;
  top1?: number;
  top5?: number;
  lr?: number;
  images_per_second?: number;
  /** Text networks: train events. */
  tokens_per_second?: number;
  /** Text networks: test events (the validation loss in bits per symbol). */
  bits_per_symbol?: number;
  /** Sample events (text networks, after each test pass): the symbols drawn. */
  text?: string;
  prime?: string;
  temperature?: number;
  [key: string]: unknown;
}

export interface Pool {
  name: string;
  capacity: number | null; // null: Slurm's pool, which the cluster limits
  running: number[];
  queued: number[];
}

export interface Gpu {
  index: number;
  name: string;
  memory_total: number;
  memory_used: number;
  utilization: number;
}

export interface SystemSnapshot {
  cpu: { cores: number; load: number; memory_total: number; memory_available: number };
  gpus: Gpu[];
  pools: Pool[];
}

export interface Evaluation {
  dataset: number;
  split: "test" | "train";
  examples: number;
  loss: number;
  top1: number;
  top5: number;
  class_names: string[];
  per_class_accuracy: (number | null)[];
  confusion: number[][];
  seconds: number;
  images_per_second: number;
  worst: {
    index: number;
    label: number;
    predicted: number;
    probability: number;
    true_probability: number;
    label_name: string;
    predicted_name: string;
  }[];
}

export interface Sweep {
  id: number;
  name: string;
  owner: number;
  spec: unknown;
  created: number;
  jobs: Job[];
  best: { job: number; accuracy: number } | null;
}
