// One figure of a .stats row: a value over its label.
export function Stat({ value, label }: { value: string; label: string }) {
  return (
    <div class="stat">
      <div class="value">{value}</div>
      <div class="label">{label}</div>
    </div>
  );
}
