// The machine's pools: each GPU's running and queued jobs with its utilisation and memory over
// the last minutes, and the CPU pool likewise.
import type { Job, Pool } from "../api";
import { bytes } from "../format";
import { useLiveLists } from "../live";
import { Chart, PALETTE } from "../components/Chart";
import { useSystemHistory, type SystemHistory, type Usage } from "../components/systemHistory";
import { Card, ErrorBox, Loading, StateBadge } from "../components/ui";
import "./Gpus.css";

const POLL_MS = 1500;
const WINDOW_SECONDS = 300;
const asPercent = (v: number) => `${Math.round(v * 100)}%`;

function JobLink({ id, jobs }: { id: number; jobs: Map<number, Job> }) {
  const job = jobs.get(id);
  return (
    <a href={`#/jobs/${id}`}>
      #{id} {job?.name ?? ""}
    </a>
  );
}

function PoolQueue({ pool, jobs }: { pool: Pool | undefined; jobs: Map<number, Job> }) {
  if (!pool) return <p class="muted">The scheduler has no such pool.</p>;
  return (
    <div class="pool-queue" data-pool={pool.name}>
      <h3>
        Running{" "}
        <span class="muted">
          {pool.capacity === null
            ? `(${pool.running.length}; the cluster queues the rest)`
            : `(${pool.running.length} of ${pool.capacity})`}
        </span>
      </h3>
      {pool.running.length ? (
        <ul>
          {pool.running.map((id) => (
            <li>
              <JobLink id={id} jobs={jobs} /> <StateBadge state="running" />
            </li>
          ))}
        </ul>
      ) : (
        <p class="muted">Idle.</p>
      )}
      <h3>Queued</h3>
      {pool.queued.length ? (
        <ol>
          {pool.queued.map((id) => (
            <li>
              <JobLink id={id} jobs={jobs} />
            </li>
          ))}
        </ol>
      ) : (
        <p class="muted">Nothing waits.</p>
      )}
    </div>
  );
}

function UsageChart({
  usage,
  history,
  name,
  load,
}: {
  usage: Usage;
  history: SystemHistory;
  name: string;
  load: string;
}) {
  return (
    <Chart
      title="Last 5 minutes"
      name={name}
      time
      span={WINDOW_SECONDS}
      yRange={[0, 1]}
      format={asPercent}
      xLabel="time"
      feeds={[history]}
      lines={[
        { label: load, color: PALETTE[0], series: usage.load },
        { label: "memory", color: PALETTE[3], series: usage.memory },
      ]}
    />
  );
}

export function GpusPage() {
  const { system, history, error } = useSystemHistory(POLL_MS);
  const lists = useLiveLists(500);
  const jobs = new Map(lists.jobs.map((j) => [j.id, j]));
  if (!system) return error ? <ErrorBox error={error} /> : <Loading />;
  const pool = (name: string) => system.pools.find((p) => p.name === name);
  const { cpu } = system;
  return (
    <div class="gpus-page">
      <h1>GPUs and pools</h1>
      <ErrorBox error={error} />
      {system.gpus.length === 0 && (
        <div class="notice no-gpu" role="status">
          <strong>No GPU on this machine.</strong> The server found no NVIDIA GPU (no driver or no
          card answered), so every job trains in the CPU pool below.
        </div>
      )}
      {system.gpus.map((g) => (
        <Card title={`GPU ${g.index}: ${g.name}`}>
          <div class="pool-row">
            <PoolQueue pool={pool(`gpu:${g.index}`)} jobs={jobs} />
            <div class="pool-usage">
              <p class="muted">
                {g.utilization}% busy · {bytes(g.memory_used)} of {bytes(g.memory_total)} memory
              </p>
              <UsageChart
                usage={history.gpus.get(g.index)!}
                history={history}
                name={`gpu-${g.index}`}
                load="utilisation"
              />
            </div>
          </div>
        </Card>
      ))}
      <Card title={`CPU pool (${cpu.cores} cores)`}>
        <div class="pool-row">
          <PoolQueue pool={pool("cpu")} jobs={jobs} />
          <div class="pool-usage">
            <p class="muted">
              {Math.round(cpu.load * 100)}% busy · {bytes(cpu.memory_total - cpu.memory_available)}{" "}
              of {bytes(cpu.memory_total)} memory
            </p>
            <UsageChart usage={history.cpu} history={history} name="cpu" load="load" />
          </div>
        </div>
      </Card>
    </div>
  );
}
