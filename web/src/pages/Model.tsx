// Placeholder: being written.
export function ModelPage({ id }: { id: number }) {
  return <p>{id}</p>;
}
