// The `train:` section of a network file, read in the browser: the validation's `network` gives
// batch, epochs, solver, lr and lr_policy but not gamma, step_size, milestones, warmup_iters or
// power, which the learning-rate plot needs as the file sets them.
import { yamlLanguage } from "@codemirror/lang-yaml";
import type { SyntaxNode } from "@lezer/common";

const MAPPINGS = ["BlockMapping", "FlowMapping"];

function pairsOf(mapping: SyntaxNode | null): SyntaxNode[] {
  return mapping && MAPPINGS.includes(mapping.name) ? mapping.getChildren("Pair") : [];
}

/** A pair's value as written; a sequence as its items joined by commas ("10,20"). */
function valueText(pair: SyntaxNode, text: string): string {
  const value = pair.lastChild;
  if (!value || value.name === "Key" || value.name === ":") return "";
  if (/Sequence/.test(value.name))
    return value
      .getChildren("Item")
      .map((item) => text.slice(item.from, item.to).trim())
      .join(",");
  return text.slice(value.from, value.to).trim();
}

/** Each key of the file's top-level `train` mapping with its value's text; {} when absent. */
export function recipeInFile(text: string): Record<string, string> {
  const document = yamlLanguage.parser.parse(text).topNode.getChild("Document");
  const top = document && MAPPINGS.map((m) => document.getChild(m)).find(Boolean);
  const keyOf = (pair: SyntaxNode) => {
    const key = pair.getChild("Key");
    return key ? text.slice(key.from, key.to).trim() : "";
  };
  const train = pairsOf(top ?? null).find((p) => keyOf(p) === "train");
  const recipe: Record<string, string> = {};
  for (const pair of pairsOf(train?.lastChild ?? null)) recipe[keyOf(pair)] = valueText(pair, text);
  return recipe;
}
