// The trainer's log, following new lines; it stays scrolled to the end unless the reader
// scrolled up.
import { useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";
import { getText } from "../api";
import { LogBuffer, logLines } from "./logBuffer";

const TAIL_BYTES = 32768;

export function LogTail({ id, buffer }: { id: number; buffer: LogBuffer }) {
  const pre = useRef<HTMLPreElement>(null);
  const atEnd = useRef(true);
  const [, setVersion] = useState(0);

  useEffect(() => {
    let frame = 0;
    const stop = buffer.subscribe(() => {
      if (!frame) frame = requestAnimationFrame(() => ((frame = 0), setVersion((v) => v + 1)));
    });
    getText(`/jobs/${id}/log?bytes=${TAIL_BYTES}`).then(
      (text) => buffer.setTail(logLines(text, text.length >= TAIL_BYTES)),
      () => buffer.setTail([]),
    );
    return () => (stop(), cancelAnimationFrame(frame));
  }, [id, buffer]);

  useLayoutEffect(() => {
    if (atEnd.current && pre.current) pre.current.scrollTop = pre.current.scrollHeight;
  });

  const lines = buffer.lines();
  return (
    <pre
      class="log job-log"
      ref={pre}
      onScroll={(e) => {
        const el = e.currentTarget;
        atEnd.current = el.scrollTop + el.clientHeight >= el.scrollHeight - 8;
      }}
    >
      {lines.length ? lines.join("\n") : "No log yet."}
    </pre>
  );
}
