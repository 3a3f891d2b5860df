// A network file checked by the server as it is typed (POST /networks/validate), 300 ms after
// the last change; an answer to an older text never replaces a newer one.
import { useEffect, useState } from "preact/hooks";
import { post, type ApiError, type Validation } from "../api";
import { asApiError } from "./ui";

const DEBOUNCE_MS = 300;

export interface ValidationRequest {
  text: string;
  dataset?: number;
  batch?: number;
  device: string;
  precision: string;
  solver?: string; // the optimizer's state counts in the memory needed
}

export function useValidation(request: ValidationRequest | null) {
  const [validation, setValidation] = useState<Validation | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [checking, setChecking] = useState(false);
  const key = JSON.stringify(request);
  useEffect(() => {
    if (!request) return;
    let current = true;
    setChecking(true);
    const timer = setTimeout(() => {
      post<Validation>("/networks/validate", request).then(
        (v) => current && (setValidation(v), setError(null), setChecking(false)),
        (e) => current && (setError(asApiError(e)), setChecking(false)),
      );
    }, DEBOUNCE_MS);
    return () => {
      current = false;
      clearTimeout(timer);
    };
  }, [key]);
  return { validation, error, checking };
}
