// Opening with O_DIRECT: resident tensors of ≥ 1 MiB are placed in WASM memory so that their address
// agrees with their file offset modulo 4096, and are read in place (no bounce buffer, no copy). The
// model must be the same as one read through the page cache: same logits, bit for bit.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { NodeFileSource } from "@flashllm/node-io";
import { DIRECT_PLACEMENT_MIN_BYTES, openFlashModel, synthShape, synthesizeFlm, type FlashModel } from "@flashllm/sdk/internal";
import { NodeFileSink } from "../packages/node-io/src/file-sink.js";
import { supportsDirect } from "../packages/node-io/test/source/helpers.js";

const DIRECT_OK = supportsDirect(tmpdir());
if (!DIRECT_OK) console.warn(`O_DIRECT refused under ${tmpdir()}: the direct-placement test is skipped`);

let dir: string;
let path: string;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "flashllm-direct-open-"));
  path = join(dir, "one-layer.flm");
  // Llama-2-7B per-layer shapes, 1 layer, vocab 300: 16 MiB attention matrices (q8), 1.2 MiB
  // embeddings, 135 MiB of FFN bundles.
  const sink = await NodeFileSink.create(path);
  await synthesizeFlm(sink, synthShape("llama-2-7b", { nLayers: 1, vocabSize: 300 }), { seed: 7 });
  await sink.commit();
}, 60_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function open(direct: boolean): Promise<{ model: FlashModel; source: NodeFileSource }> {
  const source = await NodeFileSource.open(path, { direct });
  const model = await openFlashModel(source, { contextLength: 4, selector: "all" });
  return { model, source };
}

describe("opening with O_DIRECT", () => {
  it.skipIf(!DIRECT_OK)("reads the large resident tensors in place and gives the page-cache path's logits", async () => {
    const plain = await open(false);
    const direct = await open(true);
    try {
      const m = direct.model.file.manifest;
      const big = m.tensors.filter((t) => t.shape.reduce((a, b) => a * b, 1) >= DIRECT_PLACEMENT_MIN_BYTES);
      expect(big.length).toBeGreaterThanOrEqual(4); // wq wk wv wo
      // Every large tensor's data went straight into WASM memory: at least one direct read each
      // (the aligned interior), and only small pieces (scales, norms, partial edge blocks) bounced.
      const s = direct.source.stats;
      expect(s.directReads).toBeGreaterThanOrEqual(big.length);
      const bigBytes = big.reduce((a, t) => a + t.shape.reduce((x, y) => x * y, 1), 0);
      // A bounced read carries at most 1 MiB: had the large tensors bounced, there would be at least
      // bigBytes / 1 MiB bounced reads.
      expect(s.bouncedReads).toBeLessThan(bigBytes / (1 << 20));

      // And the opened models are the same model: logits bit for bit over a few positions.
      for (const [pos, token] of [1, 50, 299].entries()) {
        const a = (await plain.model.transformer.forward(token, pos)).slice();
        const b = await direct.model.transformer.forward(token, pos);
        expect(Buffer.compare(Buffer.from(a.buffer), Buffer.from(b.buffer, b.byteOffset, b.byteLength))).toBe(0);
      }
      // The placement slack is charged to the plan: with a budget of exactly what the plan needs for
      // a few cache slots, WASM memory stays within budget + the stated overhead.
    } finally {
      await plain.model.dispose();
      await direct.model.dispose();
      await plain.source.close();
      await direct.source.close();
    }
  }, 60_000);

  it.skipIf(!DIRECT_OK)("charges the placement to the budget: WASM memory stays within budget + overhead", async () => {
    const probe = await open(true);
    const p = probe.model.memoryPlan;
    const tight = p.residentBytes + p.stateBytes + p.ffnScratchBytes + 8 * 12304 * 2;
    await probe.model.dispose();
    await probe.source.close();
    const source = await NodeFileSource.open(path, { direct: true });
    const model = await openFlashModel(source, { contextLength: 4, selector: "all", memoryBudget: tight });
    try {
      await model.transformer.forward(1, 0);
      expect(model.memoryPlan.capacity).toBeGreaterThan(0);
      expect(model.memoryPlan.capacity).toBeLessThan(11008); // the cache, not the whole layer
      expect(model.wasmMemoryBytes).toBeLessThanOrEqual(tight + model.memoryPlan.overheadBytes);
    } finally {
      await model.dispose();
      await source.close();
    }
  }, 60_000);
});
