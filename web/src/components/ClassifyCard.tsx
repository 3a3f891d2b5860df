// One image through a job's weights: its five likeliest classes, and what a chosen layer's
// channels make of it.
import { useEffect, useState } from "preact/hooks";
import { ApiError, postForm, postFormForImage, type Layer } from "../api";
import { DropZone } from "./DropZone";
import { useFileUrl, useImageRequest } from "./imageRequest";
import { ModelError } from "./ModelError";
import { PixelImage } from "./PixelImage";
import { ProbabilityBars, type Guess } from "./ProbabilityBars";
import { asApiError, Card, Loading } from "./ui";

function imageForm(image: File): FormData {
  const form = new FormData();
  form.append("image", image);
  return form;
}

export function ClassifyCard({
  jobId,
  image,
  onImage,
}: {
  jobId: number;
  image: File | null;
  onImage: (image: File) => void;
}) {
  const imageUrl = useFileUrl(image);
  const [guesses, setGuesses] = useState<Guess[] | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  useEffect(() => {
    setGuesses(null);
    setError(null);
    if (!image) return;
    let current = true;
    postForm<{ top: Guess[] }>(`/jobs/${jobId}/classify`, imageForm(image)).then(
      (answer) => current && setGuesses(answer.top),
      (e) => current && setError(asApiError(e)),
    );
    return () => void (current = false);
  }, [jobId, image]);

  return (
    <Card title="Classify an image">
      <DropZone accept="image/png,image/jpeg" onFile={onImage} name="image">
        <strong>Drop a PNG or JPEG here, or click to choose one</strong>
        <span>It is resized to the network's input as the dataset's images were.</span>
      </DropZone>
      {imageUrl && (
        <div class="classified">
          <PixelImage src={imageUrl} alt={image?.name ?? "The image"} fit={112} />
          <div class="guesses">
            {guesses ? <ProbabilityBars guesses={guesses} /> : !error && <Loading />}
            <ModelError error={error} />
          </div>
        </div>
      )}
    </Card>
  );
}

export function ActivationsCard({
  jobId,
  image,
  layers,
}: {
  jobId: number;
  image: File | null;
  layers: Layer[];
}) {
  const [layer, setLayer] = useState("");
  const chosen = layer || layers.find((l) => l.type === "conv")?.name || layers[0]?.name || "";
  const activations = useImageRequest(
    image && chosen
      ? () =>
          postFormForImage(
            `/jobs/${jobId}/activations?layer=${encodeURIComponent(chosen)}`,
            imageForm(image),
          )
      : null,
    [jobId, image, chosen],
  );
  return (
    <Card
      title="Activations"
      actions={
        <select
          name="layer"
          aria-label="Layer"
          value={chosen}
          onChange={(e) => setLayer(e.currentTarget.value)}
        >
          {layers.map((l) => (
            <option value={l.name}>
              {l.name} ({l.type}, {l.output.slice(1).join("×")})
            </option>
          ))}
        </select>
      }
    >
      {!image && (
        <p class="muted">Choose an image to classify: each channel of the layer shows as a tile.</p>
      )}
      {activations.loading && <Loading />}
      {activations.src && (
        <PixelImage src={activations.src} alt={`Activations of ${chosen}`} fit={560} maxScale={4} />
      )}
      <ModelError error={activations.error} />
    </Card>
  );
}
