// Placeholder: being written.
export function NewJobPage({ query }: { query: URLSearchParams }) {
  return <p>{query.toString()}</p>;
}
