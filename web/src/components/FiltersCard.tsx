// A convolution's learned filters, one tile each; the first layer's show what the network
// looks for in the pixels.
import { useEffect, useState } from "preact/hooks";
import { getImage, type Layer } from "../api";
import { useImageRequest } from "./imageRequest";
import { ModelError } from "./ModelError";
import { PixelImage } from "./PixelImage";
import { Card, Loading } from "./ui";

export function FiltersCard({
  jobId,
  convLayers,
  onNoWeights,
}: {
  jobId: number;
  convLayers: Layer[];
  onNoWeights: () => void;
}) {
  const [layer, setLayer] = useState("");
  const chosen = layer || convLayers[0]?.name || "";
  const filters = useImageRequest(
    chosen
      ? () => getImage(`/jobs/${jobId}/filters.png?layer=${encodeURIComponent(chosen)}`)
      : null,
    [jobId, chosen],
  );
  useEffect(() => {
    if (filters.error?.status === 409) onNoWeights();
  }, [filters.error]);
  return (
    <Card
      title="Filters"
      actions={
        convLayers.length > 1 && (
          <select
            name="filters-layer"
            aria-label="Convolution"
            value={chosen}
            onChange={(e) => setLayer(e.currentTarget.value)}
          >
            {convLayers.map((l) => (
              <option value={l.name}>
                {l.name} ({l.output[1] ?? "?"} filters)
              </option>
            ))}
          </select>
        )
      }
    >
      {filters.loading && <Loading />}
      {filters.src && (
        <div class="filters-scroll">
          <PixelImage src={filters.src} alt={`Filters of ${chosen}`} fit={520} maxScale={4} />
        </div>
      )}
      {filters.error?.status === 409 ? (
        <p class="muted">No filters until the job has weights.</p>
      ) : (
        <ModelError error={filters.error} />
      )}
      {convLayers.length === 0 && <p class="muted">This network has no convolution.</p>}
    </Card>
  );
}
