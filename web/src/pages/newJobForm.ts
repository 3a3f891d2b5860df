// The New job form as plain data: its fields (text as typed; "" = the network file's value),
// the defaults they fall back on, and the POST /jobs or POST /sweeps request they make.
import type { Network } from "../api";
import type { Schedule } from "../components/learningRate";

export interface JobForm {
  name: string;
  solver: string;
  lr: string; // one rate, or several separated by commas (a sweep)
  policy: string;
  gamma: string;
  stepSize: string;
  milestones: string;
  warmup: string;
  batch: string; // one size, or several (a sweep)
  lengthUnit: "epochs" | "iterations";
  length: string;
  momentum: string;
  weightDecay: string;
  precision: string;
  device: string;
  gpus: string;
  convSearch: string; // how a GPU job picks each convolution's algorithm ("auto": myelin's default)
  trainLimit: string;
  testLimit: string;
  weightsFrom: string;
  halving: boolean;
  halvingAt: string;
}

export const EMPTY_FORM: JobForm = {
  name: "",
  solver: "",
  lr: "",
  policy: "",
  gamma: "",
  stepSize: "",
  milestones: "",
  warmup: "",
  batch: "",
  lengthUnit: "epochs",
  length: "",
  momentum: "",
  weightDecay: "",
  precision: "fp32",
  device: "cpu",
  gpus: "1",
  convSearch: "auto",
  trainLimit: "",
  testLimit: "",
  weightsFrom: "",
  halving: false,
  halvingAt: "0.25, 0.5",
};

/** What an empty field means: the network file's recipe (src/model/network.h's defaults). */
export type Defaults = Record<
  "solver" | "lr" | "policy" | "gamma" | "power" | "stepSize" | "milestones" | "warmup",
  string
> & { batch: string; epochs: string; momentum: string; weightDecay: string };

export function defaultsOf(network: Network): Defaults {
  const recipe = network.recipe ?? {};
  const text = (key: string, fallback: string) => {
    const value = recipe[key];
    return value === undefined ? fallback : Array.isArray(value) ? value.join(",") : String(value);
  };
  return {
    solver: network.solver ?? "sgd",
    lr: String(network.lr ?? 0.01),
    policy: network.lr_policy ?? "fixed",
    batch: String(network.batch ?? 64),
    epochs: String(network.epochs ?? 10),
    gamma: text("gamma", "0.1"),
    power: text("power", "1"),
    stepSize: text("step_size", "") === "0" ? "" : text("step_size", ""),
    milestones: text("milestones", ""),
    warmup: text("warmup_iters", "0"),
    momentum: text("momentum", "0.9"),
    weightDecay: text("weight_decay", "0"),
  };
}

/** "0.1, 0.01" -> [0.1, 0.01]; a value that is not a number (or not whole) is a problem. */
export function numberList(text: string, whole = false): number[] | string {
  const parts = text.split(",").map((s) => s.trim());
  const values = parts.map(Number);
  const bad = parts.find(
    (p, i) => !p || !isFinite(values[i]) || (whole && !Number.isInteger(values[i])),
  );
  return bad === undefined
    ? values
    : `'${bad || "(empty)"}' is not ${whole ? "a whole number" : "a number"}`;
}

/** The request's train fields: [form field, API field, whole number?]. lr and batch apart. */
const NUMERIC_FIELDS: [keyof JobForm, string, boolean][] = [
  ["gamma", "gamma", false],
  ["stepSize", "step-size", true],
  ["warmup", "warmup", true],
  ["momentum", "momentum", false],
  ["weightDecay", "weight-decay", false],
  ["trainLimit", "train-limit", true],
  ["testLimit", "test-limit", true],
];

export interface ParsedForm {
  lrs: number[]; // the rates to run (the network's when the field is empty)
  batches: number[];
  fields: Record<string, number | string>; // set fields under their API names
  halvingAt: number[]; // fractions of the run where successive halving stops the worse half
  problems: string[];
}

function parseList(
  text: string,
  fallback: string,
  label: string,
  whole: boolean,
  problems: string[],
) {
  const parsed = numberList(text.trim() || fallback, whole);
  if (typeof parsed === "string") {
    problems.push(`${label}: ${parsed}`);
    return [];
  }
  if (parsed.some((v) => v <= 0)) problems.push(`${label}: must be more than 0`);
  return parsed;
}

export function parseForm(form: JobForm, defaults: Defaults): ParsedForm {
  const problems: string[] = [];
  const fields: Record<string, number | string> = { precision: form.precision };
  const lrs = parseList(form.lr, defaults.lr, "Learning rate", false, problems);
  const batches = parseList(form.batch, defaults.batch, "Batch", true, problems);
  for (const [key, api, whole] of NUMERIC_FIELDS) {
    const text = String(form[key]).trim();
    if (!text) continue;
    const value = numberList(text, whole);
    if (typeof value === "string") problems.push(`${api}: ${value}`);
    else if (value.length !== 1) problems.push(`${api}: one value only (sweeps take lr and batch)`);
    else fields[api] = value[0];
  }
  const length = form.length.trim();
  if (length) {
    const value = numberList(length, true);
    if (typeof value === "string" || value.length !== 1 || value[0] < 1)
      problems.push(`${form.lengthUnit}: must be one whole number, 1 or more`);
    else fields[form.lengthUnit] = value[0];
  }
  if (form.solver) fields.solver = form.solver;
  if (form.policy) fields["lr-policy"] = form.policy;
  if (form.milestones.trim()) fields.milestones = form.milestones.replace(/\s/g, "");
  const halvingAt = form.halving ? parseFractions(form.halvingAt, problems) : [];
  return { lrs, batches, fields, halvingAt, problems };
}

function parseFractions(text: string, problems: string[]): number[] {
  const parsed = numberList(text);
  if (typeof parsed === "string" || parsed.some((f) => !(f > 0 && f < 1))) {
    problems.push("Successive halving: fractions of the run between 0 and 1, e.g. 0.25, 0.5");
    return [];
  }
  return parsed;
}

/** The schedule the trainer will follow at rate `lr`, empty fields read from the file. */
export function scheduleOf(form: JobForm, defaults: Defaults, lr: number): Schedule {
  const pick = (typed: string, fallback: string) => Number(typed.trim() || fallback);
  const milestones = (form.milestones.trim() || defaults.milestones)
    .split(",")
    .filter((s) => s.trim());
  return {
    policy: form.policy || defaults.policy,
    lr,
    gamma: pick(form.gamma, defaults.gamma),
    power: Number(defaults.power),
    stepSize: pick(form.stepSize, defaults.stepSize || "0"),
    milestones: milestones.map(Number),
    warmup: pick(form.warmup, defaults.warmup),
  };
}

/** Optimizer updates in the run: the iterations asked for, else epochs × batches per epoch. */
export function runLength(form: JobForm, defaults: Defaults, batch: number, trainExamples: number) {
  const examples = Math.min(trainExamples, Number(form.trainLimit) || Infinity);
  const itersPerEpoch = Math.max(1, Math.floor(examples / batch));
  const length = Number(form.length) || 0;
  const maxIter =
    form.lengthUnit === "iterations" && length
      ? length
      : (length || Number(defaults.epochs)) * itersPerEpoch;
  return { itersPerEpoch, maxIter };
}

/** The fields of a job besides the recipe: what to train, on what, where. */
export function jobBase(form: JobForm, dataset: number, model: string) {
  const base: Record<string, number | string> = { dataset, model, device: form.device };
  if (form.name.trim()) base.name = form.name.trim();
  if (form.device !== "cpu") base.gpus = Number(form.gpus) || 1;
  if (form.device !== "cpu" && form.convSearch !== "auto") base["conv-search"] = form.convSearch;
  if (form.weightsFrom) base.weights_from = Number(form.weightsFrom);
  return base;
}

/** POST /jobs's body, or POST /sweeps's when several rates or batch sizes are asked for. */
export function submission(
  form: JobForm,
  parsed: ParsedForm,
  base: Record<string, number | string>,
) {
  const { lrs, batches, fields } = parsed;
  const job = { ...base, ...fields };
  const grid: Record<string, number[]> = {};
  if (lrs.length > 1) grid.lr = lrs;
  else if (form.lr.trim()) Object.assign(job, { lr: lrs[0] });
  if (batches.length > 1) grid.batch = batches;
  else if (form.batch.trim()) Object.assign(job, { batch: batches[0] });
  if (!Object.keys(grid).length) return { route: "/jobs", body: job };
  const halving = form.halving ? { at: parsed.halvingAt } : undefined;
  return { route: "/sweeps", body: { name: base.name ?? "sweep", job, grid, halving } };
}
