// A job's log as shown: the tail fetched once (GET /jobs/ID/log) and the lines that `log`
// events bring after it, without the lines both have.
import { Feed } from "./series";

const MAX_LINES = 1000;
const MAX_OVERLAP = 300;

/** What a terminal shows of a line a progress bar redrew with '\r'. */
function lastDrawn(line: string): string {
  const trimmed = line.replace(/\r+$/, "");
  return trimmed.slice(trimmed.lastIndexOf("\r") + 1);
}

/** The lines of a log tail; `cut` drops the first line, begun before the tail. */
export function logLines(text: string, cut: boolean): string[] {
  const lines = text.split("\n").map(lastDrawn);
  if (cut) lines.shift();
  return lines.filter((line) => line !== "");
}

/** The most lines at the end of `tail` that `events` begins with. */
export function overlap(tail: string[], events: string[]): number {
  for (let k = Math.min(tail.length, events.length, MAX_OVERLAP); k > 0; k--) {
    let same = true;
    for (let i = 0; i < k && same; i++) same = tail[tail.length - k + i] === events[i];
    if (same) return k;
  }
  return 0;
}

export class LogBuffer extends Feed {
  private tail: string[] = [];
  private events: string[] = [];

  setTail(lines: string[]) {
    this.tail = lines;
    this.notify();
  }

  add(line: string) {
    this.events.push(line);
    if (this.events.length > 2 * MAX_LINES + MAX_OVERLAP)
      this.events.splice(MAX_OVERLAP, this.events.length - MAX_LINES - MAX_OVERLAP);
    this.notify();
  }

  lines(): string[] {
    const merged = this.tail.concat(this.events.slice(overlap(this.tail, this.events)));
    return merged.slice(-MAX_LINES);
  }
}
