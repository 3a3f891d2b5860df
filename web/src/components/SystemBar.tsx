// CPU and GPU load at a glance.
import type { SystemSnapshot } from "../api";
import { bytes } from "../format";
import { Progress } from "./ui";

export function SystemBar({ system }: { system: SystemSnapshot | null }) {
  if (!system) return null;
  const { cpu, gpus } = system;
  const used = cpu.memory_total - cpu.memory_available;
  return (
    <div class="system-bar">
      <div class="meter" title="CPU busy share">
        <span>CPU ({cpu.cores} cores)</span>
        <Progress value={cpu.load} />
      </div>
      <div class="meter" title="Memory in use">
        <span>RAM</span>
        <Progress
          value={used / cpu.memory_total}
          label={`${bytes(used)} / ${bytes(cpu.memory_total)}`}
        />
      </div>
      {gpus.length === 0 && <span class="muted">No GPU: jobs train on the CPU.</span>}
      {gpus.map((g) => (
        <a class="meter" href="#/gpus" title={g.name}>
          <span>GPU {g.index}</span>
          <Progress value={g.utilization / 100} />
          <Progress
            value={g.memory_used / g.memory_total}
            label={`${bytes(g.memory_used)} / ${bytes(g.memory_total)}`}
          />
        </a>
      ))}
    </div>
  );
}
