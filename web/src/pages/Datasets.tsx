// Placeholder: being written.
export function DatasetsPage() {
  return <p />;
}
