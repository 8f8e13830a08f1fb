import { describe, expect, it } from "vitest";
import { openShardedSafetensors } from "../../src/hf/index.js";
import { CountingSource, errorOf, expectSameValues, f32Bytes, refBf16, u16Bytes, writeSafetensors } from "./helpers.js";

const shard1 = writeSafetensors([
  { name: "a", dtype: "F32", shape: [2, 3], data: f32Bytes([1, 2, 3, 4, 5, 6]) },
  { name: "b", dtype: "BF16", shape: [2], data: u16Bytes([0x3f80, 0xbf80]) },
]);
const shard2 = writeSafetensors([
  { name: "c", dtype: "F16", shape: [1], data: u16Bytes([0x3c00]) },
  { name: "d", dtype: "F32", shape: [3], data: f32Bytes([7, 8, 9]) },
  { name: "stray", dtype: "F32", shape: [1], data: f32Bytes([0]) },
]);
const files: Record<string, Uint8Array> = { "model-00001-of-00002.safetensors": shard1, "model-00002-of-00002.safetensors": shard2 };
const index = (weightMap: Record<string, string>) => JSON.stringify({ metadata: { total_size: 64 }, weight_map: weightMap });
const goodMap = {
  d: "model-00002-of-00002.safetensors",
  a: "model-00001-of-00002.safetensors",
  b: "model-00001-of-00002.safetensors",
  c: "model-00002-of-00002.safetensors",
};

function opener() {
  const opened: string[] = [];
  const sources: CountingSource[] = [];
  const openShard = async (name: string) => {
    opened.push(name);
    const bytes = files[name];
    if (!bytes) throw new Error(`no file ${name}`);
    const s = new CountingSource(bytes);
    sources.push(s);
    return s;
  };
  return { opened, sources, openShard };
}

describe("sharded safetensors", () => {
  it("presents the tensors of 2 shards as one reader, opening each shard once", async () => {
    const o = opener();
    const st = await openShardedSafetensors(index(goodMap), o.openShard);
    expect(o.opened).toEqual(["model-00002-of-00002.safetensors", "model-00001-of-00002.safetensors"]);
    expect(st.shards.map((s) => s.name)).toEqual(o.opened);
    // Shard order, then file order; tensors not in weight_map are not exposed.
    expect(st.names()).toEqual(["c", "d", "a", "b"]);
    expect(st.has("stray")).toBe(false);
    expect(st.info("a")).toMatchObject({ dtype: "F32", shape: [2, 3], file: "model-00001-of-00002.safetensors" });
    expect(st.info("c")?.file).toBe("model-00002-of-00002.safetensors");
    expectSameValues(await st.readTensor("a"), [1, 2, 3, 4, 5, 6]);
    expectSameValues(await st.readTensor("b"), [refBf16(0x3f80), refBf16(0xbf80)]);
    expectSameValues(await st.readTensor("c"), [1]);
    expectSameValues(await st.readTensor("d"), [7, 8, 9]);
    expect((await errorOf(() => st.readTensor("stray"))).code).toBe("BAD_ARGUMENT");
    await st.close();
    expect(o.sources.every((s) => s.closed)).toBe(true);
  });

  it("rejects a malformed index with BAD_MANIFEST", async () => {
    const cases = [
      "{not json",
      JSON.stringify({ metadata: {} }),
      JSON.stringify({ weight_map: [] }),
      index({}),
      JSON.stringify({ weight_map: { a: 3 } }),
      index({ a: "../model-00001-of-00002.safetensors" }),
      index({ a: "/etc/model.safetensors" }),
    ];
    for (const text of cases) {
      const o = opener();
      const e = await errorOf(() => openShardedSafetensors(text, o.openShard));
      expect(e.code, text).toBe("BAD_MANIFEST");
      expect(o.opened).toEqual([]);
    }
  });

  it("rejects a tensor missing from its shard, naming tensor and shard, and closes what it opened", async () => {
    const o = opener();
    const e = await errorOf(() => openShardedSafetensors(index({ ...goodMap, a: "model-00002-of-00002.safetensors" }), o.openShard));
    expect(e.code).toBe("BAD_MANIFEST");
    expect(e.details).toMatchObject({ tensor: "a", shard: "model-00002-of-00002.safetensors" });
    expect(o.sources.length).toBe(2);
    expect(o.sources.every((s) => s.closed)).toBe(true);
  });

  it("passes a corrupt shard's error through, naming the shard", async () => {
    const bad = shard1.slice(0, 20);
    const e = await errorOf(() =>
      openShardedSafetensors(index({ a: "x.safetensors" }), async () => new CountingSource(bad)),
    );
    expect(e.code).toBe("TRUNCATED");
    expect(e.message).toContain("x.safetensors");
  });
});
