// A job's training curves: its metrics events folded into chart series, loaded at once from
// /jobs/ID/metrics and then followed live from /jobs/ID/events (no gap, no repeat). A text
// network's trace also keeps its bits per symbol and the text it sampled after each test pass.
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { follow, get, type ApiError, type MetricsEvent, type StreamHandlers } from "./api";
import { Feed, Series } from "./components/series";
import { asApiError } from "./components/ui";

export type Metric = "trainLoss" | "testLoss" | "trainTop1" | "testTop1" | "lr" | "testBits";

export const METRICS: { key: Metric; label: string; percent?: boolean; sparse?: boolean }[] = [
  { key: "testTop1", label: "test accuracy", percent: true, sparse: true },
  { key: "trainTop1", label: "train accuracy", percent: true },
  { key: "trainLoss", label: "train loss" },
  { key: "testLoss", label: "test loss", sparse: true },
  { key: "lr", label: "learning rate" },
];

const num = (v: unknown) => (typeof v === "number" ? v : NaN);

/** Text a text network drew after a test pass (a `sample` event). */
export interface Sample {
  iter: number;
  epoch: number;
  prime: string;
  temperature: number;
  text: string;
}

export class JobTrace extends Feed {
  readonly series: Record<Metric, Series> = {
    trainLoss: new Series(),
    testLoss: new Series(),
    trainTop1: new Series(),
    testTop1: new Series(),
    lr: new Series(),
    testBits: new Series(),
  };
  /** The test pass with the highest accuracy so far. */
  best: { x: number; top1: number; iter: number } | null = null;
  /** Text networks: the test pass with the fewest bits per symbol so far. */
  bestBits: { x: number; bits: number; iter: number } | null = null;
  /** Text networks: every sample, in order of iteration (a repeat after a resume replaces). */
  readonly samples: Sample[] = [];

  /** Folds one metrics.jsonl line in; x is the epoch (the iteration when there is none). */
  ingest(e: MetricsEvent) {
    const x = num(e.epoch ?? e.iter);
    const s = this.series;
    if (e.event === "train") {
      s.trainLoss.push(x, num(e.loss));
      s.trainTop1.push(x, num(e.top1));
      s.lr.push(x, num(e.lr));
    } else if (e.event === "test" && s.testTop1.push(x, num(e.top1))) {
      s.testLoss.push(x, num(e.loss));
      const top1 = num(e.top1);
      if (!this.best || top1 > this.best.top1) this.best = { x, top1, iter: num(e.iter) };
      const bits = num(e.bits_per_symbol);
      if (Number.isFinite(bits)) {
        s.testBits.push(x, bits);
        if (!this.bestBits || bits < this.bestBits.bits)
          this.bestBits = { x, bits, iter: num(e.iter) };
      }
    } else if (e.event === "sample" && typeof e.text === "string") {
      this.addSample({
        iter: num(e.iter),
        epoch: num(e.epoch),
        prime: typeof e.prime === "string" ? e.prime : "",
        temperature: num(e.temperature),
        text: e.text,
      });
    }
    this.notify();
  }

  private addSample(sample: Sample) {
    const at = this.samples.findIndex((s) => s.iter >= sample.iter);
    if (at < 0) this.samples.push(sample);
    else if (this.samples[at].iter === sample.iter) this.samples[at] = sample;
    else this.samples.splice(at, 0, sample);
  }

  bestX = () => this.best?.x;
  bestBitsX = () => this.bestBits?.x;
}

interface FollowOptions {
  /** Handlers of the stream's other kinds (state, log, restart), and of metrics after the trace. */
  handlers?: StreamHandlers;
  /** Follow from this event number instead of loading the history first. */
  after?: number;
  onSeq?: (seq: number) => void;
  onLive?: (live: boolean) => void;
  onError?: (error: ApiError) => void;
}

/** Loads job `id`'s metrics history into `trace`, then follows its events; returns a stop. */
export function followJob(id: number, trace: JobTrace, options: FollowOptions = {}): () => void {
  const handlers = options.handlers ?? {};
  let stream: { close(): void } | null = null;
  let stopped = false;
  const start = (after: number) => {
    const relay: StreamHandlers = {};
    for (const kind of new Set(["metrics", ...Object.keys(handlers)]))
      relay[kind] = (data, seq) => {
        if (seq) options.onSeq?.(seq);
        if (kind === "metrics") trace.ingest(data);
        handlers[kind]?.(data, seq);
      };
    stream = follow(`/jobs/${id}/events`, after, relay, options.onLive);
  };
  if (options.after != null) start(options.after);
  else
    get<{ events: MetricsEvent[]; last: number }>(`/jobs/${id}/metrics`).then(
      ({ events, last }) => {
        if (stopped) return;
        events.forEach((e) => trace.ingest(e));
        options.onSeq?.(last);
        start(last);
      },
      (e) => options.onError?.(asApiError(e)),
    );
  return () => {
    stopped = true;
    stream?.close();
  };
}

/** Renders the caller again when `feed` changes, at most once per animation frame. */
export function useFeed(feed: Feed) {
  const [, setVersion] = useState(0);
  useEffect(() => {
    let frame = 0;
    const stop = feed.subscribe(() => {
      frame ||= requestAnimationFrame(() => ((frame = 0), setVersion((v) => v + 1)));
    });
    return () => (stop(), cancelAnimationFrame(frame));
  }, [feed]);
}

/**
 * The trace of job `id`, live. `handlers` take the stream's other kinds (state, log, restart);
 * a new `restartKey` reopens the stream where it was (after a resume: no wait for a retry).
 */
export function useJobTrace(id: number, handlers: StreamHandlers = {}, restartKey = 0) {
  const trace = useMemo(() => new JobTrace(), [id]);
  const [error, setError] = useState<ApiError | null>(null);
  const [live, setLive] = useState(false);
  const latest = useRef(handlers);
  latest.current = handlers;
  const seen = useRef({ id, seq: -1 });

  useEffect(() => {
    setError(null);
    const relay: StreamHandlers = {};
    for (const kind of Object.keys(latest.current))
      relay[kind] = (data, seq) => latest.current[kind]?.(data, seq);
    const resumeAt = seen.current.id === id && seen.current.seq >= 0 ? seen.current.seq : undefined;
    return followJob(id, trace, {
      handlers: relay,
      after: resumeAt,
      onSeq: (seq) => (seen.current = { id, seq }),
      onLive: setLive,
      onError: setError,
    });
  }, [id, trace, restartKey]);

  return { trace, error, live };
}

/** Live traces of several jobs; a job staying in `ids` keeps its trace and stream. */
export function useJobTraces(ids: number[]) {
  const traces = useRef(new Map<number, JobTrace>()).current;
  const streams = useRef(new Map<number, () => void>()).current;
  const [errors, setErrors] = useState(new Map<number, ApiError>());
  const traceOf = (id: number) => {
    if (!traces.has(id)) traces.set(id, new JobTrace());
    return traces.get(id)!;
  };

  useEffect(() => {
    for (const [id, stop] of streams)
      if (!ids.includes(id)) (stop(), streams.delete(id), traces.delete(id));
    for (const id of ids) {
      if (streams.has(id)) continue;
      const onError = (e: ApiError) => setErrors((old) => new Map(old).set(id, e));
      streams.set(id, followJob(id, traceOf(id), { onError }));
    }
  }, [ids.join(",")]);
  useEffect(() => () => streams.forEach((stop) => stop()), []);

  return { traces: ids.map(traceOf), errors };
}
