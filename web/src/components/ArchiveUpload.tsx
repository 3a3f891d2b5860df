// Uploads an archive of class folders, or for a text dataset a text file or an archive of them
// (POST /uploads), showing how much has been sent.
import { useState } from "preact/hooks";
import { ApiError, postFormWithProgress } from "../api";
import { bytes } from "../format";
import { DropZone } from "./DropZone";
import { asApiError, ErrorBox, Progress } from "./ui";

export interface Upload {
  id: number;
  name: string;
  bytes: number;
  kind: "image" | "archive" | "text";
}

const ARCHIVES = ".zip,.tar,.tar.gz,.tgz";
const TEXTS = `text/plain,.txt,.text,.md,${ARCHIVES}`;

export function ArchiveUpload({
  upload,
  onUpload,
  text = false,
}: {
  upload: Upload | null;
  onUpload: (upload: Upload | null) => void;
  /** Text: a text file, or an archive of text files. */
  text?: boolean;
}) {
  const [sending, setSending] = useState<{ file: File; sent: number } | null>(null);
  const [error, setError] = useState<ApiError | null>(null);

  const send = (file: File) => {
    const form = new FormData();
    form.append("file", file);
    onUpload(null);
    setError(null);
    setSending({ file, sent: 0 });
    postFormWithProgress<Upload>("/uploads", form, (sent) => setSending({ file, sent }))
      .then(onUpload, (e) => setError(asApiError(e)))
      .finally(() => setSending(null));
  };

  return (
    <div class="archive-upload">
      {text ? (
        <DropZone accept={TEXTS} onFile={send} name="textfile">
          <strong>Drop a text file here, or click to choose one</strong>
          <span>UTF-8 text, or a .zip or .tar.gz of text files.</span>
        </DropZone>
      ) : (
        <DropZone accept={ARCHIVES} onFile={send} name="archive">
          <strong>Drop a .zip or .tar.gz here, or click to choose one</strong>
          <span>One folder per class, its images inside (PNG or JPEG).</span>
        </DropZone>
      )}
      {sending && (
        <div class="meter">
          <span>{sending.file.name}</span>
          <Progress value={sending.sent} label={`${(sending.sent * 100).toFixed(0)}% sent`} />
        </div>
      )}
      {upload && (
        <p class="upload-done">
          Uploaded <strong>{upload.name}</strong> ({bytes(upload.bytes)}).
        </p>
      )}
      <ErrorBox error={error} />
    </div>
  );
}
