// The shared buffer of a sharded model: every vector has its own bytes (a shard writing its partial
// or its logits range must never touch the broadcast input or the residual stream), and the residual
// stream takes room only when the model's predictors read it.
import { describe, expect, it } from "vitest";
import { SharedLayout } from "../../src/shard/protocol.js";

/** [start, end) byte range of a view within its buffer. */
const span = (v: { byteOffset: number; byteLength: number }): [number, number] => [v.byteOffset, v.byteOffset + v.byteLength];

describe("SharedLayout", () => {
  it.each([
    { shards: 2, dim: 64, vocab: 512 },
    { shards: 5, dim: 4096, vocab: 32000 },
    { shards: 1, dim: 8, vocab: 3 },
  ])("$shards shards, dim $dim, vocab $vocab: disjoint views inside the buffer; the residual adds exactly dim floats", ({ shards, dim, vocab }) => {
    const without = SharedLayout.create(shards, dim, vocab, false);
    const withRes = SharedLayout.create(shards, dim, vocab, true);
    expect(without.residual).toBeUndefined();
    expect(withRes.residual?.length).toBe(dim);
    expect(withRes.buffer.byteLength - without.buffer.byteLength).toBe(dim * 4);
    for (const l of [without, withRes]) {
      const views = [l.ctrl, l.input, ...(l.residual ? [l.residual] : []), ...l.partials, l.logits].map(span);
      for (const [a, b] of views) {
        expect(a).toBeGreaterThanOrEqual(0);
        expect(b).toBeLessThanOrEqual(l.buffer.byteLength);
      }
      views.sort((x, y) => x[0] - y[0]);
      for (let i = 1; i < views.length; i++) expect(views[i][0], `view ${i} starts before view ${i - 1} ends`).toBeGreaterThanOrEqual(views[i - 1][1]);
      expect(views.at(-1)![1]).toBe(l.buffer.byteLength); // no slack either
    }
    // A second view of the same buffer (what a shard builds from `init`) sees the same vectors.
    const shardSide = new SharedLayout(withRes.buffer, shards, dim, vocab, true);
    withRes.residual!.fill(0.5);
    withRes.input.fill(-1);
    expect(shardSide.residual!.every((v) => v === 0.5)).toBe(true);
    expect(shardSide.input.every((v) => v === -1)).toBe(true);
  });
});
