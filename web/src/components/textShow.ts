// Text from datasets and samples, shown as it is: newlines kept, other control characters made
// visible as escapes (never interpreted), and single symbols named where they would be blank.

const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f]/g;

/** `text` with control characters other than newline and tab written as \r, \xNN. */
export function visibleText(text: string): string {
  return text.replace(CONTROL, (c) =>
    c === "\r" ? "\\r" : `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`,
  );
}

const NAMED: Record<string, string> = {
  " ": "␣ space",
  "\n": "↵ newline",
  "\t": "⇥ tab",
  "\r": "\\r",
};

/** A vocabulary symbol as a label: blank ones named ("␣ space"), runs of spaces counted. */
export function symbolLabel(symbol: string): string {
  if (NAMED[symbol]) return NAMED[symbol];
  if (/^ +$/.test(symbol)) return `␣×${symbol.length} spaces`;
  if (/^\s+$/.test(symbol)) return visibleText(symbol).replace(/\t/g, "⇥").replace(/ /g, "␣");
  return visibleText(symbol);
}
