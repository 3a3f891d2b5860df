// Every dataset, kept current: progress from the server's `dataset` events, the whole dataset
// fetched again when its state changes (shape, classes and sizes come with "ready"), and a poll
// while any is building in case the event stream is down or missed a change.
import { useEffect, useRef, useState } from "preact/hooks";
import { ApiError, follow, get, type Dataset } from "../api";
import { asApiError } from "./ui";

const POLL_MS = 2000;

type DatasetChange = Pick<Dataset, "id" | "progress" | "error"> & {
  state: Dataset["state"] | "deleted";
};

export function useLiveDatasets() {
  const [datasets, setDatasets] = useState<Map<number, Dataset> | undefined>(undefined);
  const [error, setError] = useState<ApiError | null>(null);
  const current = useRef(datasets);
  current.current = datasets;

  useEffect(() => {
    let stopped = false;
    const update = (change: (m: Map<number, Dataset>) => void) =>
      setDatasets((before) => {
        const next = new Map(before);
        change(next);
        return next;
      });
    const loadAll = () =>
      get<Dataset[]>("/datasets").then(
        (list) => !stopped && (setDatasets(new Map(list.map((d) => [d.id, d]))), setError(null)),
        (e) => !stopped && setError(asApiError(e)),
      );
    const loadOne = (id: number) =>
      get<Dataset>(`/datasets/${id}`).then(
        (d) => !stopped && update((m) => m.set(id, d)),
        () => {},
      );
    const onChange = (change: DatasetChange) => {
      const known = current.current?.get(change.id);
      if (change.state === "deleted") update((m) => m.delete(change.id));
      else if (known && known.state === change.state)
        update((m) => m.set(change.id, { ...known, progress: change.progress }));
      else loadOne(change.id);
    };
    const stream = follow("/events?from=now", 0, { dataset: onChange }, (live) => {
      if (live) loadAll(); // (re)connected: whatever changed while the stream was down
    });
    const poll = setInterval(() => {
      const list = current.current ? [...current.current.values()] : [];
      if (list.some((d) => d.state === "building")) loadAll();
    }, POLL_MS);
    loadAll();
    return () => {
      stopped = true;
      stream.close();
      clearInterval(poll);
    };
  }, []);

  return { datasets, error };
}
