// New job (#/new, ?dataset=ID, ?from=JOB): a dataset, a standard network or one written in the
// editor (checked as it is typed), the recipe with its learning-rate schedule and the memory it
// needs; one job, or a sweep when several rates or batch sizes are given. A text dataset is
// offered the text networks (input_type tokens), an image dataset the image networks.
import { useEffect, useMemo, useState } from "preact/hooks";
import {
  get,
  post,
  type ApiError,
  type Dataset,
  type Job,
  type Network,
  type SystemSnapshot,
} from "../api";
import { LrSchedule, type ScheduledRun } from "../components/LrSchedule";
import { MemoryNeeded } from "../components/MemoryNeeded";
import { NetworkEditor, errorText } from "../components/NetworkEditor";
import { NetworkGraph } from "../components/NetworkGraph";
import { scheduleProblem } from "../components/learningRate";
import { Card, ErrorBox, Loading, asApiError, useData } from "../components/ui";
import { useValidation } from "../components/useValidation";
import { type RecipeChoices, RecipeFields, type SetField } from "./RecipeFields";
import {
  EMPTY_FORM,
  defaultsOf,
  jobBase,
  parseForm,
  runLength,
  scheduleOf,
  submission,
  type Defaults,
  type JobForm,
  type ParsedForm,
} from "./newJobForm";
import "./NewJob.css";

type StandardNetwork = Network & { text: string };

interface Choices {
  datasets: Dataset[];
  networks: StandardNetwork[];
  recipe: RecipeChoices;
  system: SystemSnapshot;
  doneJobs: Job[];
}

async function loadChoices(): Promise<Choices> {
  const [datasets, { networks, choices: recipe }, system, { jobs }] = await Promise.all([
    get<Dataset[]>("/datasets"),
    get<{ networks: StandardNetwork[]; choices: RecipeChoices }>("/networks"),
    get<SystemSnapshot>("/system"),
    get<{ jobs: Job[] }>("/jobs?state=done&limit=1000"),
  ]);
  return {
    datasets: datasets.filter((d) => d.state === "ready"),
    networks,
    recipe,
    system,
    doneJobs: jobs,
  };
}

const isTextNetwork = (n: Network) => n.input_type === "tokens";

/** The standard networks that read the dataset's kind (all of them, if none does). */
function networksFor(networks: StandardNetwork[], dataset: Dataset | undefined) {
  const text = dataset?.kind === "text";
  const fit = networks.filter((n) => isTextNetwork(n) === text);
  return fit.length ? fit : networks;
}

/** The network a dataset starts with: char-lstm for text, lenet for images, else the first. */
function defaultNetwork(networks: StandardNetwork[], dataset: Dataset | undefined) {
  const fit = networksFor(networks, dataset);
  const preferred = dataset?.kind === "text" ? "char-lstm" : "lenet";
  return (fit.find((n) => n.name === preferred) ?? fit[0]).name;
}

/** A dataset in the picker: its training examples, or a text dataset's tokens. */
function datasetLabel(d: Dataset) {
  const size =
    d.kind === "text"
      ? `${d.text?.train_tokens.toLocaleString("en") ?? "?"} tokens of ${d.text?.level === "word" ? "words" : "text"}`
      : `${d.examples?.train ?? "?"} train`;
  return `#${d.id} ${d.name}: ${size}`;
}

function devicesOf(system: SystemSnapshot) {
  return [
    { value: "cpu", label: `cpu (${system.cpu.cores} cores)` },
    ...system.gpus.map((g) => ({ value: `cuda:${g.index}`, label: `cuda:${g.index} — ${g.name}` })),
  ];
}

/** The memory the chosen device has: free RAM for the CPU, the card's total for a GPU. */
function deviceMemory(system: SystemSnapshot, device: string) {
  if (device === "cpu")
    return { available: system.cpu.memory_available, where: "the server's free memory" };
  const gpu = system.gpus.find((g) => `cuda:${g.index}` === device);
  return { available: gpu?.memory_total ?? null, where: `GPU ${gpu?.index}'s memory` };
}

/** The runs to plot: one per rate and batch size of the sweep (at most six). */
function scheduledRuns(
  form: JobForm,
  defaults: Defaults,
  parsed: ParsedForm,
  trainExamples: number,
) {
  const runs: ScheduledRun[] = [];
  for (const lr of parsed.lrs)
    for (const batch of parsed.batches) {
      const { maxIter, itersPerEpoch } = runLength(form, defaults, batch, trainExamples);
      const schedule = scheduleOf(form, defaults, lr);
      if (scheduleProblem(schedule, maxIter)) continue;
      runs.push({ label: `lr ${lr}, batch ${batch}`, schedule, maxIter, itersPerEpoch });
    }
  return runs.slice(0, 6);
}

/** ?from=JOB: that job's network (as it trained) and dataset, to fine-tune from its weights. */
function useFineTuneSource(from: string | null) {
  const [source, setSource] = useState<{ text: string; dataset: number | null } | null>(null);
  useEffect(() => {
    if (!from) return;
    Promise.all([get<{ text: string }>(`/jobs/${from}/network`), get<Job>(`/jobs/${from}`)]).then(
      ([net, job]) => setSource({ text: net.text, dataset: job.dataset }),
      () => setSource(null),
    );
  }, [from]);
  return source;
}

export function NewJobPage({ query }: { query: URLSearchParams }) {
  const { data: choices, error } = useData(loadChoices);
  if (error) return <ErrorBox error={error} />;
  if (!choices) return <Loading />;
  if (!choices.datasets.length)
    return (
      <Card title="New job">
        <p>
          No dataset is ready yet. <a href="#/datasets">Make one</a> first.
        </p>
      </Card>
    );
  return <NewJobForm choices={choices} query={query} />;
}

function NewJobForm({ choices, query }: { choices: Choices; query: URLSearchParams }) {
  const from = query.get("from");
  const fineTune = useFineTuneSource(from);
  const [datasetId, setDatasetId] = useState(
    Number(query.get("dataset")) || choices.datasets[0].id,
  );
  const dataset = choices.datasets.find((d) => d.id === datasetId);
  const networks = networksFor(choices.networks, dataset);
  const [networkName, setNetworkName] = useState(() => defaultNetwork(choices.networks, dataset));
  const standard = choices.networks.find((n) => n.name === networkName)!;
  const [text, setText] = useState(standard.text);
  const [editing, setEditing] = useState(false);
  const [form, setForm] = useState<JobForm>({ ...EMPTY_FORM, weightsFrom: from ?? "" });
  const [submitting, setSubmitting] = useState(false);
  const [submitError, setSubmitError] = useState<ApiError | null>(null);

  useEffect(() => {
    if (!fineTune) return;
    setText(fineTune.text);
    setEditing(true);
    if (fineTune.dataset && !query.get("dataset")) {
      setDatasetId(fineTune.dataset);
      const source = choices.datasets.find((d) => d.id === fineTune.dataset);
      if (!networksFor(choices.networks, source).some((n) => n.name === networkName))
        setNetworkName(defaultNetwork(choices.networks, source));
    }
  }, [fineTune]);

  // A changed field makes the last refusal stale.
  const set: SetField = (key, value) => {
    setForm((f) => ({ ...f, [key]: value }));
    setSubmitError(null);
  };
  const pickNetwork = (name: string) => {
    setNetworkName(name);
    setText(choices.networks.find((n) => n.name === name)!.text);
  };
  // A dataset of the other kind takes the other kind of network.
  const pickDataset = (id: number) => {
    setDatasetId(id);
    const next = choices.datasets.find((d) => d.id === id);
    if (!networksFor(choices.networks, next).some((n) => n.name === networkName))
      pickNetwork(defaultNetwork(choices.networks, next));
  };
  const textData = dataset?.kind === "text";

  const validationNetwork = useValidationOf(text, datasetId, form, standard);
  const { validation, network, defaults, parsed } = validationNetwork;
  const trainExamples = textData
    ? textSequences(dataset, form, network ?? standard)
    : (dataset?.examples?.train ?? 0);
  const runs = useMemo(
    () => scheduledRuns(form, defaults, parsed, trainExamples),
    [JSON.stringify([form, defaults, trainExamples])],
  );
  const sweepSize = parsed.lrs.length * parsed.batches.length;

  const submit = async () => {
    setSubmitting(true);
    setSubmitError(null);
    const { route, body } = submission(
      form,
      parsed,
      jobBase(form, datasetId, editing ? text : networkName),
    );
    try {
      const answer = await post<{ id: number; jobs?: number[] }>(route, body);
      location.hash = `#/jobs/${answer.jobs ? answer.jobs[0] : answer.id}`;
    } catch (e) {
      setSubmitError(asApiError(e));
      setSubmitting(false);
    }
  };

  const errors = validation.validation?.valid === false ? validation.validation.errors : [];
  const memory = validation.validation?.valid ? validation.validation.memory : null;
  const problems = [
    ...parsed.problems,
    ...(errors.length ? ["The network does not check out (see above)."] : []),
  ];

  return (
    <div class="new-job">
      <h1>New job</h1>
      <div class="new-job-top">
        <Card title="Data and network">
          <div class="form-grid">
            <label>
              Dataset
              <select
                name="dataset"
                value={datasetId}
                onChange={(e) => pickDataset(Number(e.currentTarget.value))}
              >
                {choices.datasets.map((d) => (
                  <option value={d.id}>{datasetLabel(d)}</option>
                ))}
              </select>
            </label>
            <label>
              Network
              <select
                name="network"
                value={networkName}
                onChange={(e) => pickNetwork(e.currentTarget.value)}
              >
                {networks.map((n) => (
                  <option value={n.name}>{n.name}</option>
                ))}
              </select>
            </label>
          </div>
          <p class="muted network-description">{standard.description}</p>
          <label class="inline">
            <input
              type="checkbox"
              name="edit"
              checked={editing}
              onChange={(e) => setEditing(e.currentTarget.checked)}
            />
            Edit the network file (starts from {networkName}'s)
          </label>
          {editing && <NetworkEditor text={text} errors={errors} onChange={setText} />}
          {!editing && errors.map((e) => <p class="error">{errorText(e)}</p>)}
          <ErrorBox error={validation.error} />
        </Card>
        <Card title="Recipe">
          <RecipeFields
            form={form}
            set={set}
            defaults={defaults}
            choices={choices.recipe}
            devices={devicesOf(choices.system)}
            doneJobs={choices.doneJobs}
            sweepSize={sweepSize}
            text={textData}
          />
        </Card>
      </div>
      <div class="grid">
        <Card title="Learning rate over the run">
          {runs.length ? (
            <LrSchedule runs={runs} />
          ) : (
            <p class="muted">
              No schedule to draw: {scheduleHint(form, defaults, parsed, trainExamples)}
            </p>
          )}
        </Card>
        <Card title={`Memory needed${validation.checking ? " (checking…)" : ""}`}>
          {memory ? (
            <MemoryNeeded memory={memory} {...deviceMemory(choices.system, form.device)} />
          ) : (
            <p class="muted">Shown once the network is valid.</p>
          )}
          {parsed.batches.length > 1 && <p class="muted">At the largest batch of the sweep.</p>}
        </Card>
      </div>
      <Card title={`Network${network ? `: ${network.name}` : ""}`}>
        {network ? <NetworkGraph network={network} /> : <Loading />}
      </Card>
      <div class="submit-bar">
        <ErrorBox error={submitError} onClose={() => setSubmitError(null)} />
        <span>
          {sweepSize > 1 ? `A sweep of ${sweepSize} jobs` : "One job"} on {dataset?.name} with{" "}
          {network?.name ?? networkName}
        </span>
        {problems.map((p) => (
          <span class="problem">{p}</span>
        ))}
        <span class="spacer" />
        <button class="primary" disabled={submitting || problems.length > 0} onClick={submit}>
          {submitting ? "Starting…" : sweepSize > 1 ? `Start ${sweepSize} jobs` : "Start job"}
        </button>
      </div>
    </div>
  );
}

/**
 * A text dataset's training sequences (what an epoch's batches are cut from): its tokens, up to
 * the train limit, over the network's steps.
 */
function textSequences(dataset: Dataset | undefined, form: JobForm, network: Network) {
  const tokens = Math.min(dataset?.text?.train_tokens ?? 0, Number(form.trainLimit) || Infinity);
  return Math.floor(tokens / Math.max(1, network.input[0] ?? 1));
}

function scheduleHint(
  form: JobForm,
  defaults: Defaults,
  parsed: ParsedForm,
  trainExamples: number,
) {
  const lr = parsed.lrs[0] ?? Number(defaults.lr);
  const { maxIter } = runLength(
    form,
    defaults,
    parsed.batches[0] ?? Number(defaults.batch),
    trainExamples,
  );
  return scheduleProblem(scheduleOf(form, defaults, lr), maxIter) ?? "fix the fields above.";
}

/**
 * The network file checked at the chosen dataset, batch (the sweep's largest), device and
 * precision; its network (the last valid one while the text has errors) and the recipe defaults.
 */
function useValidationOf(text: string, dataset: number, form: JobForm, standard: StandardNetwork) {
  const [lastNetwork, setLastNetwork] = useState<Network | null>(null);
  const defaults = defaultsOf(lastNetwork ?? standard);
  const parsed = parseForm(form, defaults);
  // No batch typed: the server takes the file's own.
  const batch =
    form.batch.trim() && parsed.batches.length ? Math.max(...parsed.batches) : undefined;
  const validation = useValidation({
    text,
    dataset,
    batch,
    device: form.device,
    precision: form.precision,
    solver: form.solver.trim() || undefined,
  });
  useEffect(() => {
    if (validation.validation?.valid) setLastNetwork(validation.validation.network);
  }, [validation.validation]);
  return { validation, network: lastNetwork, defaults, parsed };
}
