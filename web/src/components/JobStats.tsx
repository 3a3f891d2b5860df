// A job's figures: where it stands, how fast it goes, what it reached and what it uses (a text
// network: tokens per second and bits per symbol).
import type { ComponentChildren } from "preact";
import type { Job } from "../api";
import { bytes, duration, number, percent } from "../format";
import { useSystem } from "../live";
import { Progress, StateBadge } from "./ui";

function Figure({ label, children }: { label: string; children: ComponentChildren }) {
  return (
    <div class="stat">
      <div class="value">{children}</div>
      <div class="label">{label}</div>
    </div>
  );
}

function progressLabel(job: Job): string {
  const m = job.metrics;
  if (m.iter == null || !m.max_iter) return job.state === "queued" ? "waiting" : "–";
  const eta =
    job.state === "running" && m.eta_seconds != null ? ` · ${duration(m.eta_seconds)} left` : "";
  return `${m.iter} / ${m.max_iter}${eta}`;
}

/** The GPU the job's pool ("gpu:N") runs on, from /system. */
function GpuFigures({ index }: { index: number }) {
  const gpu = useSystem(2000)?.gpus.find((g) => g.index === index);
  if (!gpu) return <Figure label={`GPU ${index}`}>–</Figure>;
  return (
    <>
      <Figure label={`GPU ${index} utilisation`}>{gpu.utilization}%</Figure>
      <Figure label={`GPU ${index} memory`}>
        {bytes(gpu.memory_used)} / {bytes(gpu.memory_total)}
      </Figure>
    </>
  );
}

const bits = (x: number | undefined) => (x == null || !isFinite(x) ? "–" : x.toFixed(3));

/** `unit`: a text network's symbol ("character", "word"); none for an image network. */
export function JobStats({ job, unit }: { job: Job; unit?: string }) {
  const m = job.metrics;
  const gpu = job.pool?.startsWith("gpu:") ? Number(job.pool.slice(4)) : null;
  const best =
    m.best_accuracy != null ? `${percent(m.best_accuracy)} @ ${m.best_iter ?? "?"}` : "–";
  return (
    <div class="stats job-stats">
      <Figure label="state">
        <StateBadge state={job.state} />
      </Figure>
      <div class="stat job-progress">
        <Progress value={m.progress ?? 0} label={progressLabel(job)} />
        <div class="label">progress</div>
      </div>
      {unit ? (
        <Figure label="tokens/s">{number(m.tokens_per_second, 3)}</Figure>
      ) : (
        <Figure label="images/s">{number(m.images_per_second, 3)}</Figure>
      )}
      <Figure label="epoch">{m.epoch != null ? m.epoch.toFixed(2) : "–"}</Figure>
      <Figure label="train loss">{number(m.train_loss, 3)}</Figure>
      {unit ? (
        <>
          <Figure label={`bits per ${unit}`}>{bits(m.bits_per_symbol)}</Figure>
          <Figure label={`best bits per ${unit}`}>{bits(m.best_bits_per_symbol)}</Figure>
        </>
      ) : (
        <>
          <Figure label="test accuracy">{percent(m.test_accuracy)}</Figure>
          <Figure label="best accuracy @ iter">{best}</Figure>
        </>
      )}
      <Figure label="restarts">{String(job.restarts)}</Figure>
      <Figure label="process memory">{bytes(job.process?.rss_bytes)}</Figure>
      <Figure label="process CPU time">{duration(job.process?.cpu_seconds)}</Figure>
      {gpu != null && <GpuFigures index={gpu} />}
    </div>
  );
}
