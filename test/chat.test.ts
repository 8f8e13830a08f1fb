// Chat templates and LanguageModel.chat: templates written here into converted copies of the shipped
// stories260K (it ships none), rendered through @huggingface/jinja; the prompt ids are checked against
// ids assembled by hand from the tokenizer's plain `encode`, and chat's text against `generate`'s.
import { beforeAll, describe, expect, it } from "vitest";
import {
  BOS, EOS, FlashError, MemorySink, MemorySource, convertLlama2c, openFlashModel, openFlm, stopAtText, validateManifest,
  type FlashModel, type GeneratedToken, type GenerationStats,
} from "@flashllm/sdk/internal";
import { STORIES_BIN, STORIES_TOK, readBytes, rng } from "./helpers.js";
import { CHATML_TEMPLATE, LLAMA2_TEMPLATE } from "./chat-templates.js";

async function flmWith(chatTemplate?: string): Promise<Uint8Array> {
  const sink = new MemorySink();
  await convertLlama2c(readBytes(STORIES_BIN), readBytes(STORIES_TOK), sink, { chatTemplate });
  return sink.bytes();
}

async function collect(it: AsyncGenerator<GeneratedToken, GenerationStats>): Promise<{ tokens: number[]; text: string; stats: GenerationStats }> {
  const tokens: number[] = [];
  let text = "";
  for (;;) {
    const r = await it.next();
    if (r.done) return { tokens, text, stats: r.value };
    tokens.push(r.value.token);
    text += r.value.text;
  }
}

let llama2: FlashModel;
let chatml: FlashModel;
let plain: FlashModel;

beforeAll(async () => {
  llama2 = await openFlashModel(new MemorySource(await flmWith(LLAMA2_TEMPLATE)), { contextLength: 256 });
  chatml = await openFlashModel(new MemorySource(await flmWith(CHATML_TEMPLATE)), { contextLength: 256 });
  plain = await openFlashModel(new MemorySource(await flmWith()), { contextLength: 256 });
});

describe("chat templates in the .flm", () => {
  it("the manifest keeps the template; a file without one has none", async () => {
    const file = await openFlm(new MemorySource(await flmWith(LLAMA2_TEMPLATE)));
    expect(file.manifest.chatTemplate).toBe(LLAMA2_TEMPLATE);
    expect(llama2.chatTemplate).toBe(LLAMA2_TEMPLATE);
    expect(plain.chatTemplate).toBeUndefined();
    expect(plain.file.manifest).not.toHaveProperty("chatTemplate");
  });

  it("a chatTemplate that is not a non-empty string is a BAD_MANIFEST naming the field", () => {
    const m = JSON.parse(JSON.stringify(llama2.file.manifest));
    for (const bad of [42, "", ["x"], null]) {
      expect(() => validateManifest({ ...m, chatTemplate: bad }, 1 << 30)).toThrow(/manifest field chatTemplate/);
    }
    expect(() => validateManifest({ ...m, chatTemplate: "x".repeat((1 << 20) + 1) }, 1 << 30)).toThrow(/chatTemplate: expected 1 to 1048576 characters/);
  });
});

describe("chat prompt: rendering and ids", () => {
  const tok = () => llama2.tokenizer;

  it("Llama-2: system prompt folded into the first turn, <s>/</s> as BOS/EOS ids, one BOS", () => {
    const messages = [
      { role: "system", content: "Be kind." },
      { role: "user", content: "Tell a story." },
      { role: "assistant", content: "Once upon a time." },
      { role: "user", content: "More!" },
    ];
    const p = llama2.chatPrompt(messages);
    expect(p.text).toBe("<s>[INST] <<SYS>>\nBe kind.\n<</SYS>>\n\nTell a story. [/INST] Once upon a time. </s><s>[INST] More! [/INST]");
    const enc = (s: string) => tok().encode(s, false);
    expect(p.tokens).toEqual([
      BOS, ...enc("[INST] <<SYS>>\nBe kind.\n<</SYS>>\n\nTell a story. [/INST] Once upon a time. "), EOS,
      BOS, ...enc("[INST] More! [/INST]"),
    ]);
    expect(p.tokens.filter((t, i) => t === BOS && i === 0)).toHaveLength(1);
    expect(p.tokens[1]).not.toBe(BOS);
    expect(p.stopTokens.sort()).toEqual([BOS, EOS]);
    expect(p.stopText).toEqual([]);
  });

  it("ChatML on a vocabulary without <|im_end|>: BOS put first (the model starts sequences with it), <|im_end|> becomes stop text", () => {
    const p = chatml.chatPrompt([{ role: "user", content: "Hi" }]);
    expect(p.text).toBe("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
    expect(p.tokens).toEqual([BOS, ...chatml.tokenizer.encode(p.text, false)]);
    expect(p.stopText).toEqual(["<|im_end|>"]);
  });

  it("the template's raise_exception, a syntax error, bad messages and no template are typed errors", () => {
    const code = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        expect(e).toBeInstanceOf(FlashError);
        return `${(e as FlashError).code}: ${(e as Error).message}`;
      }
      return "no error";
    };
    expect(code(() => llama2.chatPrompt([{ role: "assistant", content: "x" }]))).toMatch(/^BAD_CHAT_TEMPLATE: .*Conversation roles must alternate/);
    expect(code(() => llama2.chatPrompt([{ role: "user", content: "x" }], "{% for m in messages %}"))).toMatch(/^BAD_CHAT_TEMPLATE: chat template \(parse\)/);
    expect(code(() => llama2.chatPrompt([]))).toMatch(/^BAD_ARGUMENT: messages must be a non-empty array/);
    expect(code(() => llama2.chatPrompt([{ role: "user", content: 3 as unknown as string }]))).toMatch(/^BAD_ARGUMENT: messages\[0\]\.content must be a string/);
    expect(code(() => plain.chatPrompt([{ role: "user", content: "x" }]))).toMatch(/^NO_CHAT_TEMPLATE: this model has no chat template/);
    const long = [{ role: "user", content: "a b c d e f g ".repeat(60) }];
    expect(code(() => llama2.chatPrompt(long))).toMatch(/^CONTEXT_OVERFLOW: the prompt is \d+ tokens but the context holds 256/);
  });
});

describe("LanguageModel.chat", () => {
  const messages = [{ role: "user", content: "Tell me a story about a cat." }];

  it("greedy chat equals generate from the same ids; stats and lastStats agree", async () => {
    const p = llama2.chatPrompt(messages);
    const ref = await collect(llama2.generate(p.tokens, { temperature: 0, maxTokens: 40, stopTokens: p.stopTokens }));
    const got = await collect(llama2.chat(messages, { temperature: 0, maxTokens: 40 }));
    expect(got.tokens).toEqual(ref.tokens);
    expect(got.text).toBe(ref.text);
    expect(got.text.length).toBeGreaterThan(20);
    expect(got.stats.promptTokens).toBe(p.tokens.length);
    expect(llama2.lastStats).toEqual(got.stats);
  });

  it("a stop string ends the reply before it; the text is generate's text cut at its first occurrence", async () => {
    const p = llama2.chatPrompt(messages);
    const full = await collect(llama2.generate(p.tokens, { temperature: 0, maxTokens: 80, stopTokens: p.stopTokens }));
    // Pick a word that occurs in the greedy text, and a stop string spanning several tokens.
    const word = full.text.trim().split(/\s+/).slice(3, 5).join(" ");
    const at = full.text.indexOf(word);
    expect(at).toBeGreaterThan(0);
    const got = await collect(llama2.chat(messages, { temperature: 0, maxTokens: 80, stop: [word, "zzzz"] }));
    expect(got.text).toBe(full.text.slice(0, at));
    expect(got.stats.finishReason).toBe("stopString");
    expect(llama2.lastStats?.finishReason).toBe("stopString");
    // The model is free again and gives the same text.
    expect((await collect(llama2.chat(messages, { temperature: 0, maxTokens: 80 }))).text).toBe(full.text);
  });

  it("sampling with a seed is reproducible and differs from greedy", async () => {
    const a = await collect(chatml.chat(messages, { temperature: 1, topP: 0.9, seed: 7, maxTokens: 30 }));
    const b = await collect(chatml.chat(messages, { temperature: 1, topP: 0.9, seed: 7, maxTokens: 30 }));
    const g = await collect(chatml.chat(messages, { temperature: 0, maxTokens: 30 }));
    expect(a.text).toBe(b.text);
    expect(a.text).not.toBe(g.text);
  });

  it("breaking out of the loop frees the model (finishReason cancelled)", async () => {
    let n = 0;
    for await (const _ of llama2.chat(messages, { temperature: 0, maxTokens: 50 })) if (++n === 3) break;
    expect(llama2.lastStats?.finishReason).toBe("cancelled");
    expect((await collect(llama2.chat(messages, { temperature: 0, maxTokens: 5 }))).tokens).toHaveLength(5);
  });
});

describe("stopAtText on random token streams", () => {
  /** A token stream of the given texts, recording whether it was returned early. */
  function stream(texts: string[]) {
    const state = { returned: false, produced: 0 };
    const figures = (): GenerationStats => ({ promptTokens: 1, generatedTokens: state.produced, promptMs: 0, generateMs: 0, tokensPerSecond: 0, finishReason: state.returned ? "cancelled" : "maxTokens" });
    async function* gen(): AsyncGenerator<GeneratedToken, GenerationStats> {
      try {
        for (let i = 0; i < texts.length; i++) {
          state.produced++;
          yield { token: i, text: texts[i], position: i + 1 };
        }
      } finally {
        if (state.produced < texts.length) state.returned = true;
      }
      return figures();
    }
    return { gen: gen(), state, figures };
  }

  it("matches a plain search of the whole text and returns the inner stream at a stop", async () => {
    const r = rng(15);
    const alphabet = "ab<|>";
    const pick = (n: number) => Array.from({ length: n }, () => alphabet[Math.floor(r() * alphabet.length)]).join("");
    for (let trial = 0; trial < 400; trial++) {
      const texts = Array.from({ length: 1 + Math.floor(r() * 12) }, () => pick(Math.floor(r() * 4)));
      const stops = Array.from({ length: 1 + Math.floor(r() * 3) }, () => pick(1 + Math.floor(r() * 4)));
      const whole = texts.join("");
      // Reference: the earliest occurrence of any stop string in the whole text.
      const hits = stops.map((s) => whole.indexOf(s)).filter((i) => i >= 0);
      const cut = hits.length ? Math.min(...hits) : -1;
      const { gen, state, figures } = stream(texts);
      const out = await collect(stopAtText(gen, stops, figures));
      expect(out.text, JSON.stringify({ texts, stops })).toBe(cut >= 0 ? whole.slice(0, cut) : whole);
      expect(out.stats.finishReason).toBe(cut >= 0 ? "stopString" : "maxTokens");
      // Tokens come out in order, each with its own text (only the last may be cut short).
      out.tokens.forEach((t, i) => expect(t).toBe(i));
      if (cut < 0) expect(out.tokens).toHaveLength(texts.length);
      // A stop found before the last token returns the inner stream at once.
      if (cut >= 0 && state.produced < texts.length) expect(state.returned).toBe(true);
    }
  });

  it("passes tokens on as soon as their text cannot start a stop string", async () => {
    const { gen, figures } = stream(["Hello", " wor", "ld", "<", "|im", "_end|>", "after"]);
    const it = stopAtText(gen, ["<|im_end|>"], figures);
    expect((await it.next()).value).toMatchObject({ text: "Hello" });
    expect((await it.next()).value).toMatchObject({ text: " wor" });
    expect((await it.next()).value).toMatchObject({ text: "ld" });
    const end = await it.next();
    expect(end.done).toBe(true);
    expect(end.value).toMatchObject({ finishReason: "stopString" });
  });

  it("refuses empty, overlong or too many stop strings", async () => {
    for (const bad of [[""], ["x".repeat(257)], Array.from({ length: 17 }, (_, i) => `s${i}`)]) {
      const { gen, figures } = stream(["a"]);
      await expect(stopAtText(gen, bad, figures).next()).rejects.toThrow(/stop string/);
    }
  });
});
