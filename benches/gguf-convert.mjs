// Converting a multi-GB GGUF streams: writes a synthetic GGUF of Llama-2-7B's shapes (dim 4096, FFN
// 11008, vocab 32000, Q8_0 matrices, random weights; --layers of them) with the SDK's GgufWriter, then
// runs `flashllm convert` on it in a child process and prints its peak RSS (VmHWM) and time.
// Usage: node benches/gguf-convert.mjs [--layers 8] [--type Q8_0|F16|Q4_0] [--dtype keep|q8|f32] [--dir /tmp] [--keep]
import { spawn } from "node:child_process";
import { open, rm, stat } from "node:fs/promises";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { GgmlType, GgufWriter, kv } from "../packages/sdk/dist/internal.js";

const arg = (name, def) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : def;
};
const layers = Number(arg("layers", "8"));
const type = GgmlType[arg("type", "Q8_0")];
const dtype = arg("dtype", "keep");
const dir = arg("dir", "/tmp");
const root = fileURLToPath(new URL("..", import.meta.url));
const [dim, hidden, vocab, heads] = [4096, 11008, 32000, 32];
const ggufPath = join(dir, `synth-7b-${layers}l-${arg("type", "Q8_0")}.gguf`);
const flmPath = join(dir, `synth-7b-${layers}l.flm`);

/** Positional file sink. */
async function fileSink(path) {
  const h = await open(path, "w");
  return {
    async write(offset, bytes) {
      let done = 0;
      while (done < bytes.byteLength) done += (await h.write(bytes, done, bytes.byteLength - done, offset + done)).bytesWritten;
    },
    close: () => h.close(),
  };
}

// A tokenizer llama.cpp would accept: unk/bos/eos, 256 byte tokens, filler pieces.
const tokens = ["<unk>", "<s>", "</s>", ...Array.from({ length: 256 }, (_, i) => `<0x${i.toString(16).toUpperCase().padStart(2, "0")}>`)];
while (tokens.length < vocab) tokens.push(`▁t${tokens.length}`);
const meta = [
  kv.str("general.architecture", "llama"),
  kv.u32("llama.context_length", 4096),
  kv.u32("llama.embedding_length", dim),
  kv.u32("llama.block_count", layers),
  kv.u32("llama.feed_forward_length", hidden),
  kv.u32("llama.rope.dimension_count", dim / heads),
  kv.u32("llama.attention.head_count", heads),
  kv.u32("llama.attention.head_count_kv", heads),
  kv.f32("llama.attention.layer_norm_rms_epsilon", 1e-5),
  kv.str("tokenizer.ggml.model", "llama"),
  kv.strs("tokenizer.ggml.tokens", tokens),
  kv.f32s("tokenizer.ggml.scores", tokens.map((_, i) => -i)),
  kv.i32s("tokenizer.ggml.token_type", tokens.map((_, i) => (i === 0 ? 2 : i < 3 ? 3 : i < 259 ? 6 : 1))),
  kv.u32("tokenizer.ggml.bos_token_id", 1),
  kv.u32("tokenizer.ggml.eos_token_id", 2),
];
const list = [["token_embd.weight", [dim, vocab]]];
for (let l = 0; l < layers; l++) {
  for (const [n, d] of [["attn_norm", [dim]], ["attn_q", [dim, dim]], ["attn_k", [dim, dim]], ["attn_v", [dim, dim]], ["attn_output", [dim, dim]], ["ffn_norm", [dim]], ["ffn_gate", [dim, hidden]], ["ffn_up", [dim, hidden]], ["ffn_down", [hidden, dim]]]) {
    list.push([`blk.${l}.${n}.weight`, d]);
  }
}
list.push(["output_norm.weight", [dim]], ["output.weight", [dim, vocab]]);

let t0 = performance.now();
const sink = await fileSink(ggufPath);
const w = new GgufWriter(sink, meta, list.map(([name, dims]) => ({ name, dims, type: dims.length === 1 ? GgmlType.F32 : type })));
// One random chunk reused everywhere: content does not matter here, memory and bytes do.
const CHUNK = 1 << 20;
const noise = Float32Array.from({ length: CHUNK }, (_, i) => Math.sin(i * 12.9898) * 0.05);
const ones = new Float32Array(dim).fill(1);
for (const [name, dims] of list) {
  const n = dims.reduce((a, b) => a * b, 1);
  if (dims.length === 1) await w.write(name, ones);
  else for (let at = 0; at < n; at += CHUNK) await w.write(name, noise.subarray(0, Math.min(CHUNK, n - at)));
}
await w.finish();
await sink.close();
const ggufBytes = (await stat(ggufPath)).size;
console.log(`wrote ${ggufPath}: ${(ggufBytes / 2 ** 30).toFixed(2)} GiB in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

t0 = performance.now();
const child = spawn(process.execPath, [join(root, "packages/node-io/dist/cli.js"), "convert", ggufPath, flmPath, "--dtype", dtype], { stdio: ["ignore", "ignore", "inherit"] });
let peak = 0;
const poll = setInterval(() => {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, "utf8"));
    if (m) peak = Math.max(peak, Number(m[1]) * 1024);
  } catch {}
}, 200);
const code = await new Promise((r) => child.on("exit", r));
clearInterval(poll);
const flmBytes = code === 0 ? (await stat(flmPath)).size : 0;
console.log(`convert (--dtype ${dtype}): exit ${code}, ${((performance.now() - t0) / 1000).toFixed(1)} s, peak RSS ${(peak / 2 ** 20).toFixed(0)} MiB; .flm ${(flmBytes / 2 ** 30).toFixed(2)} GiB`);
if (!process.argv.includes("--keep")) await Promise.all([rm(ggufPath, { force: true }), rm(flmPath, { force: true })]);
