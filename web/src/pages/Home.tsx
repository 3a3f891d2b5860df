// Home: datasets, jobs with their state, progress, ETA and best accuracy, and the machine's load.
import { memo } from "preact/compat";
import { useState } from "preact/hooks";
import type { Dataset, Job } from "../api";
import { ago, duration, percent } from "../format";
import { useLiveLists, useSystem } from "../live";
import { SystemBar } from "../components/SystemBar";
import { Card, ErrorBox, Loading, Progress, StateBadge } from "../components/ui";

const FILTERS = {
  active: (j: Job) => j.state === "running" || j.state === "queued",
  finished: (j: Job) => j.state !== "running" && j.state !== "queued",
  all: () => true,
};
type Filter = keyof typeof FILTERS;
const PAGE = 100;

export function HomePage() {
  const { jobs, datasets, live, loaded, total, error } = useLiveLists();
  const system = useSystem();
  const [filter, setFilter] = useState<Filter>("all");
  const [shown, setShown] = useState(PAGE);
  const [picked, setPicked] = useState<Set<number>>(new Set());
  const toggle = (id: number) => {
    const next = new Set(picked);
    next.has(id) ? next.delete(id) : next.add(id);
    setPicked(next);
  };
  const list = jobs.filter(FILTERS[filter]);
  return (
    <>
      <SystemBar system={system} />
      <Card
        title={
          <>
            Jobs <span class={`live ${live ? "on" : ""}`}>{live ? "live" : "reconnecting"}</span>
          </>
        }
        actions={
          <>
            <div class="tabs">
              {(Object.keys(FILTERS) as Filter[]).map((f) => (
                <button class={f === filter ? "on" : ""} onClick={() => setFilter(f)}>
                  {f} ({jobs.filter(FILTERS[f]).length})
                </button>
              ))}
            </div>
            <button
              disabled={picked.size < 2}
              onClick={() => (location.hash = `#/compare?jobs=${[...picked].join(",")}`)}
            >
              Compare {picked.size || ""}
            </button>
            <a href="#/new">
              <button class="primary">New job</button>
            </a>
          </>
        }
      >
        {!loaded ? (
          error ? (
            <ErrorBox error={error} />
          ) : (
            <Loading />
          )
        ) : list.length === 0 ? (
          <p class="muted">
            No {filter === "all" ? "" : filter} jobs yet. Make a dataset, then a{" "}
            <a href="#/new">new job</a>.
          </p>
        ) : (
          <div class="table-scroll">
            <table class="jobs">
              <thead>
                <tr>
                  <th />
                  <th class="num">#</th>
                  <th>Name</th>
                  <th>State</th>
                  <th>Progress</th>
                  <th class="num">ETA</th>
                  <th class="num">Best accuracy</th>
                  <th>Device</th>
                  <th>Created</th>
                </tr>
              </thead>
              <tbody>
                {list.slice(0, shown).map((j) => (
                  <JobRow key={j.id} job={j} picked={picked.has(j.id)} onPick={toggle} />
                ))}
              </tbody>
            </table>
            {list.length > shown && (
              <button class="link" onClick={() => setShown(shown + 10 * PAGE)}>
                Show more ({list.length - shown} more)
              </button>
            )}
          </div>
        )}
        {total > jobs.length && (
          <p class="muted">
            The newest {jobs.length} of {total} jobs.
          </p>
        )}
      </Card>
      <Card
        title="Datasets"
        actions={
          <a href="#/datasets">
            <button>New dataset</button>
          </a>
        }
      >
        {datasets.length === 0 ? (
          <p class="muted">
            No dataset yet: <a href="#/datasets">make one</a> from Fashion-MNIST, a folder or an
            archive.
          </p>
        ) : (
          <table>
            <tbody>
              {datasets.map((d) => (
                <DatasetRow key={d.id} dataset={d} />
              ))}
            </tbody>
          </table>
        )}
      </Card>
    </>
  );
}

const JobRow = memo(function JobRow({
  job,
  picked,
  onPick,
}: {
  job: Job;
  picked: boolean;
  onPick: (id: number) => void;
}) {
  const m = job.metrics ?? {};
  const best = m.best_accuracy ?? m.test_accuracy;
  return (
    <tr>
      <td>
        <input
          type="checkbox"
          checked={picked}
          onChange={() => onPick(job.id)}
          aria-label="Compare"
        />
      </td>
      <td class="num">{job.id}</td>
      <td>
        <a href={`#/jobs/${job.id}`}>{job.name}</a>
      </td>
      <td>
        <StateBadge state={job.state} />
        {job.state === "queued" && job.waiting_for && (
          <span class="muted"> waiting for {job.waiting_for}</span>
        )}
      </td>
      <td>
        <Progress value={job.state === "done" ? 1 : (m.progress ?? 0)} />
      </td>
      <td class="num">{job.state === "running" ? duration(m.eta_seconds) : "–"}</td>
      <td class="num">{percent(best)}</td>
      <td>{job.pool ?? job.device}</td>
      <td class="muted">{ago(job.created)}</td>
    </tr>
  );
});

function DatasetRow({ dataset: d }: { dataset: Dataset }) {
  return (
    <tr>
      <td>
        <a href={`#/datasets/${d.id}`}>{d.name}</a>
      </td>
      <td>
        {d.state === "building" ? <Progress value={d.progress} /> : <StateBadge state={d.state} />}
      </td>
      <td class="muted">{d.shape ? d.shape.join("×") : ""}</td>
      <td class="muted">{d.num_classes ? `${d.num_classes} classes` : ""}</td>
      <td class="muted wrap">{d.error ?? ""}</td>
      <td>{d.state === "ready" && <a href={`#/new?dataset=${d.id}`}>Train on it</a>}</td>
    </tr>
  );
}
