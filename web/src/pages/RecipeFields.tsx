// The New job page's recipe: solver, rates and their schedule, batch and length, where it runs,
// fine-tuning and sweep options. Empty fields keep the network file's value (the placeholder).
import type { ComponentChildren } from "preact";
import type { Job } from "../api";
import type { Defaults, JobForm } from "./newJobForm";

/** The values the server takes for a job's recipe fields (GET /networks, `choices`). */
export interface RecipeChoices {
  solvers: string[];
  lr_policies: string[];
  precisions: string[];
  /** `myelin train --conv-search`: how a GPU job picks each convolution's algorithm. */
  conv_searches: string[];
}

const CONV_SEARCH_HELP =
  "How a GPU job picks each convolution's cuDNN algorithm: tune times the engines at start " +
  "(the fastest steps; seconds, cached for later jobs), find times cuDNN's algorithms, " +
  "heuristic starts at once, auto takes a cached tuned choice or else the heuristic (16-bit) " +
  "or find (fp32, tf32)";

export type SetField = <K extends keyof JobForm>(key: K, value: JobForm[K]) => void;

interface Props {
  form: JobForm;
  set: SetField;
  defaults: Defaults;
  choices: RecipeChoices;
  devices: { value: string; label: string }[];
  doneJobs: Job[];
  sweepSize: number;
  /** A text dataset: its limits count tokens. */
  text?: boolean;
}

function TextField(props: {
  label: ComponentChildren;
  field: keyof JobForm;
  form: JobForm;
  set: SetField;
  placeholder?: string;
  disabled?: boolean;
}) {
  const { label, field, form, set, placeholder, disabled } = props;
  return (
    <label>
      {label}
      <input
        name={field}
        value={String(form[field])}
        placeholder={placeholder}
        disabled={disabled}
        onInput={(e) => set(field, e.currentTarget.value as never)}
      />
    </label>
  );
}

function Choice(props: {
  label: string;
  field: keyof JobForm;
  form: JobForm;
  set: SetField;
  options: { value: string; label: string }[];
  disabled?: boolean;
  title?: string;
}) {
  const { label, field, form, set, options, disabled, title } = props;
  return (
    <label title={title}>
      {label}
      <select
        name={field}
        value={String(form[field])}
        disabled={disabled}
        onChange={(e) => set(field, e.currentTarget.value as never)}
      >
        {options.map((o) => (
          <option value={o.value}>{o.label}</option>
        ))}
      </select>
    </label>
  );
}

const named = (values: readonly string[]) => values.map((v) => ({ value: v, label: v }));
const withDefault = (values: readonly string[], fallback: string) => [
  { value: "", label: `${fallback} (network file)` },
  ...named(values.filter((v) => v !== fallback)),
];

function PolicyFields({
  form,
  set,
  defaults,
  choices,
}: Pick<Props, "form" | "set" | "defaults" | "choices">) {
  const policy = form.policy || defaults.policy;
  const field = { form, set };
  return (
    <>
      <Choice
        label="LR policy"
        field="policy"
        options={withDefault(choices.lr_policies, defaults.policy)}
        {...field}
      />
      {["step", "multistep", "exp", "inv"].includes(policy) && (
        <TextField
          label="Gamma (decay factor)"
          field="gamma"
          placeholder={defaults.gamma}
          {...field}
        />
      )}
      {policy === "step" && (
        <TextField
          label="Step size (iterations)"
          field="stepSize"
          placeholder={defaults.stepSize}
          {...field}
        />
      )}
      {policy === "multistep" && (
        <TextField
          label="Milestones (iterations)"
          field="milestones"
          placeholder={defaults.milestones || "e.g. 1000, 2000"}
          {...field}
        />
      )}
      <TextField
        label="Warm-up (iterations)"
        field="warmup"
        placeholder={defaults.warmup}
        {...field}
      />
    </>
  );
}

export function RecipeFields(props: Props) {
  const { form, set, defaults, choices, devices, doneJobs, sweepSize, text } = props;
  const field = { form, set };
  const onGpu = form.device !== "cpu";
  return (
    <>
      <div class="form-grid">
        <Choice
          label="Solver"
          field="solver"
          options={withDefault(choices.solvers, defaults.solver)}
          {...field}
        />
        <TextField
          label="Learning rate (a, b, … sweeps)"
          field="lr"
          placeholder={defaults.lr}
          {...field}
        />
        <TextField label="Momentum" field="momentum" placeholder={defaults.momentum} {...field} />
        <TextField
          label="Weight decay"
          field="weightDecay"
          placeholder={defaults.weightDecay}
          {...field}
        />
        <PolicyFields form={form} set={set} defaults={defaults} choices={choices} />
      </div>
      <div class="form-grid">
        <TextField
          label="Batch (a, b, … sweeps)"
          field="batch"
          placeholder={defaults.batch}
          {...field}
        />
        <Choice
          label="Length in"
          field="lengthUnit"
          options={named(["epochs", "iterations"])}
          {...field}
        />
        <TextField
          label={form.lengthUnit === "epochs" ? "Epochs" : "Iterations"}
          field="length"
          placeholder={form.lengthUnit === "epochs" ? defaults.epochs : ""}
          {...field}
        />
        <Choice
          label="Precision"
          field="precision"
          options={named(choices.precisions)}
          {...field}
        />
        <Choice label="Device" field="device" options={devices} {...field} />
        <TextField label="GPUs" field="gpus" disabled={!onGpu} placeholder="1" {...field} />
        <Choice
          label="Convolutions"
          field="convSearch"
          options={named(choices.conv_searches)}
          disabled={!onGpu}
          title={CONV_SEARCH_HELP}
          {...field}
        />
        <TextField
          label={text ? "Train tokens (limit)" : "Train examples (limit)"}
          field="trainLimit"
          placeholder="all"
          {...field}
        />
        <TextField
          label={text ? "Validation tokens (limit)" : "Test examples (limit)"}
          field="testLimit"
          placeholder="all"
          {...field}
        />
      </div>
      <div class="form-grid">
        <TextField label="Job name" field="name" placeholder="network on dataset" {...field} />
        <Choice
          label="Start from the weights of"
          field="weightsFrom"
          options={[
            { value: "", label: "none (from scratch)" },
            ...doneJobs.map((j) => ({ value: String(j.id), label: `#${j.id} ${j.name}` })),
          ]}
          {...field}
        />
      </div>
      {sweepSize > 1 && (
        <div class="row sweep-options">
          <label class="inline">
            <input
              type="checkbox"
              checked={form.halving}
              onChange={(e) => set("halving", e.currentTarget.checked)}
            />
            Successive halving: stop the worse half at
          </label>
          <input
            name="halvingAt"
            value={form.halvingAt}
            disabled={!form.halving}
            onInput={(e) => set("halvingAt", e.currentTarget.value)}
            aria-label="fractions of the run"
          />
          <span class="muted">of the run</span>
        </div>
      )}
    </>
  );
}
