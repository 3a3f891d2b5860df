// Live lists: jobs and datasets kept current by the server-wide event stream (/events).
import { useEffect, useRef, useState } from "preact/hooks";
import { ApiError, follow, get, type Dataset, type Job, type SystemSnapshot } from "./api";
import { asApiError } from "./components/ui";

type Partial<T> = { [K in keyof T]?: T[K] };

/**
 * Every job (newest first) and dataset, updated as `job` and `dataset` events arrive. The
 * stream opens before the lists load, so no change between the two is missed; renders are
 * batched to one per animation frame however fast events come.
 */
export function useLiveLists(limit = 1000) {
  const jobs = useRef(new Map<number, Job>());
  const datasets = useRef(new Map<number, Dataset>());
  const [version, setVersion] = useState(0);
  const [live, setLive] = useState(false);
  const [total, setTotal] = useState(0);
  const [loaded, setLoaded] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);

  useEffect(() => {
    let frame = 0;
    let failed = false;
    const changed = () => {
      if (!frame) frame = requestAnimationFrame(() => ((frame = 0), setVersion((v) => v + 1)));
    };
    // A change carries only what changed: an object seen for the first time, or changing state
    // (a dataset's shape and classes come with "ready"), is fetched whole.
    const merge = <T extends { id: number; state?: string }>(
      map: Map<number, T>,
      route: string,
      change: Partial<T> & { id: number },
    ) => {
      if (change.state === "deleted") map.delete(change.id);
      else {
        const known = map.get(change.id);
        if (!known || (change.state !== undefined && change.state !== known.state))
          get<T>(`${route}/${change.id}`).then(
            (whole) => (map.set(change.id, { ...map.get(change.id), ...whole }), changed()),
            () => {},
          );
        map.set(change.id, { ...(map.get(change.id) ?? ({} as T)), ...change });
      }
      changed();
    };
    const load = () =>
      Promise.all([
        get<{ jobs: Job[]; total: number }>(`/jobs?limit=${limit}`),
        get<Dataset[]>("/datasets"),
      ]).then(
        ([j, d]) => {
          // A change that arrived while the lists loaded is newer than the list: it stays on top.
          for (const job of j.jobs)
            jobs.current.set(job.id, { ...job, ...jobs.current.get(job.id) });
          for (const ds of d)
            datasets.current.set(ds.id, { ...ds, ...datasets.current.get(ds.id) });
          failed = false;
          setTotal(j.total);
          setLoaded(true);
          setError(null);
          changed();
        },
        (e) => ((failed = true), setError(asApiError(e))),
      );
    const stream = follow(
      "/events?from=now",
      0,
      {
        job: (c) => merge(jobs.current, "/jobs", c),
        dataset: (c) => merge(datasets.current, "/datasets", c),
      },
      (isLive) => {
        setLive(isLive);
        if (isLive && failed) load(); // the lists failed to load: try again once the server is back
      },
    );
    load();
    return () => {
      stream.close();
      cancelAnimationFrame(frame);
    };
  }, [limit]);

  const jobList = [...jobs.current.values()].sort((a, b) => b.id - a.id);
  const datasetList = [...datasets.current.values()].sort((a, b) => a.id - b.id);
  return { jobs: jobList, datasets: datasetList, live, loaded, total, version, error };
}

/** /system every `ms` milliseconds: CPU and GPU load, memory, the pools. */
export function useSystem(ms = 2000) {
  const [system, setSystem] = useState<SystemSnapshot | null>(null);
  useEffect(() => {
    let stop = false;
    const tick = () =>
      get<SystemSnapshot>("/system")
        .then((s) => !stop && setSystem(s))
        .catch(() => {})
        .finally(() => !stop && (timer = setTimeout(tick, ms)));
    let timer = setTimeout(tick, 0);
    return () => {
      stop = true;
      clearTimeout(timer);
    };
  }, [ms]);
  return system;
}
