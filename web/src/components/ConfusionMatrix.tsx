// A confusion matrix as a heat map: rows are the true classes, columns the predicted ones; a
// cell's colour is its share of its row (so rare classes read as well as common ones), and
// hovering a cell says its count.
import { useState } from "preact/hooks";

const LABEL_WIDTH = 110;
const HEADER_HEIGHT = 96;
const RIGHT_MARGIN = 72; // the last column's slanted name runs past the matrix

export function ConfusionMatrix({ names, counts }: { names: string[]; counts: number[][] }) {
  const [hover, setHover] = useState<[number, number] | null>(null);
  const n = names.length;
  const cell = Math.max(12, Math.min(44, Math.floor(560 / Math.max(1, n))));
  const rowTotals = counts.map((row) => row.reduce((a, b) => a + b, 0));
  const size = n * cell;
  return (
    <div class="confusion-wrap">
      <p class="confusion-hover">
        {hover ? describe(names, counts, rowTotals, hover) : "Hover a cell to see its count."}
      </p>
      <svg
        class="confusion"
        width={LABEL_WIDTH + size + RIGHT_MARGIN}
        height={HEADER_HEIGHT + size}
        role="img"
        aria-label="Confusion matrix"
        onMouseLeave={() => setHover(null)}
      >
        {names.map((name, j) => (
          <text
            class="axis-label"
            transform={`translate(${LABEL_WIDTH + j * cell + cell / 2 + 4}, ${HEADER_HEIGHT - 6}) rotate(-50)`}
          >
            {clip(name)}
          </text>
        ))}
        {names.map((name, i) => (
          <text
            class="axis-label"
            x={LABEL_WIDTH - 6}
            y={HEADER_HEIGHT + i * cell + cell / 2 + 4}
            text-anchor="end"
          >
            {clip(name)}
          </text>
        ))}
        {counts.map((row, i) =>
          row.map((count, j) => {
            const share = rowTotals[i] ? count / rowTotals[i] : 0;
            return (
              <g onMouseEnter={() => setHover([i, j])}>
                <rect
                  class={`cell ${i === j ? "diagonal" : ""}`}
                  x={LABEL_WIDTH + j * cell}
                  y={HEADER_HEIGHT + i * cell}
                  width={cell}
                  height={cell}
                  fill={heat(share)}
                  data-count={count}
                />
                {cell >= 28 && count > 0 && (
                  <text
                    class="count"
                    x={LABEL_WIDTH + j * cell + cell / 2}
                    y={HEADER_HEIGHT + i * cell + cell / 2 + 4}
                    fill={share > 0.5 ? "#fff" : "#1d2330"}
                  >
                    {count}
                  </text>
                )}
              </g>
            );
          }),
        )}
        {hover && (
          <rect
            class="hover-outline"
            x={LABEL_WIDTH + hover[1] * cell}
            y={HEADER_HEIGHT + hover[0] * cell}
            width={cell}
            height={cell}
          />
        )}
      </svg>
      <p class="muted axis-note">
        Rows: true class · columns: predicted class · colour: share of the row.
      </p>
    </div>
  );
}

function describe(names: string[], counts: number[][], totals: number[], [i, j]: [number, number]) {
  const count = counts[i][j];
  const share = totals[i] ? ` (${((100 * count) / totals[i]).toFixed(1)}% of ${totals[i]})` : "";
  return i === j
    ? `${names[i]} recognised: ${count}${share}`
    : `${names[i]} taken for ${names[j]}: ${count}${share}`;
}

/** White to the accent blue, by a share 0..1. */
function heat(share: number): string {
  const t = Math.sqrt(Math.max(0, Math.min(1, share)));
  const mix = (from: number, to: number) => Math.round(from + (to - from) * t);
  return `rgb(${mix(248, 31)}, ${mix(249, 84)}, ${mix(252, 196)})`;
}

function clip(name: string): string {
  return name.length > 16 ? `${name.slice(0, 15)}…` : name;
}
