// A model route's refusal in words: a 409 means the job has not written weights yet.
import type { ApiError } from "../api";
import { ErrorBox } from "./ui";

export const NO_WEIGHTS = "No weights yet — the job must write a checkpoint first.";

export function ModelError({ error }: { error: ApiError | null }) {
  if (error?.status === 409)
    return (
      <p class="notice no-weights" role="status">
        {NO_WEIGHTS}
      </p>
    );
  return <ErrorBox error={error} />;
}
