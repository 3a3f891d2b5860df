// Examples per class, one bar per split, all on one scale: an unbalanced dataset shows at once.
import type { DatasetClass } from "../api";

export function ClassHistogram({ classes, splits }: { classes: DatasetClass[]; splits: string[] }) {
  const most = Math.max(1, ...classes.flatMap((c) => splits.map((s) => Number(c[s]) || 0)));
  return (
    <div class="histogram">
      <div class="legend">
        {splits.map((s, i) => (
          <span class={`split-${i}`}>
            <i /> {s}
          </span>
        ))}
      </div>
      <div class="histogram-rows">
        {classes.map((c) => (
          <div class="histogram-row" key={c.label}>
            <span class="class-name" title={`class ${c.label}`}>
              {c.name}
            </span>
            <div class="bars">
              {splits.map((s, i) => {
                const n = Number(c[s]) || 0;
                return (
                  <div class={`bar split-${i}`} title={`${c.name}, ${s}: ${n} examples`}>
                    <i style={{ width: `${(100 * n) / most}%` }} />
                    <span>{n.toLocaleString("en")}</span>
                  </div>
                );
              })}
            </div>
          </div>
        ))}
      </div>
    </div>
  );
}
