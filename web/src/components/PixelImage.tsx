// A small image (a dataset's mean, a grid of thumbnails, filters) scaled up by a whole factor,
// with sharp pixels, to about `fit` pixels wide; never shrunk below its own size. While it
// loads it shows nothing; if it fails, the alt text says what is missing.
import { useEffect, useState } from "preact/hooks";

export function PixelImage({
  src,
  alt,
  fit = 280,
  maxScale = 8,
  class: extra = "",
}: {
  src: string;
  alt: string;
  fit?: number;
  maxScale?: number;
  class?: string;
}) {
  const [width, setWidth] = useState<number | undefined>(undefined);
  const [failed, setFailed] = useState(false);
  useEffect(() => setFailed(false), [src]);
  if (failed) return <p class="muted">{alt}: could not be loaded.</p>;
  return (
    <img
      class={`pixel ${extra}`}
      src={src}
      alt={alt}
      style={width ? { width: `${width}px`, maxWidth: "100%" } : { visibility: "hidden" }}
      onLoad={(e) => {
        const natural = e.currentTarget.naturalWidth;
        setWidth(natural * Math.max(1, Math.min(maxScale, Math.floor(fit / natural))));
      }}
      onError={() => setFailed(true)}
    />
  );
}
