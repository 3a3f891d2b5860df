// The memory a training job will need (the server's estimate) against what the device has: the
// total, a bar of its four parts, and whether it fits.
import type { MemoryEstimate } from "../api";
import { bytes } from "../format";

const PARTS: [keyof MemoryEstimate, string, string][] = [
  ["parameters", "Parameters", "#8a4fd8"],
  ["optimizer_state", "Optimizer state", "#14a3a3"],
  ["activations", "Activations and gradients", "#2f6fed"],
  ["workspace", "Kernel workspace", "#c98a00"],
];

interface Props {
  memory: MemoryEstimate;
  available: number | null; // bytes the device has, when known
  where: string; // "the server's free memory", "GPU 0's memory"
}

export function MemoryNeeded({ memory, available, where }: Props) {
  const fits = available == null || memory.total <= available;
  return (
    <div class="memory-needed">
      <div class="stat">
        <div class="value" data-testid="memory-total">
          {bytes(memory.total)}
        </div>
        <div class="label">
          at batch {memory.batch} on {memory.device}
          {memory.exact ? " (the engine's own figure)" : " (an estimate)"}
        </div>
      </div>
      <div class="memory-bar" aria-hidden="true">
        {PARTS.map(([key, , color]) => (
          <span style={{ flex: Number(memory[key]) || 0, background: color }} />
        ))}
      </div>
      <ul class="memory-parts">
        {PARTS.map(([key, label, color]) => (
          <li>
            <i style={{ background: color }} /> {label} <b>{bytes(Number(memory[key]))}</b>
          </li>
        ))}
      </ul>
      {available != null && (
        <p class={fits ? "muted" : "error"}>
          {fits
            ? `Fits: ${where} is ${bytes(available)}.`
            : `Does not fit: ${where} is ${bytes(available)}. Try a smaller batch.`}
        </p>
      )}
    </div>
  );
}
