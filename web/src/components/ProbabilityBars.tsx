// A classifier's top guesses as horizontal bars, longest first.
import { percent } from "../format";

export interface Guess {
  class: number;
  label: string;
  probability: number;
}

export function ProbabilityBars({ guesses }: { guesses: Guess[] }) {
  return (
    <ol class="probability-bars">
      {guesses.map((g, rank) => (
        <li key={g.class} class={rank === 0 ? "best" : ""}>
          <span class="class-name" title={`class ${g.class}`}>
            {g.label}
          </span>
          <span class="track">
            <i style={{ width: `${Math.max(0, Math.min(1, g.probability)) * 100}%` }} />
          </span>
          <span class="probability" data-probability={g.probability}>
            {percent(g.probability)}
          </span>
        </li>
      ))}
    </ol>
  );
}
