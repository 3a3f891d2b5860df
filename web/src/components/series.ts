// A chart's data: every point of a series kept in growing typed arrays, and a feed that tells
// charts when points were added.

/** Points (x, y) with x strictly increasing; y may be NaN (a gap). */
let nextId = 1;

export class Series {
  /** Tells series apart where they look alike (two jobs' "train loss"). */
  readonly id = nextId++;
  x = new Float64Array(256);
  y = new Float64Array(256);
  length = 0;

  /** Appends a point; a point not right of the last one (a repeat) is dropped: false. */
  push(x: number, y: number): boolean {
    if (!Number.isFinite(x) || (this.length > 0 && x <= this.x[this.length - 1])) return false;
    if (this.length === this.x.length) this.grow();
    this.x[this.length] = x;
    this.y[this.length] = y;
    this.length++;
    return true;
  }

  get firstX(): number {
    return this.length ? this.x[0] : NaN;
  }

  get lastX(): number {
    return this.length ? this.x[this.length - 1] : NaN;
  }

  /** The index of the first point with x >= `x` (length when none). */
  lowerBound(x: number): number {
    return this.search((at) => at < x);
  }

  /** The index of the first point with x > `x` (length when none). */
  upperBound(x: number): number {
    return this.search((at) => at <= x);
  }

  /** The first index where `before` turns false (x is sorted). */
  private search(before: (x: number) => boolean): number {
    let lo = 0;
    let hi = this.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (before(this.x[mid])) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** The index of the point whose x is closest to `x`, or -1 when empty. */
  nearest(x: number): number {
    if (!this.length) return -1;
    const i = this.lowerBound(x);
    if (i === 0) return 0;
    if (i === this.length) return i - 1;
    return x - this.x[i - 1] <= this.x[i] - x ? i - 1 : i;
  }

  private grow() {
    const x = new Float64Array(this.x.length * 2);
    const y = new Float64Array(this.y.length * 2);
    x.set(this.x);
    y.set(this.y);
    this.x = x;
    this.y = y;
  }
}

/** Tells subscribers that something changed; they decide when to redraw. */
export class Feed {
  private listeners = new Set<() => void>();

  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  notify() {
    for (const listener of this.listeners) listener();
  }
}
