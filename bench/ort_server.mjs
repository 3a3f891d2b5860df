// The peer of `myelin serve-model` for bench/serve-model.sh: an ONNX model in onnxruntime-node
// (CPU) behind the same HTTP protocol and the same dynamic batching policy, so that the bench
// compares server with server.
//
//   node bench/ort_server.mjs MODEL.onnx [--port 8001] [--max-batch 32] [--max-delay-ms 2]
//                             [--threads 0]
//
//   POST /v1/predict  float32 little-endian [n, C, H, W] (application/octet-stream, X-Shape:
//                     n,C,H,W or n from the body's size) -> {"probabilities": [[...]], "top": ...}
//   GET  /v1/health   {"status": "ready", "model", "input": [C, H, W], "classes"}
//
// Batching: the oldest queued request waits until it is max-delay old for others; then up to
// max-batch examples (whole requests) run as one batch. One batch runs at a time, on one
// InferenceSession with `threads` intra-op threads (0: onnxruntime's default, every core).
// onnxruntime-node comes from tests/onnx/node_modules (npm ci --ignore-scripts there), or from
// the folder $ORT_NODE_DIR names.
import { createRequire } from 'node:module';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(
  path.join(process.env.ORT_NODE_DIR || path.join(here, '..', 'tests', 'onnx'), 'package.json'));
const ort = require('onnxruntime-node');

function options(argv) {
  const o = { model: null, port: 8001, maxBatch: 32, maxDelayMs: 2, threads: 0 };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    if (!flag.startsWith('--')) { o.model = flag; continue; }
    const value = Number(argv[++i]);
    if (!Number.isFinite(value)) throw new Error(`${flag} needs a number`);
    if (flag === '--port') o.port = value;
    else if (flag === '--max-batch') o.maxBatch = value;
    else if (flag === '--max-delay-ms') o.maxDelayMs = value;
    else if (flag === '--threads') o.threads = value;
    else throw new Error(`unknown flag ${flag}`);
  }
  if (!o.model) throw new Error('usage: ort_server.mjs MODEL.onnx [--port N] ...');
  return o;
}

// Requests wait in `queue`; one batch runs at a time.
class Batcher {
  constructor(session, example, classes, o) {
    Object.assign(this, { session, example, classes, o, queue: [], running: false, timer: null });
  }

  run(input, n) {
    return new Promise((resolve, reject) => {
      this.queue.push({ input, n, arrived: performance.now(), resolve, reject });
      this.kick();
    });
  }

  // Starts a batch when the oldest request has waited long enough or a batch is full.
  kick() {
    if (this.running || this.queue.length === 0) return;
    let queued = 0;
    for (const r of this.queue) queued += r.n;
    const wait = this.queue[0].arrived + this.o.maxDelayMs - performance.now();
    if (queued < this.o.maxBatch && wait > 0) {
      if (!this.timer) this.timer = setTimeout(() => { this.timer = null; this.kick(); }, wait);
      return;
    }
    const batch = [];
    let n = 0;
    while (this.queue.length && (n === 0 || n + this.queue[0].n <= this.o.maxBatch)) {
      n += this.queue[0].n;
      batch.push(this.queue.shift());
    }
    this.execute(batch, n);
  }

  async execute(batch, n) {
    this.running = true;
    try {
      const data = new Float32Array(n * this.example);
      let row = 0;
      for (const r of batch) { data.set(r.input, row * this.example); row += r.n; }
      const dims = [n, ...this.inputDims];
      const out = await this.session.run({ [this.session.inputNames[0]]: new ort.Tensor('float32', data, dims) });
      const p = out.probabilities.data;
      row = 0;
      for (const r of batch) {
        r.resolve(p.slice(row * this.classes, (row + r.n) * this.classes));
        row += r.n;
      }
    } catch (e) {
      for (const r of batch) r.reject(e);
    }
    this.running = false;
    this.kick();
  }
}

function top(row, k) {
  const order = [...row.keys()].sort((a, b) => row[b] - row[a] || a - b).slice(0, k);
  return order.map((label) => ({ label, name: String(label), probability: row[label] }));
}

function send(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

async function predict(req, res, body, batcher, health) {
  if ((req.headers['content-type'] || '') !== 'application/octet-stream')
    return send(res, 415, { error: 'send application/octet-stream float32', status: 415 });
  if (body.length % 4 !== 0) return send(res, 400, { error: 'not float32', status: 400 });
  const values = new Float32Array(body.buffer.slice(body.byteOffset, body.byteOffset + body.length));
  const n = values.length / batcher.example;
  const shape = req.headers['x-shape'];
  const want = [n, ...health.input].join(',');
  if (!Number.isInteger(n) || n < 1 || (shape && shape.replace(/ /g, '') !== want))
    return send(res, 400, { error: `expected [N, ${health.input}] float32`, status: 400 });
  const p = await batcher.run(values, n);
  const rows = [];
  for (let i = 0; i < n; i++) rows.push(Array.from(p.subarray(i * batcher.classes, (i + 1) * batcher.classes)));
  send(res, 200, { probabilities: rows, top: rows.map((r) => top(r, 5)) });
}

async function main() {
  const o = options(process.argv.slice(2));
  const sessionOptions = { graphOptimizationLevel: 'all', executionMode: 'sequential' };
  if (o.threads > 0) sessionOptions.intraOpNumThreads = o.threads;
  const session = await ort.InferenceSession.create(o.model, sessionOptions);
  const input = session.inputMetadata?.[0]?.shape?.slice(1);
  if (!input || input.some((d) => typeof d !== 'number'))
    throw new Error(`${o.model}: no fixed input shape [N, C, H, W] in the model`);
  const example = input.reduce((a, b) => a * b, 1);
  // The number of classes from one run on zeros (the output's shape is symbolic in N).
  const probe = await session.run({ [session.inputNames[0]]: new ort.Tensor('float32', new Float32Array(example), [1, ...input]) });
  const classes = probe.probabilities.dims[1];
  const batcher = new Batcher(session, example, classes, o);
  batcher.inputDims = input;
  const health = { status: 'ready', model: path.basename(o.model), input, classes };
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const route = req.url.split('?')[0];
      if (req.method === 'GET' && route === '/v1/health') return send(res, 200, health);
      if (req.method === 'POST' && route === '/v1/predict')
        return predict(req, res, Buffer.concat(chunks), batcher, health)
          .catch((e) => send(res, 500, { error: String(e), status: 500 }));
      send(res, 404, { error: `no such route: ${req.method} ${route}`, status: 404 });
    });
  });
  server.keepAliveTimeout = 30000;
  server.listen(o.port, '127.0.0.1', () => {
    console.log(`ort_server: ${o.model} (onnxruntime ${ort.env.versions?.common ?? ''}), max batch ${o.maxBatch}\n  serving at http://127.0.0.1:${server.address().port}/v1/`);
  });
  for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => server.close(() => process.exit(0)) && setTimeout(() => process.exit(0), 500));
}

main().catch((e) => { console.error(`ort_server: ${e.message}`); process.exit(2); });
