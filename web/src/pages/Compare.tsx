// Placeholder: being written.
export function ComparePage({ query }: { query: URLSearchParams }) {
  return <p>{query.toString()}</p>;
}
