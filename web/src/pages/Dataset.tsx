// Placeholder: being written.
export function DatasetPage({ id }: { id: number }) {
  return <p>{id}</p>;
}
