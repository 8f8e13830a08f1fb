// Quality and size of the container dtypes on the shipped models: each model converted as f32, q8,
// f16, q8_0 and q4_0, then teacher-forced over held-out TinyStories text: mean loss (nats/token) and
// top-1 agreement with the f32 file, bundle bytes (read per active neuron) and resident bytes.
// Usage: node benches/dtype-quality.mjs [--positions 2000]
import { readFileSync } from "node:fs";
import { MemorySink, MemorySource, convertTensors, openFlashModel, readLlama2cCheckpoint, residentBytes } from "../packages/sdk/dist/internal.js";

const root = new URL("..", import.meta.url).pathname;
const positions = Number(process.argv[process.argv.indexOf("--positions") + 1] || 2000);
// run.c-style merging is quadratic in the text length: encode only what the positions need.
const text = readFileSync(`${root}test/data/tinystories_tail60k.txt`, "utf8").slice(0, positions * 5);
const models = [
  ["stories260K", "packages/node-io/models/stories260K/stories260K.bin", "silu"],
  ["stories260K-relu", "packages/node-io/models/stories260K-relu/stories260K_relu.bin", "relu"],
];
const tokBytes = new Uint8Array(readFileSync(`${root}packages/node-io/models/stories260K/tok512.bin`));
for (const [name, bin, activation] of models) {
  const ckpt = readLlama2cCheckpoint(new Uint8Array(readFileSync(root + bin)), { activation });
  const src = { config: ckpt.config, getTensor: (n) => ckpt.tensors.get(n) };
  const rows = [];
  let ref;
  for (const dtype of ["f32", "q8", "f16", "q8_0", "q4_0"]) {
    const sink = new MemorySink();
    const m = await convertTensors(src, { kind: "llama2c", bytes: tokBytes }, sink, { dtype });
    const model = await openFlashModel(new MemorySource(sink.bytes()));
    const ids = model.tokenizer.encode(text, true, false).slice(0, positions + 1);
    let loss = 0, agree = 0;
    const argmaxes = [];
    const window = model.config.seqLen;
    for (let p = 0; p < ids.length - 1; p++) {
      const pos = p % window;
      const logits = await model.transformer.forward(pos === 0 ? 1 : ids[p], pos);
      let max = -Infinity, arg = 0;
      for (let v = 0; v < logits.length; v++) if (logits[v] > max) { max = logits[v]; arg = v; }
      let z = 0;
      for (let v = 0; v < logits.length; v++) z += Math.exp(logits[v] - max);
      loss += -(logits[ids[p + 1]] - max - Math.log(z));
      argmaxes.push(arg);
      if (ref && ref[p] === arg) agree++;
    }
    if (!ref) ref = argmaxes;
    rows.push({ dtype, loss: loss / (ids.length - 1), agree: dtype === "f32" ? 1 : agree / (ids.length - 1), bundle: m.ffn.bundleBytes, resident: residentBytes(m) });
    await model.dispose();
  }
  console.log(`\n${name} (${positions} teacher-forced positions of test/data/tinystories_tail60k.txt)`);
  console.log("| dtype | loss (nats/token) | vs f32 | top-1 agreement with f32 | bundle bytes | resident bytes |");
  console.log("| --- | --- | --- | --- | --- | --- |");
  for (const r of rows) console.log(`| ${r.dtype} | ${r.loss.toFixed(4)} | ${r.dtype === "f32" ? "–" : `${(((r.loss - rows[0].loss) / rows[0].loss) * 100).toFixed(2)}%`} | ${(r.agree * 100).toFixed(2)}% | ${r.bundle} | ${r.resident} |`);
}
