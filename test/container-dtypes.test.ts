// Container dtypes f16, q8_0, q4_0 on the shipped stories260K: bundles hold the values the ggml
// encodings give (checked against dequantize(quantize(row)) computed here), f16 runs bit for bit like
// an f32 file of the f16-rounded weights (the kernels' ABI promise), and GGUF blocks are copied into the
// resident section verbatim.
import { describe, expect, it } from "vitest";
import {
  GgmlType, MemorySink, MemorySource, bundleLayout, convertGguf, convertTensors, dequantize, f16ToF32, f32ToF16, openFlashModel, openFlm, openGguf, quantize,
  readLlama2cCheckpoint, unpackBundle, type TensorSource,
} from "@flashllm/sdk/internal";
import { STORIES_BIN, STORIES_TOK, readBytes } from "./helpers.js";
import { storiesGguf } from "./gguf-helpers.js";

const ckpt = readLlama2cCheckpoint(readBytes(STORIES_BIN));
const tok = { kind: "llama2c" as const, bytes: readBytes(STORIES_TOK) };
const source = (map: (name: string, t: Float32Array) => Float32Array = (_, t) => t): TensorSource => ({ config: ckpt.config, getTensor: (n) => map(n, ckpt.tensors.get(n)!) });

async function convert(src: TensorSource, dtype: "f32" | "f16" | "q8_0" | "q4_0"): Promise<Uint8Array> {
  const sink = new MemorySink();
  await convertTensors(src, tok, sink, { dtype });
  return sink.bytes();
}

async function logits(bytes: Uint8Array, tokens: number[]): Promise<Float32Array[]> {
  const model = await openFlashModel(new MemorySource(bytes));
  try {
    const out: Float32Array[] = [];
    for (let p = 0; p < tokens.length; p++) out.push((await model.transformer.forward(tokens[p], p)).slice());
    return out;
  } finally {
    await model.dispose();
  }
}

describe("container dtypes", () => {
  for (const [dtype, type] of [["f16", GgmlType.F16], ["q8_0", GgmlType.Q8_0], ["q4_0", GgmlType.Q4_0]] as const) {
    it(`${dtype}: each bundle holds the ${dtype} encoding of the neuron's gate row, up row and down column`, async () => {
      const file = await openFlm(new MemorySource(await convert(source(), dtype)));
      const m = file.manifest;
      expect(m.dtype).toEqual({ resident: dtype, ffn: dtype });
      const layout = bundleLayout(m.config.dim, dtype, true, m.ffn.bundleStride & -m.ffn.bundleStride);
      const { dim, hiddenDim } = m.config;
      const roundTrip = (v: Float32Array) => {
        const out = new Float32Array(v.length);
        dequantize(type, quantize(type, v), v.length, out);
        return Array.from(out);
      };
      for (const l of [0, 4]) {
        const section = await file.readSection(m.ffn.layers[l].section);
        const w1 = ckpt.tensors.get(`layers.${l}.w1`)!, w2 = ckpt.tensors.get(`layers.${l}.w2`)!, w3 = ckpt.tensors.get(`layers.${l}.w3`)!;
        for (const i of [0, 1, 100, hiddenDim - 1]) {
          const b = unpackBundle(layout, section, i * m.ffn.bundleStride);
          expect(Array.from(b.gate!)).toEqual(roundTrip(w1.subarray(i * dim, (i + 1) * dim)));
          expect(Array.from(b.up)).toEqual(roundTrip(w3.subarray(i * dim, (i + 1) * dim)));
          expect(Array.from(b.down)).toEqual(roundTrip(Float32Array.from({ length: dim }, (_, d) => w2[d * hiddenDim + i])));
        }
      }
    });
  }

  it("f16 gives the logits of an f32 file holding the f16-rounded weights, bit for bit", async () => {
    const rounded = source((_, t) => t.map((v) => f16ToF32(f32ToF16(v))));
    // Norm vectors stay f32 in an f16 file: round only the matrices.
    const matricesRounded: TensorSource = { config: ckpt.config, getTensor: (n) => (/norm$/.test(n) ? ckpt.tensors.get(n)! : rounded.getTensor(n)) };
    const prompt = [1, 403, 407, 261, 378, 1300 % 512, 7, 9];
    const a = await logits(await convert(matricesRounded, "f32"), prompt);
    const b = await logits(await convert(source(), "f16"), prompt);
    for (let p = 0; p < prompt.length; p++) expect(Array.from(b[p]), `position ${p}`).toEqual(Array.from(a[p]));
  });

  for (const [name, type, dtype] of [["Q8_0", GgmlType.Q8_0, "q8_0"], ["Q4_0", GgmlType.Q4_0, "q4_0"]] as const) {
    it(`GGUF ${name}: resident matrices are the file's own blocks, byte for byte`, async () => {
      const gguf = await storiesGguf(type);
      const g = await openGguf(new MemorySource(gguf));
      const sink = new MemorySink();
      await convertGguf(new MemorySource(gguf), sink);
      const flm = await openFlm(new MemorySource(sink.bytes()));
      expect(flm.manifest.dtype.resident).toBe(dtype);
      const resident = await flm.readResident();
      for (const [ours, theirs] of [["tok_embeddings", "token_embd.weight"], ["layers.2.wq", "blk.2.attn_q.weight"], ["layers.4.wv", "blk.4.attn_v.weight"]]) {
        const t = resident.get(ours)!;
        expect(t.dtype).toBe(dtype);
        expect(Buffer.from((t as { raw: Uint8Array }).raw).equals(Buffer.from(await g.readRaw(theirs))), ours).toBe(true);
      }
    });
  }
});
