// /system polled every second or two, kept as rolling series: each GPU's utilisation and
// memory, the CPU's load and memory (all as shares of 0..1, x in Unix seconds).
import { useEffect, useMemo, useState } from "preact/hooks";
import { get, type ApiError, type SystemSnapshot } from "../api";
import { Feed, Series } from "./series";
import { asApiError } from "./ui";

export interface Usage {
  load: Series;
  memory: Series;
}

const usage = (): Usage => ({ load: new Series(), memory: new Series() });

export class SystemHistory extends Feed {
  readonly cpu = usage();
  readonly gpus = new Map<number, Usage>();

  record(s: SystemSnapshot, at = Date.now() / 1000) {
    this.cpu.load.push(at, s.cpu.load);
    this.cpu.memory.push(at, 1 - s.cpu.memory_available / s.cpu.memory_total);
    for (const g of s.gpus) {
      if (!this.gpus.has(g.index)) this.gpus.set(g.index, usage());
      const gpu = this.gpus.get(g.index)!;
      gpu.load.push(at, g.utilization / 100);
      gpu.memory.push(at, g.memory_used / g.memory_total);
    }
    this.notify();
  }
}

export function useSystemHistory(ms: number) {
  const history = useMemo(() => new SystemHistory(), []);
  const [system, setSystem] = useState<SystemSnapshot | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  useEffect(() => {
    let timer: ReturnType<typeof setTimeout>;
    let stopped = false;
    const tick = () =>
      get<SystemSnapshot>("/system")
        .then(
          (s) => !stopped && (history.record(s), setSystem(s), setError(null)),
          (e) => !stopped && setError(asApiError(e)),
        )
        .finally(() => !stopped && (timer = setTimeout(tick, ms)));
    tick();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }, [ms]);
  return { system, history, error };
}
