// The network file in CodeMirror 6 (YAML): the server's validation errors underline their line
// (from the column where the parser gives one) and are listed below in words; clicking one
// puts the cursor on its line.
import { useEffect, useRef } from "preact/hooks";
import { basicSetup } from "codemirror";
import { yaml } from "@codemirror/lang-yaml";
import { lintGutter, setDiagnostics, type Diagnostic } from "@codemirror/lint";
import { EditorState, type Text } from "@codemirror/state";
import { EditorView } from "@codemirror/view";
import type { ValidationError } from "../api";

/** "network.yaml:6: 'relux': unknown ..." -> "'relux': unknown ..." (the line is shown apart). */
export function errorText(error: ValidationError): string {
  return error.message.replace(/^network\.yaml:\d+:\s*/, "");
}

function diagnosticOf(doc: Text, error: ValidationError): Diagnostic | null {
  if (!error.line || error.line > doc.lines) return null;
  const line = doc.line(error.line);
  const column = error.column ? Math.min(error.column - 1, line.length) : 0;
  const from = line.from + Math.max(0, column);
  return { from, to: Math.max(from, line.to), severity: "error", message: errorText(error) };
}

interface Props {
  text: string;
  errors: ValidationError[];
  onChange: (text: string) => void;
}

export function NetworkEditor({ text, errors, onChange }: Props) {
  const host = useRef<HTMLDivElement>(null);
  const view = useRef<EditorView | null>(null);
  const changed = useRef(onChange);
  changed.current = onChange;

  useEffect(() => {
    const editor = new EditorView({
      parent: host.current!,
      state: EditorState.create({
        doc: text,
        extensions: [
          basicSetup,
          yaml(),
          lintGutter(),
          EditorView.updateListener.of(
            (u) => u.docChanged && changed.current(u.state.doc.toString()),
          ),
        ],
      }),
    });
    view.current = editor;
    return () => editor.destroy();
  }, []);

  // A text from outside (another standard network picked) replaces the document.
  useEffect(() => {
    const editor = view.current;
    if (editor && editor.state.doc.toString() !== text)
      editor.dispatch({ changes: { from: 0, to: editor.state.doc.length, insert: text } });
  }, [text]);

  useEffect(() => {
    const editor = view.current;
    if (!editor) return;
    const doc = editor.state.doc;
    const marks = errors.map((e) => diagnosticOf(doc, e)).filter((d) => d !== null);
    editor.dispatch(setDiagnostics(editor.state, marks));
  }, [errors]);

  const goTo = (line: number) => {
    const editor = view.current!;
    const doc = editor.state.doc;
    editor.dispatch({
      selection: { anchor: doc.line(Math.min(line, doc.lines)).from },
      scrollIntoView: true,
    });
    editor.focus();
  };

  return (
    <div class="network-editor">
      <div class="editor-host" ref={host} />
      {errors.length > 0 && (
        <ul class="editor-errors" role="alert">
          {errors.map((e) => (
            <li>
              {e.line ? (
                <button type="button" class="link" onClick={() => goTo(e.line!)}>
                  Line {e.line}
                  {e.column ? `, column ${e.column}` : ""}
                </button>
              ) : null}{" "}
              {errorText(e)}
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}
