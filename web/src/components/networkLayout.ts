// A network's layers as a graph laid out by elkjs: one box per layer (and one for the input),
// edges from each layer's `inputs` (none given: the previous layer's output).
import ELK from "elkjs/lib/elk.bundled.js";
import type { ElkExtendedEdge, ElkNode } from "elkjs/lib/elk-api";
import type { Layer, Network } from "../api";

export const NODE_WIDTH = 210;
export const NODE_HEIGHT = 64;
const INPUT_ID = "(input)";

export interface PlacedNode {
  id: string;
  x: number;
  y: number;
  layer: Layer | null; // null: the network's input
}

export interface PlacedEdge {
  id: string;
  points: { x: number; y: number }[];
}

export interface GraphLayout {
  width: number;
  height: number;
  nodes: PlacedNode[];
  edges: PlacedEdge[];
}

const elk = new ELK();

const LAYOUT_OPTIONS = {
  "elk.algorithm": "layered",
  "elk.direction": "DOWN",
  "elk.edgeRouting": "ORTHOGONAL",
  "elk.layered.nodePlacement.strategy": "BRANDES_KOEPF",
  "elk.layered.spacing.nodeNodeBetweenLayers": "26",
  "elk.spacing.nodeNode": "30",
  "elk.padding": "[top=12,left=12,bottom=12,right=12]",
};

/** Each layer's sources: the names in `inputs` that are layers, else the input; none: the previous. */
function edgesOf(layers: Layer[]): ElkExtendedEdge[] {
  const names = new Set(layers.map((l) => l.name));
  return layers.flatMap((layer, i) => {
    const previous = i === 0 ? INPUT_ID : layers[i - 1].name;
    const sources = layer.inputs.length ? layer.inputs : [previous];
    return sources.map((source, k) => ({
      id: `${layer.name}<${k}`,
      sources: [names.has(source) ? source : INPUT_ID],
      targets: [layer.name],
    }));
  });
}

/** Lays `network` out; positions are in pixels at zoom 1. */
export async function layoutNetwork(network: Network): Promise<GraphLayout> {
  const box = { width: NODE_WIDTH, height: NODE_HEIGHT };
  const graph: ElkNode = {
    id: "network",
    layoutOptions: LAYOUT_OPTIONS,
    children: [{ id: INPUT_ID, ...box }, ...network.layers.map((l) => ({ id: l.name, ...box }))],
    edges: edgesOf(network.layers),
  };
  const placed = await elk.layout(graph);
  const byName = new Map(network.layers.map((l) => [l.name, l]));
  return {
    width: placed.width ?? 0,
    height: placed.height ?? 0,
    nodes: (placed.children ?? []).map((n) => ({
      id: n.id,
      x: n.x ?? 0,
      y: n.y ?? 0,
      layer: byName.get(n.id) ?? null,
    })),
    edges: (placed.edges ?? []).map((e) => ({
      id: e.id,
      points: ((e as ElkExtendedEdge).sections ?? []).flatMap((s) => [
        s.startPoint,
        ...(s.bendPoints ?? []),
        s.endPoint,
      ]),
    })),
  };
}
