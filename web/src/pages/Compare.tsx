// Several jobs side by side: their curves on one chart (live), a table of where each stands,
// and a list to pick jobs from. The choice lives in the URL: #/compare?jobs=1,2,3.
import { useState } from "preact/hooks";
import type { Job } from "../api";
import { percent } from "../format";
import { useLiveLists } from "../live";
import { navigate } from "../router";
import { useJobTraces } from "../trace";
import { CompareChart, colorOf } from "../components/CompareChart";
import { Card, ErrorBox, StateBadge } from "../components/ui";
import "./Compare.css";

function parseIds(value: string | null): number[] {
  const ids = (value ?? "").split(",").map(Number);
  return [...new Set(ids.filter((id) => Number.isInteger(id) && id > 0))];
}

function showIds(ids: number[]) {
  navigate(ids.length ? `/compare?jobs=${ids.join(",")}` : "/compare");
}

function jobLabel(id: number, job: Job | undefined) {
  return job ? `#${id} ${job.name}` : `#${id}`;
}

function ComparedTable({ ids, jobs }: { ids: number[]; jobs: Map<number, Job> }) {
  if (!ids.length) return null;
  return (
    <table class="compared">
      <thead>
        <tr>
          <th>job</th>
          <th>state</th>
          <th class="num">iteration</th>
          <th class="num">test accuracy</th>
          <th class="num">best</th>
          <th />
        </tr>
      </thead>
      <tbody>
        {ids.map((id, i) => {
          const job = jobs.get(id);
          const m = job?.metrics ?? {};
          return (
            <tr>
              <td class="wrap">
                <span class="swatch" style={{ background: colorOf(i) }} />
                <a href={`#/jobs/${id}`}>{jobLabel(id, job)}</a>
              </td>
              <td>{job && <StateBadge state={job.state} />}</td>
              <td class="num">{m.iter != null ? `${m.iter} / ${m.max_iter ?? "?"}` : "–"}</td>
              <td class="num">{percent(m.test_accuracy)}</td>
              <td class="num">{percent(m.best_accuracy)}</td>
              <td>
                <button class="link" onClick={() => showIds(ids.filter((x) => x !== id))}>
                  remove
                </button>
              </td>
            </tr>
          );
        })}
      </tbody>
    </table>
  );
}

function JobPicker({ jobs, ids }: { jobs: Job[]; ids: number[] }) {
  const [filter, setFilter] = useState("");
  const needle = filter.trim().toLowerCase();
  const shown = jobs.filter((j) => !needle || `#${j.id} ${j.name}`.toLowerCase().includes(needle));
  const toggle = (id: number, on: boolean) =>
    showIds(on ? [...ids, id] : ids.filter((x) => x !== id));
  return (
    <div class="job-picker">
      <input
        type="search"
        placeholder="Filter jobs"
        value={filter}
        onInput={(e) => setFilter(e.currentTarget.value)}
      />
      <ul>
        {shown.slice(0, 200).map((j) => (
          <li>
            <label>
              <input
                type="checkbox"
                checked={ids.includes(j.id)}
                onChange={(e) => toggle(j.id, e.currentTarget.checked)}
              />
              <span class="name">
                #{j.id} {j.name}
              </span>
              <StateBadge state={j.state} />
            </label>
          </li>
        ))}
        {!shown.length && <li class="muted">No jobs{needle ? " match" : " yet"}.</li>}
      </ul>
    </div>
  );
}

export function ComparePage({ query }: { query: URLSearchParams }) {
  const ids = parseIds(query.get("jobs"));
  const lists = useLiveLists(500);
  const byId = new Map(lists.jobs.map((j) => [j.id, j]));
  const { traces, errors } = useJobTraces(ids);
  const compared = ids.map((id, i) => ({ label: jobLabel(id, byId.get(id)), trace: traces[i] }));
  return (
    <div class="compare-page">
      <h1>Compare jobs</h1>
      {ids.map((id) => (
        <ErrorBox error={errors.get(id) ?? null} />
      ))}
      <div class="compare-layout">
        <Card title="Curves">
          <CompareChart jobs={compared} />
          <ComparedTable ids={ids} jobs={byId} />
        </Card>
        <Card title="Jobs">
          <JobPicker jobs={lists.jobs} ids={ids} />
        </Card>
      </div>
    </div>
  );
}
