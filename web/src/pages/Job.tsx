// One job, live: its figures, curves, log and network, and what can be done with it; a text
// network's samples as they come.
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import {
  ApiError,
  del,
  get,
  post,
  type Dataset,
  type Job,
  type MetricsEvent,
  type Network,
} from "../api";
import { navigate } from "../router";
import { useJobTrace } from "../trace";
import { JobCharts } from "../components/JobCharts";
import { JobStats } from "../components/JobStats";
import { LogTail } from "../components/LogTail";
import { LogBuffer } from "../components/logBuffer";
import { foldMetrics } from "../components/jobSummary";
import { NetworkGraph } from "../components/NetworkGraph";
import { SamplesCard } from "../components/SamplesCard";
import { asApiError, Card, ErrorBox, Loading, useData } from "../components/ui";
import "./Job.css";

const ENDED = ["done", "failed", "aborted", "interrupted"];
const RESUMABLE = ["aborted", "interrupted", "failed"];
const PROCESS_POLL_MS = 5000;

/** The job, refetched on state changes and every few seconds while it runs (process use). */
function useJob(id: number) {
  const { data: job, error, reload, setData } = useData(() => get<Job>(`/jobs/${id}`), [id]);
  const active = job?.state === "running" || job?.state === "queued";
  useEffect(() => {
    if (!active) return;
    const timer = setInterval(reload, PROCESS_POLL_MS);
    return () => clearInterval(timer);
  }, [active, reload]);
  // After a route change the previous job stays in `data` until the new one comes.
  return { job: job?.id === id ? job : undefined, error, reload, setJob: setData };
}

/** Metrics events folded into the shown summary, at most once per animation frame. */
function useSummaryUpdates(setJob: (update: (job: Job | undefined) => Job | undefined) => void) {
  const pending = useRef<MetricsEvent[]>([]);
  const frame = useRef(0);
  useEffect(() => () => cancelAnimationFrame(frame.current), []);
  return (e: MetricsEvent) => {
    pending.current.push(e);
    frame.current ||= requestAnimationFrame(() => {
      frame.current = 0;
      const events = pending.current.splice(0);
      setJob((job) => job && { ...job, metrics: events.reduce(foldMetrics, job.metrics) });
    });
  };
}

/**
 * What a text job's symbols are ("character", "word"), from its dataset; undefined for an
 * image job (and until the dataset is known).
 */
function useTextUnit(dataset: number | null | undefined): string | undefined {
  const { data } = useData(
    () => (dataset == null ? Promise.resolve(null) : get<Dataset>(`/datasets/${dataset}`)),
    [dataset],
  );
  if (!data || data.id !== dataset || data.kind !== "text") return undefined;
  return (data.text?.level ?? data.options.text) === "word" ? "word" : "character";
}

function Actions({
  job,
  text,
  onDone,
}: {
  job: Job;
  text: boolean;
  onDone: (error: ApiError | null) => void;
}) {
  const act = (request: () => Promise<unknown>) => () =>
    request().then(
      () => onDone(null),
      (e) => onDone(asApiError(e)),
    );
  const clone = () =>
    post<Job>(`/jobs/${job.id}/clone`).then((copy) => navigate(`/jobs/${copy.id}`));
  const remove = async () => {
    if (!confirm(`Delete job #${job.id} "${job.name}" and its run directory?`)) return;
    await del(`/jobs/${job.id}`);
    navigate("/");
  };
  return (
    <div class="actions job-actions">
      {(job.state === "running" || job.state === "queued") && (
        <button class="danger" onClick={act(() => post(`/jobs/${job.id}/abort`))}>
          Abort
        </button>
      )}
      {RESUMABLE.includes(job.state) && (
        <button class="primary" onClick={act(() => post(`/jobs/${job.id}/resume`))}>
          Resume
        </button>
      )}
      <button onClick={act(clone)}>Clone</button>
      {ENDED.includes(job.state) && (
        <button class="danger" onClick={act(remove)}>
          Delete
        </button>
      )}
      {!text && (
        <a class="button-link" href={`#/jobs/${job.id}/model`}>
          Model
        </a>
      )}
      <a class="button-link" href={`#/compare?jobs=${job.id}`}>
        Compare with…
      </a>
    </div>
  );
}

function NetworkCard({ id }: { id: number }) {
  const { data, error } = useData(
    () => get<{ text: string; network: Network }>(`/jobs/${id}/network`),
    [id],
  );
  return (
    <Card title="Network">
      <ErrorBox error={error} />
      {data ? <NetworkGraph network={data.network} /> : !error && <Loading />}
    </Card>
  );
}

function waitingText(job: Job): string {
  if (job.state === "queued") return job.waiting_for ? `Queued: ${job.waiting_for}` : "Queued";
  if (job.state === "running") return "Waiting for the first points…";
  return "No points were logged";
}

function waitingSample(job: Job): string {
  if (job.state === "queued" || job.state === "running")
    return "The network writes a sample after each test pass; the first comes with the first one.";
  return "No sample was written.";
}

export function JobPage({ id }: { id: number }) {
  const { job, error, reload, setJob } = useJob(id);
  const [actionError, setActionError] = useState<ApiError | null>(null);
  const [streamKey, setStreamKey] = useState(0);
  const log = useMemo(() => new LogBuffer(), [id]);
  const summary = useSummaryUpdates(setJob);
  const stream = useJobTrace(
    id,
    {
      metrics: summary,
      state: reload,
      restart: reload,
      log: (d: { line: string }) => log.add(d.line),
    },
    streamKey,
  );
  const unit = useTextUnit(job?.dataset);

  if (error) return <ErrorBox error={error} />;
  if (!job) return <Loading />;
  const afterAction = (e: ApiError | null) => {
    setActionError(e);
    reload();
    setStreamKey((k) => k + 1);
  };
  return (
    <div class="job-page">
      <header class="job-title">
        <p class="muted crumbs">
          <a href="#/">Jobs</a> / #{job.id}
        </p>
        <div class="row">
          <h1>{job.name}</h1>
          {(job.state === "running" || job.state === "queued") && (
            <span class={`live ${stream.live ? "on" : ""}`}>
              {stream.live ? "live" : "reconnecting"}
            </span>
          )}
          <span class="spacer" />
          <Actions job={job} text={!!unit} onDone={afterAction} />
        </div>
      </header>
      <ErrorBox error={actionError} onClose={() => setActionError(null)} />
      <ErrorBox error={stream.error} />
      {job.error && (
        <div class="error" role="alert">
          <strong>The job failed: </strong>
          {job.error}
        </div>
      )}
      <Card>
        <JobStats job={job} unit={unit} />
      </Card>
      {unit && <SamplesCard trace={stream.trace} waiting={waitingSample(job)} />}
      <Card title="Curves">
        <JobCharts trace={stream.trace} waiting={waitingText(job)} unit={unit} />
      </Card>
      <Card title="Log">
        <LogTail id={id} buffer={log} />
      </Card>
      <NetworkCard id={id} />
    </div>
  );
}
