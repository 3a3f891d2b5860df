// Placeholder: being written.
export function GpusPage() {
  return <p />;
}
