// A network drawn as a graph (elkjs layout, SVG): a box per layer with its type, output shape,
// parameters and FLOPs; the totals beside it. Large networks scroll; the zoom buttons (and
// Ctrl + wheel) scale the drawing.
import { useEffect, useRef, useState } from "preact/hooks";
import type { Layer, Network } from "../api";
import { count } from "../format";
import {
  NODE_HEIGHT,
  NODE_WIDTH,
  layoutNetwork,
  type GraphLayout,
  type PlacedEdge,
  type PlacedNode,
} from "./networkLayout";
import "./NetworkGraph.css";

const ZOOM_STEP = 1.25;
const MIN_ZOOM = 0.2;
const MAX_ZOOM = 3;

/** A color family per kind of layer (the class names are in NetworkGraph.css). */
function kindOf(type: string): string {
  if (/conv/.test(type)) return "conv";
  if (/pool/.test(type)) return "pool";
  if (type === "fc" || type === "inner_product") return "fc";
  if (/norm|lrn/.test(type)) return "norm";
  if (/relu|elu|tanh|sigmoid|softmax/.test(type)) return "activation";
  if (type === "add" || type === "concat" || type === "mul") return "merge";
  return "other";
}

/** [1, 20, 24, 24] -> "20×24×24": the shape of one example (the batch dimension dropped). */
function shapeText(dims: number[], hasBatch: boolean): string {
  return (hasBatch ? dims.slice(1) : dims).join("×");
}

function Node({ node, input }: { node: PlacedNode; input: number[] }) {
  const { layer } = node;
  const kind = layer ? kindOf(layer.type) : "input";
  const cost = layer && (layer.params || layer.flops) ? costText(layer) : "";
  return (
    <g
      class={`node kind-${kind}`}
      data-layer={layer?.name}
      transform={`translate(${node.x},${node.y})`}
    >
      <title>{layer ? `${layer.name} (${layer.type})` : "The network's input"}</title>
      <rect width={NODE_WIDTH} height={NODE_HEIGHT} rx={6} />
      <rect class="band" width={5} height={NODE_HEIGHT} rx={2} />
      <text class="name" x={14} y={20}>
        {layer ? layer.name : "input"}
      </text>
      <text class="type" x={NODE_WIDTH - 10} y={20} text-anchor="end">
        {layer ? layer.type : ""}
      </text>
      <text class="shape" x={14} y={39}>
        {layer ? shapeText(layer.output, true) : shapeText(input, false)}
      </text>
      <text class="cost" x={14} y={55}>
        {cost}
      </text>
    </g>
  );
}

function costText(layer: Layer): string {
  const params = layer.params ? `${count(layer.params)} params` : "";
  const flops = layer.flops ? `${count(layer.flops)} FLOPs` : "";
  return [params, flops].filter(Boolean).join(" · ");
}

function Edge({ edge }: { edge: PlacedEdge }) {
  const d = edge.points.map((p, i) => `${i ? "L" : "M"}${p.x},${p.y}`).join(" ");
  return <path class="edge" d={d} marker-end="url(#network-graph-arrow)" />;
}

function Totals({ network }: { network: Network }) {
  const rows: [string, string][] = [
    ["Parameters", count(network.params)],
    [
      `FLOPs per ${network.input_type === "tokens" ? "sequence" : "image"} (forward)`,
      count(network.flops),
    ],
    ["Layers", String(network.layers.length)],
    ["Input", shapeText(network.input, false)],
    ["Classes", String(network.classes)],
  ];
  return (
    <dl class="network-totals">
      {rows.map(([label, value]) => (
        <div key={label}>
          <dt>{label}</dt>
          <dd>{value}</dd>
        </div>
      ))}
    </dl>
  );
}

/** The layout of `network`, redone when its layers change; null until the first is ready. */
function useLayout(network: Network) {
  const [layout, setLayout] = useState<GraphLayout | null>(null);
  const [error, setError] = useState<string | null>(null);
  const structure = JSON.stringify([network.input, network.layers]);
  useEffect(() => {
    let current = true;
    layoutNetwork(network).then(
      (l) => current && (setLayout(l), setError(null)),
      (e) => current && setError(String(e)),
    );
    return () => {
      current = false;
    };
  }, [structure]);
  return { layout, error };
}

function ZoomButtons({
  zoom,
  setZoom,
  fit,
}: {
  zoom: number;
  setZoom: (z: number) => void;
  fit: () => void;
}) {
  const clamp = (z: number) => Math.min(MAX_ZOOM, Math.max(MIN_ZOOM, z));
  return (
    <div class="zoom">
      <button type="button" onClick={() => setZoom(clamp(zoom / ZOOM_STEP))} aria-label="Zoom out">
        −
      </button>
      <span class="muted">{Math.round(zoom * 100)}%</span>
      <button type="button" onClick={() => setZoom(clamp(zoom * ZOOM_STEP))} aria-label="Zoom in">
        +
      </button>
      <button type="button" onClick={fit}>
        Fit
      </button>
      <button type="button" onClick={() => setZoom(1)}>
        100%
      </button>
    </div>
  );
}

export function NetworkGraph({ network }: { network: Network }) {
  const { layout, error } = useLayout(network);
  const [zoom, setZoom] = useState(1);
  const viewport = useRef<HTMLDivElement>(null);

  const fit = () => {
    const box = viewport.current;
    if (!box || !layout) return;
    const scale = Math.min(box.clientWidth / layout.width, box.clientHeight / layout.height, 1);
    setZoom(Math.max(MIN_ZOOM, scale));
  };
  const onWheel = (e: WheelEvent) => {
    if (!e.ctrlKey) return;
    e.preventDefault();
    setZoom((z) => Math.min(MAX_ZOOM, Math.max(MIN_ZOOM, z * (e.deltaY < 0 ? 1.1 : 1 / 1.1))));
  };

  return (
    <div class="network-graph">
      <div class="graph-pane">
        <ZoomButtons zoom={zoom} setZoom={setZoom} fit={fit} />
        <div class="viewport" ref={viewport} onWheel={onWheel}>
          {error && <p class="error">The graph could not be laid out: {error}</p>}
          {layout && (
            <svg
              width={layout.width * zoom}
              height={layout.height * zoom}
              viewBox={`0 0 ${layout.width} ${layout.height}`}
              role="img"
              aria-label={`${network.name}: ${network.layers.length} layers`}
            >
              <defs>
                <marker
                  id="network-graph-arrow"
                  viewBox="0 0 10 10"
                  refX="9"
                  refY="5"
                  markerWidth="7"
                  markerHeight="7"
                  orient="auto"
                >
                  <path d="M0,0 L10,5 L0,10 z" />
                </marker>
              </defs>
              {layout.edges.map((e) => (
                <Edge key={e.id} edge={e} />
              ))}
              {layout.nodes.map((n) => (
                <Node key={n.id} node={n} input={network.input} />
              ))}
            </svg>
          )}
        </div>
      </div>
      <Totals network={network} />
    </div>
  );
}
