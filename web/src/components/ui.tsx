// Small shared pieces: loading data, showing errors, progress, job states.
import type { ComponentChildren } from "preact";
import { useCallback, useEffect, useState } from "preact/hooks";
import { ApiError, type JobState } from "../api";

/** Loads `load()` on mount and when `deps` change; `reload` fetches again. */
export function useData<T>(load: () => Promise<T>, deps: unknown[] = []) {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<ApiError | null>(null);
  const reload = useCallback(() => {
    let live = true;
    load().then(
      (d) => live && (setData(d), setError(null)),
      (e) => live && setError(asApiError(e)),
    );
    return () => {
      live = false;
    };
  }, deps);
  useEffect(reload, [reload]);
  return { data, error, reload, setData };
}

export function asApiError(e: unknown): ApiError {
  return e instanceof ApiError ? e : new ApiError(0, e instanceof Error ? e.message : String(e));
}

/** An error the API returned, said in words (never raw JSON). */
export function ErrorBox({ error, onClose }: { error: ApiError | null; onClose?: () => void }) {
  if (!error) return null;
  const hint =
    error.status === 404
      ? "It may have been deleted."
      : error.status === 403
        ? "Only its owner or an admin may do this."
        : error.status === 409
          ? "It is not in a state that allows this yet."
          : error.status >= 500
            ? "The server failed; its log says more."
            : "";
  return (
    <div class="error" role="alert">
      <strong>{error.status ? `Error ${error.status}: ` : ""}</strong>
      {error.message} {hint && <span class="muted">{hint}</span>}
      {onClose && (
        <button class="link" onClick={onClose} aria-label="Dismiss">
          ×
        </button>
      )}
    </div>
  );
}

export function Progress({ value, label }: { value: number; label?: string }) {
  const pct = Math.max(0, Math.min(1, value || 0)) * 100;
  return (
    <div class="progress" role="progressbar" aria-valuenow={Math.round(pct)}>
      <div class="bar" style={{ width: `${pct}%` }} />
      <span>{label ?? `${pct.toFixed(0)}%`}</span>
    </div>
  );
}

export function StateBadge({ state }: { state: JobState | "building" | "ready" | string }) {
  return <span class={`badge state-${state}`}>{state}</span>;
}

export function Card({
  title,
  children,
  actions,
}: {
  title?: ComponentChildren;
  children: ComponentChildren;
  actions?: ComponentChildren;
}) {
  return (
    <section class="card">
      {(title || actions) && (
        <header>
          <h2>{title}</h2>
          <div class="actions">{actions}</div>
        </header>
      )}
      {children}
    </section>
  );
}

export function Loading() {
  return <p class="muted">Loading…</p>;
}
