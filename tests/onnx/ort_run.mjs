// Runs an ONNX model in onnxruntime (CPU) on tensors read from raw little-endian files and writes
// every output the same way, for tests that compare runtimes:
//
//   node ort_run.mjs MODEL OUT_DIR NAME:TYPE:DIMS:FILE...   (TYPE float32 | int64 | int32,
//                                                          DIMS like 2x1x28x28)
//
// writes OUT_DIR/OUTPUT.bin per output and OUT_DIR/outputs.json ({OUTPUT: {type, dims}}).
// Exit status 1 with the runtime's message when the model does not load or run.
import fs from 'node:fs';
import path from 'node:path';
import ort from 'onnxruntime-node';

const arrays = { float32: Float32Array, int64: BigInt64Array, int32: Int32Array };

function readInput(spec) {
  const [name, type, dims, file] = spec.split(':');
  const Array = arrays[type];
  if (!Array || !file) throw new Error(`bad input '${spec}': want NAME:TYPE:DIMS:FILE`);
  const bytes = fs.readFileSync(file);
  const data = new Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / Array.BYTES_PER_ELEMENT);
  return [name, new ort.Tensor(type, data, dims.split('x').map(Number))];
}

async function main() {
  const [model, outDir, ...inputs] = process.argv.slice(2);
  if (!model || !outDir || inputs.length === 0) {
    console.error('usage: node ort_run.mjs MODEL OUT_DIR NAME:TYPE:DIMS:FILE...');
    process.exit(2);
  }
  const session = await ort.InferenceSession.create(model, {
    executionProviders: ['cpu'],
    intraOpNumThreads: 2,
  });
  const results = await session.run(Object.fromEntries(inputs.map(readInput)));
  fs.mkdirSync(outDir, { recursive: true });
  const described = {};
  for (const [name, t] of Object.entries(results)) {
    fs.writeFileSync(path.join(outDir, `${name}.bin`), Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength));
    described[name] = { type: t.type, dims: t.dims };
  }
  fs.writeFileSync(path.join(outDir, 'outputs.json'), JSON.stringify(described));
}

main().catch((e) => {
  console.error(`ort_run: ${e.message}`);
  process.exit(1);
});
