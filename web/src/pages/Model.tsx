// A job's trained model: classify an image, see a layer's activations, evaluate the test set,
// look at the filters, download the bundle. A text network has only the bundle here: it writes
// text rather than classifying images.
import { useState } from "preact/hooks";
import { get, url, type Job, type Network } from "../api";
import { ActivationsCard, ClassifyCard } from "../components/ClassifyCard";
import { EvaluationCard } from "../components/EvaluationCard";
import { FiltersCard } from "../components/FiltersCard";
import { NO_WEIGHTS } from "../components/ModelError";
import { PageTitle } from "../components/PageTitle";
import { ErrorBox, Loading, StateBadge, useData } from "../components/ui";
import { percent } from "../format";
import "./Model.css";

export function ModelPage({ id }: { id: number }) {
  const job = useData(() => get<Job>(`/jobs/${id}`), [id]);
  const network = useData(() => get<{ network: Network }>(`/jobs/${id}/network`), [id]);
  const [image, setImage] = useState<File | null>(null);
  const [noWeights, setNoWeights] = useState(false);
  const [probe, setProbe] = useState(0);
  if (job.error) return <ErrorBox error={job.error} />;
  if (!job.data) return <Loading />;
  const layers = network.data?.network.layers ?? [];
  const checkAgain = () => (setNoWeights(false), setProbe(probe + 1), job.reload());
  if (network.data?.network.input_type === "tokens")
    return (
      <>
        <ModelHeader job={job.data} noWeights={false} />
        <p class="notice" role="status">
          This job trained a text network: it writes text rather than classifying images. Its
          samples are on <a href={`#/jobs/${id}`}>the job's page</a>; with the bundle,{" "}
          <code>myelin sample</code> draws more.
        </p>
      </>
    );
  return (
    <>
      <ModelHeader job={job.data} noWeights={noWeights} />
      {noWeights && (
        <p class="notice no-weights" role="status">
          {NO_WEIGHTS}{" "}
          <button class="link" onClick={checkAgain}>
            Check again
          </button>
        </p>
      )}
      <ErrorBox error={network.error} />
      <div class="model-grid">
        <ClassifyCard jobId={id} image={image} onImage={setImage} />
        <ActivationsCard jobId={id} image={image} layers={layers} />
      </div>
      <EvaluationCard jobId={id} disabled={noWeights} />
      <FiltersCard
        key={probe}
        jobId={id}
        convLayers={layers.filter((l) => l.type === "conv")}
        onNoWeights={() => setNoWeights(true)}
      />
    </>
  );
}

function ModelHeader({ job, noWeights }: { job: Job; noWeights: boolean }) {
  const m = job.metrics ?? {};
  return (
    <PageTitle
      crumbs={
        <>
          <a href={`#/jobs/${job.id}`}>Job #{job.id}</a> / model
        </>
      }
      title={`Model of ${job.name}`}
    >
      <StateBadge state={job.state} />
      <span class="muted">
        {job.dataset !== null && (
          <>
            on <a href={`#/datasets/${job.dataset}`}>dataset #{job.dataset}</a> ·{" "}
          </>
        )}
        best test accuracy {percent(m.best_accuracy ?? m.test_accuracy)}
        {m.iter !== undefined && ` · iteration ${m.iter}`}
      </span>
      <span class="spacer" />
      {noWeights ? (
        <button disabled title={NO_WEIGHTS}>
          Download the bundle
        </button>
      ) : (
        <a class="download-button" href={url(`/jobs/${job.id}/download`)} download>
          Download the bundle
        </a>
      )}
    </PageTitle>
  );
}
