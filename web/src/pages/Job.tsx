// Placeholder: being written.
export function JobPage({ id }: { id: number }) {
  return <p>{id}</p>;
}
