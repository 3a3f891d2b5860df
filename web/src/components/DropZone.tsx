// A file picker that also takes a file dragged onto it.
import type { ComponentChildren } from "preact";
import { useState } from "preact/hooks";
import "./DropZone.css";

export function DropZone({
  accept,
  onFile,
  children,
  name,
}: {
  accept: string;
  onFile: (file: File) => void;
  children: ComponentChildren;
  name?: string;
}) {
  const [over, setOver] = useState(false);
  const take = (files: FileList | null | undefined) => files?.[0] && onFile(files[0]);
  return (
    <label
      class={`drop-zone ${over ? "over" : ""}`}
      onDragOver={(e) => (e.preventDefault(), setOver(true))}
      onDragLeave={() => setOver(false)}
      onDrop={(e) => {
        e.preventDefault();
        setOver(false);
        take(e.dataTransfer?.files);
      }}
    >
      <input
        type="file"
        name={name}
        accept={accept}
        onChange={(e) => take(e.currentTarget.files)}
      />
      {children}
    </label>
  );
}
