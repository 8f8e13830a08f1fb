import { describe, expect, it } from "vitest";
import { MemorySource } from "../../src/source.js";
import { hfTensors, mapHfConfig, openSafetensors, openShardedSafetensors } from "../../src/hf/index.js";
import { CountingSource, errorOf, expectSameValues, f32Bytes, refF16, rng, u16Bytes, writeSafetensors } from "./helpers.js";
import type { RawTensor } from "./helpers.js";

/** A checkpoint of random f32 tensors with the given shapes; returns the file and the values by name. */
function checkpoint(shapes: Record<string, number[]>, seed = 1) {
  const r = rng(seed);
  const values = new Map<string, number[]>();
  const tensors: RawTensor[] = Object.entries(shapes).map(([name, shape]) => {
    const v = Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => Math.fround(r() - 0.5));
    values.set(name, v);
    return { name, dtype: "F32", shape, data: f32Bytes(v) };
  });
  return { bytes: writeSafetensors(tensors), values };
}

const D = 8, H = 12, V = 11, P = 6, L = 2;

const optConfig = {
  architectures: ["OPTForCausalLM"], hidden_size: D, ffn_dim: H, num_hidden_layers: L, num_attention_heads: 2, vocab_size: V,
  max_position_embeddings: P, word_embed_proj_dim: D, do_layer_norm_before: true,
};

function optShapes(prefix = "model.decoder.") {
  const s: Record<string, number[]> = {
    [`${prefix}embed_tokens.weight`]: [V, D],
    [`${prefix}embed_positions.weight`]: [P + 2, D],
    [`${prefix}final_layer_norm.weight`]: [D],
    [`${prefix}final_layer_norm.bias`]: [D],
  };
  for (let l = 0; l < L; l++) {
    const p = `${prefix}layers.${l}.`;
    for (const n of ["q_proj", "k_proj", "v_proj", "out_proj"]) {
      s[`${p}self_attn.${n}.weight`] = [D, D];
      s[`${p}self_attn.${n}.bias`] = [D];
    }
    for (const n of ["self_attn_layer_norm", "final_layer_norm"]) {
      s[`${p}${n}.weight`] = [D];
      s[`${p}${n}.bias`] = [D];
    }
    s[`${p}fc1.weight`] = [H, D];
    s[`${p}fc1.bias`] = [H];
    s[`${p}fc2.weight`] = [D, H];
    s[`${p}fc2.bias`] = [D];
  }
  return s;
}

const llamaConfig = {
  architectures: ["LlamaForCausalLM"], hidden_size: D, intermediate_size: H, num_hidden_layers: L, num_attention_heads: 2,
  num_key_value_heads: 1, vocab_size: V, tie_word_embeddings: false,
};

function llamaShapes(prefix = "model.") {
  const s: Record<string, number[]> = { [`${prefix}embed_tokens.weight`]: [V, D], [`${prefix}norm.weight`]: [D], "lm_head.weight": [V, D] };
  for (let l = 0; l < L; l++) {
    const p = `${prefix}layers.${l}.`;
    Object.assign(s, {
      [`${p}self_attn.q_proj.weight`]: [D, D], [`${p}self_attn.k_proj.weight`]: [D / 2, D], [`${p}self_attn.v_proj.weight`]: [D / 2, D],
      [`${p}self_attn.o_proj.weight`]: [D, D], [`${p}mlp.gate_proj.weight`]: [H, D], [`${p}mlp.up_proj.weight`]: [H, D],
      [`${p}mlp.down_proj.weight`]: [D, H], [`${p}input_layernorm.weight`]: [D], [`${p}post_attention_layernorm.weight`]: [D],
    });
  }
  return s;
}

describe("HF tensors under canonical names", () => {
  it("OPT: every canonical tensor is its HF tensor; positions drop the 2 offset rows; no w1; tied output", async () => {
    const { bytes, values } = checkpoint(optShapes());
    const t = hfTensors(await openSafetensors(new MemorySource(bytes)), mapHfConfig(optConfig));
    const perLayer = ["attn_norm", "attn_norm_bias", "wq", "bq", "wk", "bk", "wv", "bv", "wo", "bo", "ffn_norm", "ffn_norm_bias", "w3", "b1", "w2", "b2"];
    expect(t.names()).toEqual([
      "tok_embeddings", "pos_embeddings",
      ...[0, 1].flatMap((l) => perLayer.map((n) => `layers.${l}.${n}`)),
      "norm", "norm_bias", "output",
    ]);
    const from: Record<string, string> = {
      tok_embeddings: "model.decoder.embed_tokens.weight", norm: "model.decoder.final_layer_norm.weight", norm_bias: "model.decoder.final_layer_norm.bias",
      output: "model.decoder.embed_tokens.weight", "layers.1.attn_norm": "model.decoder.layers.1.self_attn_layer_norm.weight",
      "layers.1.attn_norm_bias": "model.decoder.layers.1.self_attn_layer_norm.bias", "layers.1.wq": "model.decoder.layers.1.self_attn.q_proj.weight",
      "layers.1.bk": "model.decoder.layers.1.self_attn.k_proj.bias", "layers.1.wo": "model.decoder.layers.1.self_attn.out_proj.weight",
      "layers.1.bo": "model.decoder.layers.1.self_attn.out_proj.bias", "layers.1.ffn_norm": "model.decoder.layers.1.final_layer_norm.weight",
      "layers.0.w3": "model.decoder.layers.0.fc1.weight", "layers.0.b1": "model.decoder.layers.0.fc1.bias",
      "layers.0.w2": "model.decoder.layers.0.fc2.weight", "layers.0.b2": "model.decoder.layers.0.fc2.bias",
    };
    for (const [name, hf] of Object.entries(from)) {
      expect(t.sourceName(name), name).toBe(hf);
      expectSameValues(await t.getTensor(name), values.get(hf)!, name);
    }
    expect(t.shape("layers.0.w3")).toEqual([H, D]);
    expect(t.shape("layers.0.w2")).toEqual([D, H]);
    expect(t.shape("layers.0.b1")).toEqual([H]);
    expect(t.has("layers.0.w1")).toBe(false);
    // Row p of pos_embeddings is position p, i.e. HF row p + 2.
    expect(t.shape("pos_embeddings")).toEqual([P, D]);
    expectSameValues(await t.getTensor("pos_embeddings"), values.get("model.decoder.embed_positions.weight")!.slice(2 * D));
    const target = new Float32Array(P * D + 3);
    const into = await t.getTensor("pos_embeddings", { target });
    expect(into.buffer).toBe(target.buffer);
    expectSameValues(into, values.get("model.decoder.embed_positions.weight")!.slice(2 * D));
    expect(t.unused()).toEqual([]);
    // Streaming every tensor gives the same values as one-by-one access.
    let n = 0;
    for await (const [name, data] of t.entries()) {
      expect(data.length).toBe(t.shape(name)!.reduce((a, b) => a * b, 1));
      n++;
    }
    expect(n).toBe(t.names().length);
  });

  it("OPT: an untied head reads lm_head.weight; the prefix-less 'decoder.' layout works too", async () => {
    const shapes = { ...optShapes("decoder."), "lm_head.weight": [V, D] };
    const { bytes, values } = checkpoint(shapes, 2);
    const t = hfTensors(await openSafetensors(new MemorySource(bytes)), mapHfConfig({ ...optConfig, tie_word_embeddings: false }));
    expect(t.sourceName("tok_embeddings")).toBe("decoder.embed_tokens.weight");
    expectSameValues(await t.getTensor("output"), values.get("lm_head.weight")!);
  });

  it("Llama: HF order kept (no un-permutation), untied head, gate/up/down → w1/w3/w2", async () => {
    const { bytes, values } = checkpoint(llamaShapes(), 3);
    const t = hfTensors(await openSafetensors(new MemorySource(bytes)), mapHfConfig(llamaConfig));
    expect(t.config.ropeStyle).toBe("neox");
    expect(t.names().length).toBe(3 + 9 * L);
    const pairs: [string, string][] = [
      ["layers.1.wq", "model.layers.1.self_attn.q_proj.weight"], ["layers.1.wk", "model.layers.1.self_attn.k_proj.weight"],
      ["layers.0.w1", "model.layers.0.mlp.gate_proj.weight"], ["layers.0.w3", "model.layers.0.mlp.up_proj.weight"],
      ["layers.0.w2", "model.layers.0.mlp.down_proj.weight"], ["layers.0.attn_norm", "model.layers.0.input_layernorm.weight"],
      ["layers.0.ffn_norm", "model.layers.0.post_attention_layernorm.weight"], ["norm", "model.norm.weight"], ["output", "lm_head.weight"],
    ];
    for (const [name, hf] of pairs) expectSameValues(await t.getTensor(name), values.get(hf)!, name);
    expect(t.shape("layers.0.wk")).toEqual([D / 2, D]);
  });

  it("Llama tied: output is the embedding even without lm_head.weight; unused lists leftovers", async () => {
    const shapes = llamaShapes("");
    delete shapes["lm_head.weight"];
    const { bytes, values } = checkpoint({ ...shapes, "layers.0.self_attn.rotary_emb.inv_freq": [2] }, 4);
    const t = hfTensors(await openSafetensors(new MemorySource(bytes)), mapHfConfig({ ...llamaConfig, tie_word_embeddings: true }));
    expect(t.sourceName("output")).toBe("embed_tokens.weight");
    expectSameValues(await t.getTensor("output"), values.get("embed_tokens.weight")!);
    expect(t.unused()).toEqual(["layers.0.self_attn.rotary_emb.inv_freq"]);
  });

  it("reads lazily: mapping touches no tensor data, getTensor only its own bytes", async () => {
    const { bytes } = checkpoint(llamaShapes(), 5);
    const src = new CountingSource(bytes);
    const st = await openSafetensors(src);
    const afterOpen = src.log.length;
    const t = hfTensors(st, mapHfConfig(llamaConfig));
    expect(src.log.length).toBe(afterOpen);
    await t.getTensor("layers.1.w2");
    const info = st.info("model.layers.1.mlp.down_proj.weight")!;
    expect(src.log.slice(afterOpen)).toEqual([{ offset: info.offset, length: info.byteLength }]);
  });

  it("works across shards with half-precision data", async () => {
    const shapes = llamaShapes();
    const names = Object.keys(shapes);
    const r = rng(9);
    const bits = new Map<string, number[]>();
    const mk = (list: string[]) =>
      writeSafetensors(list.map((name) => {
        const b = Array.from({ length: shapes[name].reduce((a, c) => a * c, 1) }, () => Math.floor(r() * 0x7c00));
        bits.set(name, b);
        return { name, dtype: "F16", shape: shapes[name], data: u16Bytes(b) };
      }));
    const files: Record<string, Uint8Array> = { "s1.safetensors": mk(names.slice(0, 7)), "s2.safetensors": mk(names.slice(7)) };
    const index = JSON.stringify({ weight_map: Object.fromEntries(names.map((n, i) => [n, i < 7 ? "s1.safetensors" : "s2.safetensors"])) });
    const st = await openShardedSafetensors(index, async (f) => new MemorySource(files[f]));
    const t = hfTensors(st, mapHfConfig(llamaConfig));
    for (const name of t.names()) expectSameValues(await t.getTensor(name), bits.get(t.sourceName(name)!)!.map(refF16), name);
  });

  it("a missing tensor is BAD_MANIFEST and a wrong shape WRONG_DIMS, both naming HF and canonical names", async () => {
    const missing = optShapes();
    delete missing["model.decoder.layers.1.fc2.bias"];
    let st = await openSafetensors(new MemorySource(checkpoint(missing).bytes));
    let e = await errorOf(() => hfTensors(st, mapHfConfig(optConfig)));
    expect(e.code).toBe("BAD_MANIFEST");
    expect(e.details).toMatchObject({ tensor: "model.decoder.layers.1.fc2.bias", canonical: "layers.1.b2" });

    const wrong = { ...optShapes(), "model.decoder.embed_positions.weight": [P, D] }; // OPT needs P + 2 rows
    st = await openSafetensors(new MemorySource(checkpoint(wrong).bytes));
    e = await errorOf(() => hfTensors(st, mapHfConfig(optConfig)));
    expect(e.code).toBe("WRONG_DIMS");
    expect(e.details).toMatchObject({ canonical: "pos_embeddings", expected: [P + 2, D], actual: [P, D] });

    const kv = { ...llamaShapes(), "model.layers.0.self_attn.k_proj.weight": [D, D] }; // config says 1 kv head
    st = await openSafetensors(new MemorySource(checkpoint(kv).bytes));
    e = await errorOf(() => hfTensors(st, mapHfConfig(llamaConfig)));
    expect(e.code).toBe("WRONG_DIMS");
    expect(e.message).toContain("model.layers.0.self_attn.k_proj.weight");

    const t = hfTensors(await openSafetensors(new MemorySource(checkpoint(llamaShapes()).bytes)), mapHfConfig(llamaConfig));
    expect((await errorOf(() => t.getTensor("layers.9.wq"))).code).toBe("BAD_ARGUMENT");
  });
});
