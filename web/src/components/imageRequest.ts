// An image the server draws on request (filters, activations), as an object URL that is
// released when a newer one replaces it or the component goes away.
import { useEffect, useState } from "preact/hooks";
import type { ApiError } from "../api";
import { asApiError } from "./ui";

/** Runs `request` when `deps` change; a null request clears the image. */
export function useImageRequest(request: (() => Promise<string>) | null, deps: unknown[]) {
  const [src, setSrc] = useState<string | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [loading, setLoading] = useState(false);
  useEffect(() => {
    let current = true;
    let made: string | null = null;
    setError(null);
    setSrc(null);
    setLoading(!!request);
    if (!request) return;
    request()
      .then(
        (url) => (current ? setSrc((made = url)) : URL.revokeObjectURL(url)),
        (e) => current && setError(asApiError(e)),
      )
      .finally(() => current && setLoading(false));
    return () => {
      current = false;
      if (made) URL.revokeObjectURL(made);
    };
  }, deps);
  return { src, error, loading };
}

/** An object URL for a local file (an image to classify), released with the file. */
export function useFileUrl(file: File | null): string | null {
  const [src, setSrc] = useState<string | null>(null);
  useEffect(() => {
    if (!file) return setSrc(null);
    const made = URL.createObjectURL(file);
    setSrc(made);
    return () => URL.revokeObjectURL(made);
  }, [file]);
  return src;
}
