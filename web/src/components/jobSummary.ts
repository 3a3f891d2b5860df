// A job's summary kept current from its metrics events, as the server folds them.
import type { JobMetrics, MetricsEvent } from "../api";

const num = (v: unknown) => (typeof v === "number" ? v : undefined);

export function foldMetrics(m: JobMetrics, e: MetricsEvent): JobMetrics {
  const next: JobMetrics = { ...m };
  if (e.event === "start" || e.event === "resume") next.max_iter = num(e.max_iter) ?? m.max_iter;
  if (e.event === "train") {
    next.lr = e.lr;
    next.images_per_second = e.images_per_second;
    next.tokens_per_second = num(e.tokens_per_second) ?? m.tokens_per_second;
    next.eta_seconds = num(e.eta_seconds);
    next.train_loss = e.loss;
    next.train_accuracy = e.top1;
  }
  if (e.event === "test") {
    next.test_loss = e.loss;
    next.test_accuracy = e.top1;
    next.test_top5 = e.top5;
    const bits = num(e.bits_per_symbol);
    if (bits != null) {
      next.bits_per_symbol = bits;
      if (m.best_bits_per_symbol == null || bits < m.best_bits_per_symbol)
        next.best_bits_per_symbol = bits;
    }
    if (e.top1 != null && (m.best_accuracy == null || e.top1 > m.best_accuracy)) {
      next.best_accuracy = e.top1;
      next.best_iter = e.iter;
    }
  }
  if ((e.event === "train" || e.event === "test") && e.iter != null) {
    next.iter = e.iter;
    next.epoch = e.epoch ?? m.epoch;
  }
  if (e.event === "end") next.finished = true;
  if (next.iter != null && next.max_iter) next.progress = next.iter / next.max_iter;
  return next;
}
