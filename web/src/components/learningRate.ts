// The learning rate at each iteration, as the trainer computes it: this mirrors
// src/train/schedule.cpp (policy_rate and lr_at) and the defaults of Recipe in
// src/model/network.h (gamma 0.1, power 1, no warmup). Keep the three in step.

export const LR_POLICIES = ["fixed", "step", "multistep", "exp", "inv", "poly", "cosine"] as const;

export interface Schedule {
  policy: string;
  lr: number;
  gamma: number;
  power: number;
  stepSize: number; // iterations between drops (step)
  milestones: number[]; // iterations where the rate drops (multistep), increasing
  warmup: number; // iterations of linear warm-up
}

/** Why the trainer would refuse this schedule (schedule.cpp's check_schedule), or null. */
export function scheduleProblem(s: Schedule, maxIter: number): string | null {
  if (!(LR_POLICIES as readonly string[]).includes(s.policy))
    return `unknown learning-rate policy '${s.policy}'`;
  if (!(s.lr > 0)) return "the learning rate must be a positive number";
  if (s.warmup < 0) return "warm-up must be 0 or more iterations";
  if (s.policy === "step" && !(s.stepSize > 0))
    return "policy 'step' needs a step size (iterations between rate drops)";
  if (s.policy === "multistep" && !s.milestones.length)
    return "policy 'multistep' needs milestones (iterations where the rate drops)";
  if (s.milestones.some((m, i) => i > 0 && m < s.milestones[i - 1]))
    return "milestones must be in increasing order";
  if (!(maxIter > 0)) return "the run has no iterations";
  return null;
}

function policyRate(s: Schedule, iter: number, maxIter: number): number {
  switch (s.policy) {
    case "fixed":
      return s.lr;
    case "step":
      return s.lr * Math.pow(s.gamma, Math.floor(iter / s.stepSize));
    case "multistep":
      return s.lr * Math.pow(s.gamma, s.milestones.filter((m) => m <= iter).length);
    case "exp":
      return s.lr * Math.pow(s.gamma, iter);
    case "inv":
      return s.lr * Math.pow(1 + s.gamma * iter, -s.power);
  }
  const fraction = Math.min(1, iter / maxIter);
  if (s.policy === "poly") return s.lr * Math.pow(1 - fraction, s.power);
  return s.lr * 0.5 * (1 + Math.cos(Math.PI * fraction)); // cosine
}

/** The rate at `iter` (0-based) of a run of `maxIter` iterations. */
export function lrAt(s: Schedule, iter: number, maxIter: number): number {
  const rate = policyRate(s, Math.max(0, iter), maxIter);
  return iter < s.warmup ? (rate * (iter + 1)) / s.warmup : rate;
}

/**
 * The iterations to draw: evenly spaced (about `points`), plus both sides of every drop of the
 * step policies and the end of the warm-up, so corners are drawn where they are.
 */
export function sampleIterations(s: Schedule, maxIter: number, points = 400): number[] {
  const at = new Set<number>();
  const stride = Math.max(1, Math.floor(maxIter / points));
  for (let i = 0; i < maxIter; i += stride) at.add(i);
  at.add(maxIter - 1);
  const stepDrops = s.policy === "step" ? Math.floor(maxIter / s.stepSize) : 0;
  const drops =
    stepDrops > 0 && stepDrops <= points
      ? Array.from({ length: stepDrops }, (_, k) => (k + 1) * s.stepSize)
      : s.policy === "multistep"
        ? s.milestones
        : [];
  for (const d of [...drops, s.warmup]) if (d > 0 && d < maxIter) at.add(d - 1).add(d);
  return [...at].sort((a, b) => a - b);
}
