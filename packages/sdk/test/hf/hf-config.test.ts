import { describe, expect, it } from "vitest";
import { FormatError } from "../../src/errors.js";
import { mapHfConfig } from "../../src/hf/index.js";
import { errorOf } from "./helpers.js";

const llama = {
  architectures: ["LlamaForCausalLM"],
  model_type: "llama",
  hidden_size: 64,
  intermediate_size: 172,
  num_hidden_layers: 5,
  num_attention_heads: 8,
  num_key_value_heads: 4,
  head_dim: 8,
  vocab_size: 512,
  max_position_embeddings: 512,
  rms_norm_eps: 1e-5,
  rope_theta: 10000.0,
  rope_scaling: null,
  hidden_act: "relu",
  tie_word_embeddings: true,
};

// Shape of facebook/opt-125m's config.json.
const opt = {
  architectures: ["OPTForCausalLM"],
  model_type: "opt",
  activation_function: "relu",
  do_layer_norm_before: true,
  enable_bias: true,
  ffn_dim: 3072,
  hidden_size: 768,
  max_position_embeddings: 2048,
  num_attention_heads: 12,
  num_hidden_layers: 12,
  vocab_size: 50272,
  word_embed_proj_dim: 768,
  torch_dtype: "float16",
};

const code = async (json: unknown) => {
  const e = await errorOf(() => mapHfConfig(json));
  expect(e).toBeInstanceOf(FormatError);
  return e;
};

describe("config.json → ModelConfig", () => {
  it("maps LlamaForCausalLM (relu, GQA, tied) with neox RoPE and no position table", () => {
    const s = mapHfConfig(llama);
    expect(s).toMatchObject({ architecture: "LlamaForCausalLM", family: "llama", flmArchitecture: "llama", positionOffset: 0 });
    expect(s.config).toEqual({
      dim: 64, hiddenDim: 172, nLayers: 5, nHeads: 8, nKvHeads: 4, vocabSize: 512, seqLen: 512, normEps: 1e-5,
      ropeTheta: 10000, ropeStyle: "neox", activation: "relu", gated: true, sharedClassifier: true, norm: "rmsnorm",
    });
  });

  it("applies Llama defaults: silu, kv heads = heads, untied, eps 1e-6, theta 10000, 2048 positions", () => {
    const s = mapHfConfig({ architectures: ["LlamaForCausalLM"], hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 4, vocab_size: 10 });
    expect(s.config).toMatchObject({ activation: "silu", nKvHeads: 4, sharedClassifier: false, normEps: 1e-6, ropeTheta: 10000, seqLen: 2048 });
    expect(mapHfConfig({ ...llama, hidden_act: "silu", rope_theta: 500000, tie_word_embeddings: false }).config).toMatchObject({
      activation: "silu", ropeTheta: 500000, sharedClassifier: false,
    });
    // transformers ≥ 5 nests rope_theta in rope_parameters; model_type alone identifies the family.
    const { architectures: _a, rope_theta: _t, ...rest } = llama;
    expect(mapHfConfig({ ...rest, rope_parameters: { rope_type: "default", rope_theta: 1e6 } }).config.ropeTheta).toBe(1e6);
  });

  it("rejects Llama features the engine does not implement as UNSUPPORTED naming the field", async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ head_dim: 16 }, "head_dim"],
      [{ hidden_act: "gelu" }, "hidden_act"],
      [{ rope_scaling: { rope_type: "llama3", factor: 8 } }, "rope_scaling"],
      [{ attention_bias: true }, "attention_bias"],
      [{ mlp_bias: true }, "mlp_bias"],
    ];
    for (const [patch, field] of cases) {
      const e = await code({ ...llama, ...patch });
      expect(e.code, field).toBe("UNSUPPORTED");
      expect(e.details.field).toBe(field);
      expect(e.message).toContain(field);
    }
  });

  it("maps OPTForCausalLM: LayerNorm, learned positions (offset 2), plain ReLU FFN, tied head", () => {
    const s = mapHfConfig(opt);
    expect(s).toMatchObject({ architecture: "OPTForCausalLM", family: "opt", flmArchitecture: "opt", positionOffset: 2 });
    expect(s.config).toEqual({
      dim: 768, hiddenDim: 3072, nLayers: 12, nHeads: 12, nKvHeads: 12, vocabSize: 50272, seqLen: 2048, normEps: 1e-5,
      ropeTheta: 10000, ropeStyle: "none", activation: "relu", gated: false, sharedClassifier: true, norm: "layernorm", maxPositions: 2048,
    });
    expect(mapHfConfig({ ...opt, word_embed_proj_dim: null }).config.dim).toBe(768);
  });

  it("rejects post-norm and projected OPT variants as UNSUPPORTED", async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ do_layer_norm_before: false }, "do_layer_norm_before"],
      [{ word_embed_proj_dim: 512 }, "word_embed_proj_dim"],
      [{ _remove_final_layer_norm: true }, "_remove_final_layer_norm"],
      [{ activation_function: "gelu" }, "activation_function"],
      [{ enable_bias: false }, "enable_bias"],
    ];
    for (const [patch, field] of cases) {
      const e = await code({ ...opt, ...patch });
      expect(e.code, field).toBe("UNSUPPORTED");
      expect(e.details.field).toBe(field);
    }
  });

  it("maps the gpt-char-relu export (untied head, no offset, eps from its prose)", () => {
    const s = mapHfConfig({
      architecture: "gpt-char-relu", vocab_size: 65, dim: 128, n_layers: 2, n_heads: 8, head_size: 16, ffn_hidden: 512, max_seq_len: 128,
      norm: "LayerNorm(eps=1e-6, weight and bias)",
    });
    expect(s).toMatchObject({ family: "gpt", flmArchitecture: "opt", positionOffset: 0 });
    expect(s.config).toMatchObject({ dim: 128, hiddenDim: 512, nHeads: 8, nKvHeads: 8, seqLen: 128, maxPositions: 128, normEps: 1e-6, sharedClassifier: false, gated: false, ropeStyle: "none", norm: "layernorm" });
  });

  it("names an unknown architecture in an UNSUPPORTED error", async () => {
    for (const [json, name] of [
      [{ architectures: ["GPTNeoXForCausalLM"], model_type: "gpt_neox" }, "GPTNeoXForCausalLM"],
      [{ model_type: "gpt2" }, "gpt2"],
      [{}, "(none)"],
    ] as const) {
      const e = await code(json);
      expect(e.code).toBe("UNSUPPORTED");
      expect(e.message).toContain(name);
      expect(e.details.actual).toBe(name);
    }
  });

  it("missing or mistyped fields are BAD_MANIFEST; inconsistent dimensions WRONG_DIMS", async () => {
    const { hidden_size: _h, ...noHidden } = llama;
    expect((await code(noHidden)).details.field).toBe("hidden_size");
    expect((await code(noHidden)).code).toBe("BAD_MANIFEST");
    expect((await code({ ...llama, vocab_size: "512" })).code).toBe("BAD_MANIFEST");
    expect((await code({ ...llama, tie_word_embeddings: "yes" })).code).toBe("BAD_MANIFEST");
    expect((await code([llama])).code).toBe("BAD_MANIFEST");
    expect((await code({ ...llama, num_key_value_heads: 3 })).code).toBe("WRONG_DIMS");
    expect((await code({ ...llama, hidden_size: 60, head_dim: null })).code).toBe("WRONG_DIMS"); // 60 / 8 heads
    expect((await code({ ...llama, hidden_size: 24, num_attention_heads: 8, num_key_value_heads: 8, head_dim: 3 })).code).toBe("WRONG_DIMS"); // odd head with RoPE
    expect((await code({ ...llama, num_hidden_layers: 0 })).code).toBe("WRONG_DIMS");
    expect((await code({ ...opt, max_position_embeddings: 2 ** 21 })).code).toBe("WRONG_DIMS");
  });
});
