// flashllm serve, driven by the official `openai` npm client over 127.0.0.1. The served model is the
// shipped stories260K converted with a chat template written here and read from flash with a neuron cache
// smaller than its FFN; expected texts come from the in-memory dense model (a separate engine: DenseFfn, no cache), whose
// logits equal the flash path's bit for bit, so greedy and seeded texts must match exactly.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawn } from "node:child_process";
import { request } from "node:http";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import OpenAI from "openai";
import { FaultInjectingSource, MemorySink, MemorySource, convertLlama2c, loadLlama2c, openFlashModel, type FlashModel, type LanguageModel } from "@flashllm/sdk/internal";
import { NodeFileSource, startServer, type FlashServer, type ServeEvent } from "@flashllm/node-io";
import { ROOT, STORIES_BIN, STORIES_TOK, readBytes } from "./helpers.js";
import { CHATML_TEMPLATE } from "./chat-templates.js";

const KEY = "sk-test-0123456789";
const MODEL = "stories260K";
const dir = mkdtempSync(join(tmpdir(), "flashllm-serve-"));
const flmPath = join(dir, "stories260K.flm");

let source: NodeFileSource;
let model: FlashModel;
let dense: LanguageModel;
let server: FlashServer;
let client: OpenAI;
const events: ServeEvent[] = [];
const waiters: { pred: (e: ServeEvent) => boolean; resolve: (e: ServeEvent) => void }[] = [];

/** Resolves with the first event (already seen or coming) that matches. */
function eventWhere(pred: (e: ServeEvent) => boolean): Promise<ServeEvent> {
  const seen = events.find(pred);
  if (seen) return Promise.resolve(seen);
  return new Promise((resolve) => waiters.push({ pred, resolve }));
}
function onEvent(e: ServeEvent): void {
  events.push(e);
  for (const w of [...waiters]) {
    if (w.pred(e)) {
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve(e);
    }
  }
}

/** The dense model's greedy (or seeded) text for a prompt. */
async function denseText(prompt: string, opts: { maxTokens: number; temperature?: number; topP?: number; seed?: number }): Promise<string> {
  let text = "";
  for await (const t of dense.generate(prompt, { temperature: 0, ...opts })) text += t.text;
  return text;
}
async function denseChat(messages: { role: string; content: string }[], opts: { maxTokens: number; stop?: string[] }): Promise<string> {
  let text = "";
  for await (const t of dense.chat(messages, { temperature: 0, ...opts })) text += t.text;
  return text;
}

beforeAll(async () => {
  const sink = new MemorySink();
  await convertLlama2c(readBytes(STORIES_BIN), readBytes(STORIES_TOK), sink, { chatTemplate: CHATML_TEMPLATE });
  writeFileSync(flmPath, sink.bytes());
  source = await NodeFileSource.open(flmPath);
  model = await openFlashModel(source, { memoryBudget: 1_000_000, contextLength: 256 });
  expect(model.memoryPlan.capacity).toBeLessThan(model.config.hiddenDim * model.config.nLayers);
  dense = await loadLlama2c(readBytes(STORIES_BIN), readBytes(STORIES_TOK));
  dense.chatTemplate = CHATML_TEMPLATE;
  server = await startServer({ model, modelId: MODEL, port: 0, apiKey: KEY, maxQueue: 8, onEvent });
  client = new OpenAI({ apiKey: KEY, baseURL: `${server.url}/v1`, maxRetries: 0, timeout: 60_000 });
});

afterAll(async () => {
  await server?.close();
  await model?.dispose();
  await source?.close();
  await dense?.dispose();
});

describe("flashllm serve with the openai client", () => {
  it("binds to 127.0.0.1 and lists the one model", async () => {
    expect(server.host).toBe("127.0.0.1");
    const list = await client.models.list();
    expect(list.data).toEqual([{ id: MODEL, object: "model", created: expect.any(Number), owned_by: "flashllm" }]);
    expect((await client.models.retrieve(MODEL)).id).toBe(MODEL);
    const e = await client.models.retrieve("gpt-4").catch((x) => x);
    expect(e).toBeInstanceOf(OpenAI.NotFoundError);
    expect(e.code).toBe("model_not_found");
  });

  it("completion, greedy: the dense model's text, usage counts, finish_reason length, and flash figures", async () => {
    const prompt = "Once upon a time";
    const r = await client.completions.create({ model: MODEL, prompt, max_tokens: 40, temperature: 0 });
    expect(r.object).toBe("text_completion");
    expect(r.choices[0].text).toBe(await denseText(prompt, { maxTokens: 40 }));
    expect(r.choices[0].finish_reason).toBe("length");
    const promptTokens = model.encodePrompt(prompt).length;
    expect(r.usage).toEqual({ prompt_tokens: promptTokens, completion_tokens: 40, total_tokens: promptTokens + 40 });
    // The cache cannot hold every neuron: this request read from storage.
    const f = (r as unknown as { flashllm: Record<string, number> }).flashllm;
    expect(f.bytes_read).toBeGreaterThan(0);
    expect(f.bytes_read % model.file.manifest.ffn.bundleStride).toBe(0);
    expect(f.read_requests).toBeGreaterThan(0);
    expect(f.cache_hit_rate).toBeGreaterThanOrEqual(0);
    expect(f.cache_hit_rate).toBeLessThanOrEqual(1);
    for (const k of ["queue_ms", "prompt_ms", "generate_ms", "io_ms", "memory_ms", "compute_ms"]) expect(f[k]).toBeGreaterThanOrEqual(0);
  });

  it("completion with temperature, top_p and seed: the SDK sampler's text for the same seed; stop cuts the text", async () => {
    const prompt = "Lily and Tom";
    const r = await client.completions.create({ model: MODEL, prompt, max_tokens: 50, temperature: 0.8, top_p: 0.9, seed: 42 });
    expect(r.choices[0].text).toBe(await denseText(prompt, { maxTokens: 50, temperature: 0.8, topP: 0.9, seed: 42 }));
    const greedy = await denseText(prompt, { maxTokens: 60 });
    const word = greedy.trim().split(/\s+/)[4];
    const cut = await client.completions.create({ model: MODEL, prompt, max_tokens: 60, temperature: 0, stop: [word, "@@"] });
    expect(cut.choices[0].text).toBe(greedy.slice(0, greedy.indexOf(word)));
    expect(cut.choices[0].finish_reason).toBe("stop");
  });

  it("completion as token ids gives the same text as the string", async () => {
    const ids = model.encodePrompt("The dog");
    const a = await client.completions.create({ model: MODEL, prompt: ids, max_tokens: 20, temperature: 0 });
    expect(a.choices[0].text).toBe(await denseText("The dog", { maxTokens: 20 }));
  });

  it("chat with the template written by the test: the SDK's chat text; the stream reassembled is the same text", async () => {
    const messages = [
      { role: "system" as const, content: "You tell stories." },
      { role: "user" as const, content: "Tell me about a cat." },
    ];
    const want = await denseChat(messages, { maxTokens: 60 });
    expect(want.length).toBeGreaterThan(20);
    const r = await client.chat.completions.create({ model: MODEL, messages, max_tokens: 60, temperature: 0 });
    expect(r.object).toBe("chat.completion");
    expect(r.choices[0].message).toMatchObject({ role: "assistant", content: want });
    const promptTokens = dense.chatPrompt(messages).tokens.length;
    expect(r.usage?.prompt_tokens).toBe(promptTokens);

    const stream = await client.chat.completions.create({ model: MODEL, messages, max_tokens: 60, temperature: 0, stream: true, stream_options: { include_usage: true } });
    const chunks = [];
    for await (const c of stream) chunks.push(c);
    expect(chunks[0].choices[0].delta).toEqual({ role: "assistant", content: "" });
    const text = chunks.map((c) => c.choices[0]?.delta?.content ?? "").join("");
    expect(text).toBe(want);
    expect(chunks.filter((c) => c.choices[0]?.delta?.content).length).toBeGreaterThan(10); // streamed, not one block
    expect(chunks.at(-2)?.choices[0].finish_reason).toBe(r.choices[0].finish_reason);
    expect(chunks.at(-1)?.usage).toEqual(r.usage);
    expect(new Set(chunks.map((c) => c.id)).size).toBe(1);
  });

  it("completion stream reassembled equals the non-streaming text", async () => {
    const prompt = "One day";
    const whole = await client.completions.create({ model: MODEL, prompt, max_tokens: 50, temperature: 0 });
    const stream = await client.completions.create({ model: MODEL, prompt, max_tokens: 50, temperature: 0, stream: true });
    let text = "";
    let finish: string | null = null;
    for await (const c of stream) {
      text += c.choices[0].text;
      finish = c.choices[0].finish_reason ?? finish;
    }
    expect(text).toBe(whole.choices[0].text);
    expect(finish).toBe("length");
  });

  it("closing a stream aborts its generation and frees the model for the next request", async () => {
    const before = events.length;
    const stream = await client.completions.create({ model: MODEL, prompt: "Once upon a time", max_tokens: 500, temperature: 0, stream: true });
    let n = 0;
    for await (const _ of stream) if (++n === 3) break; // leaving the loop aborts the HTTP request
    const end = await eventWhere((e) => events.indexOf(e) >= before && e.type === "end");
    expect(end).toMatchObject({ type: "end", finishReason: "aborted" });
    expect((end as { generatedTokens: number }).generatedTokens).toBeLessThan(500);
    expect(server.queue.busy).toBe(false);
    const next = await client.completions.create({ model: MODEL, prompt: "The sun", max_tokens: 20, temperature: 0 });
    expect(next.choices[0].text).toBe(await denseText("The sun", { maxTokens: 20 }));
  });

  it("concurrent requests are served one at a time, in the order they arrived, each with its own text", async () => {
    const prompts = ["A cat", "A dog", "A bird", "A fish"];
    const turn = await server.queue.acquire(new AbortController().signal); // hold the model while they queue
    const first = events.length;
    const pending: Promise<OpenAI.Completion>[] = [];
    for (const [i, prompt] of prompts.entries()) {
      pending.push(client.completions.create({ model: MODEL, prompt, max_tokens: 16, temperature: 0 }));
      await eventWhere((e) => events.indexOf(e) >= first && e.type === "queued" && events.filter((x, k) => k >= first && x.type === "queued").length === i + 1);
    }
    expect(server.queue.length).toBe(4);
    turn();
    const results = await Promise.all(pending);
    for (const [i, r] of results.entries()) expect(r.choices[0].text).toBe(await denseText(prompts[i], { maxTokens: 16 }));
    const mine = events.slice(first);
    const queued = mine.filter((e) => e.type === "queued").map((e) => e.id);
    const order = mine.filter((e) => e.type === "start" || e.type === "end").map((e) => `${e.type} ${e.id}`);
    // start A, end A, start B, end B, …: never two at once, and in arrival order.
    expect(order).toEqual(queued.flatMap((id) => [`start ${id}`, `end ${id}`]));
    expect(results.map((r) => r.id)).toEqual(queued);
  });

  it("a client that leaves while waiting is taken out of the line", async () => {
    const turn = await server.queue.acquire(new AbortController().signal);
    const first = events.length;
    const ac = new AbortController();
    const gone = client.completions.create({ model: MODEL, prompt: "Tom", max_tokens: 8 }, { signal: ac.signal }).catch((x) => x);
    const queued = await eventWhere((e) => events.indexOf(e) >= first && e.type === "queued");
    expect(server.queue.length).toBe(1);
    ac.abort();
    expect(await gone).toBeInstanceOf(OpenAI.APIUserAbortError);
    const end = await eventWhere((e) => e.type === "end" && "id" in queued && e.id === queued.id);
    expect(end).toMatchObject({ finishReason: "aborted", generatedTokens: 0 });
    expect(server.queue.length).toBe(0);
    turn();
    const r = await client.completions.create({ model: MODEL, prompt: "Tom", max_tokens: 8, temperature: 0 });
    expect(r.choices[0].text).toBe(await denseText("Tom", { maxTokens: 8 }));
    expect(events.slice(first).filter((e) => e.type === "start")).toHaveLength(1); // the one that left never ran
  });

  it("beyond the bounded queue: 429 with Retry-After; the queued requests still complete", async () => {
    const turn = await server.queue.acquire(new AbortController().signal);
    const first = events.length;
    const pending = Array.from({ length: 8 }, (_, i) => client.completions.create({ model: MODEL, prompt: `Tom ${i}`, max_tokens: 4, temperature: 0 }));
    await eventWhere(() => server.queue.length === 8);
    const e = await client.completions.create({ model: MODEL, prompt: "one too many", max_tokens: 4 }).catch((x) => x);
    expect(e).toBeInstanceOf(OpenAI.RateLimitError);
    expect(e.status).toBe(429);
    expect(e.code).toBe("queue_full");
    expect(Number(e.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    turn();
    const done = await Promise.all(pending);
    expect(done.every((r) => r.choices[0].finish_reason === "length" && r.usage?.completion_tokens === 4)).toBe(true);
    expect(events.slice(first).filter((x) => x.type === "end" && x.status === 429)).toHaveLength(1);
  });
});

describe("bad requests get OpenAI-style errors with the right status, never a crash", () => {
  const raw = (path: string, init: RequestInit & { key?: string | null } = {}) =>
    fetch(`${server.url}${path}`, { method: "POST", ...init, headers: { "content-type": "application/json", ...(init.key === null ? {} : { authorization: `Bearer ${init.key ?? KEY}` }), ...(init.headers as object) } });

  async function errorOf(p: Promise<unknown>): Promise<InstanceType<typeof OpenAI.APIError>> {
    const e = await p.then(() => undefined, (x) => x);
    expect(e).toBeInstanceOf(OpenAI.APIError);
    return e;
  }

  it("malformed JSON, and a body that is not an object: 400 invalid_json", async () => {
    for (const body of ["{bad", "[1,2]", "\"text\""]) {
      const r = await raw("/v1/completions", { body });
      expect(r.status).toBe(400);
      const j = await r.json();
      expect(j).toEqual({ error: { message: expect.stringMatching(/JSON/), type: "invalid_request_error", param: null, code: "invalid_json" } });
    }
  });

  it("fields of the wrong type or range: 400 naming the field", async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ temperature: "hot" }, "temperature"],
      [{ temperature: 3 }, "temperature"],
      [{ top_p: -0.5 }, "top_p"],
      [{ max_tokens: 1.5 }, "max_tokens"],
      [{ seed: "x" }, "seed"],
      [{ stop: 7 }, "stop"],
      [{ stream: "yes" }, "stream"],
      [{ n: 2 }, "n"],
      [{ prompt: { text: "x" } }, "prompt"],
      [{ prompt: [1, 512] }, "prompt"], // 512 is past the vocabulary of 512 ids
      [{ logprobs: 2 }, "logprobs"],
    ];
    for (const [extra, param] of cases) {
      const e = await errorOf(client.completions.create({ model: MODEL, prompt: "Hi", max_tokens: 2, ...extra } as never));
      expect(e.status, JSON.stringify(extra)).toBe(400);
      expect(e.param).toBe(param);
      expect(e.type).toBe("invalid_request_error");
    }
    const e = await errorOf(client.chat.completions.create({ model: MODEL, messages: [{ role: "user", content: 42 }] } as never));
    expect([e.status, e.param]).toEqual([400, "messages[0].content"]);
    const r = await errorOf(client.chat.completions.create({ model: MODEL, messages: [{ role: "wizard", content: "x" }] } as never));
    expect([r.status, r.param]).toEqual([400, "messages[0].role"]);
  });

  it("a prompt longer than the context: 400 context_length_exceeded, before it waits for the model", async () => {
    const turn = await server.queue.acquire(new AbortController().signal); // the model is busy…
    const e = await errorOf(client.completions.create({ model: MODEL, prompt: "the cat sat on the mat ".repeat(200), max_tokens: 2 })).finally(turn); // …and the answer comes anyway
    expect(e.status).toBe(400);
    expect(e.code).toBe("context_length_exceeded");
    expect(e.message).toMatch(/the prompt is \d+ tokens but the context holds 256/);
    expect(e.param).toBe("prompt");
    const chat = await errorOf(client.chat.completions.create({ model: MODEL, messages: [{ role: "user", content: "the cat sat on the mat ".repeat(200) }] }));
    expect([chat.status, chat.code, chat.param]).toEqual([400, "context_length_exceeded", "messages"]);
  });

  it("a body over the limit: 413 request_too_large", async () => {
    const e = await errorOf(client.completions.create({ model: MODEL, prompt: "x".repeat(1_100_000), max_tokens: 2 }));
    expect(e.status).toBe(413);
    expect(e.code).toBe("request_too_large");
  });

  it("a chunked body (no Content-Length) that grows past the limit: 413 while it is still arriving", async () => {
    const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request(`${server.url}/v1/completions`, { method: "POST", headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" } }, (r) => {
        let body = "";
        r.on("data", (d) => (body += d));
        r.on("end", () => resolve({ status: r.statusCode ?? 0, body }));
      });
      req.on("error", reject);
      req.write(`{"model":"${MODEL}","prompt":"`);
      const chunk = "y".repeat(64 * 1024);
      for (let i = 0; i < 20; i++) req.write(chunk); // 1.25 MiB > the 1 MiB default
      req.end('"}');
    });
    expect(res.status).toBe(413);
    expect(JSON.parse(res.body).error).toMatchObject({ type: "invalid_request_error", code: "request_too_large" });
  });

  it("unknown model 404, bad or missing API key 401, unknown route 404, wrong method 405", async () => {
    const m = await errorOf(client.chat.completions.create({ model: "gpt-4o", messages: [{ role: "user", content: "x" }] }));
    expect([m.status, m.code, m.param]).toEqual([404, "model_not_found", "model"]);
    const bad = new OpenAI({ apiKey: "sk-wrong", baseURL: `${server.url}/v1`, maxRetries: 0 });
    const k = await errorOf(bad.completions.create({ model: MODEL, prompt: "x" }));
    expect(k).toBeInstanceOf(OpenAI.AuthenticationError);
    expect(k.code).toBe("invalid_api_key");
    const none = await raw("/v1/models", { method: "GET", key: null });
    expect(none.status).toBe(401);
    expect((await none.json()).error.code).toBe("invalid_api_key");
    expect((await raw("/v1/embeddings", { body: "{}" })).status).toBe(404);
    const wrong = await raw("/v1/completions", { method: "GET" });
    expect(wrong.status).toBe(405);
    expect(wrong.headers.get("allow")).toBe("POST");
  });

  it("chat on a model without a template: 400 no_chat_template; the model still serves afterwards", async () => {
    const saved = model.chatTemplate;
    model.chatTemplate = undefined;
    try {
      const e = await errorOf(client.chat.completions.create({ model: MODEL, messages: [{ role: "user", content: "x" }] }));
      expect([e.status, e.code]).toEqual([400, "no_chat_template"]);
    } finally {
      model.chatTemplate = saved;
    }
    const ok = await client.completions.create({ model: MODEL, prompt: "Once upon a time", max_tokens: 10, temperature: 0 });
    expect(ok.choices[0].text).toBe(await denseText("Once upon a time", { maxTokens: 10 }));
  });
});

describe("a storage failure in the middle of a stream", () => {
  it("is reported in the stream as an error object; the server serves the next request", async () => {
    const sink = new MemorySink();
    await convertLlama2c(readBytes(STORIES_BIN), readBytes(STORIES_TOK), sink);
    // Every read call from `failFrom` on fails: armed a few tokens into the stream's generation.
    let failFrom = Infinity;
    const faulty = new FaultInjectingSource(new MemorySource(sink.bytes()), { rule: (call) => (call.index >= failFrom ? "error" : undefined) });
    const m = await openFlashModel(faulty, { memoryBudget: 900_000, contextLength: 128 });
    const s = await startServer({ model: m, modelId: "faulty", port: 0 });
    try {
      const c = new OpenAI({ apiKey: "none", baseURL: `${s.url}/v1`, maxRetries: 0 });
      const readsPerToken = m.config.nLayers; // at least one read per layer: the cache holds about half the FFN
      failFrom = faulty.stats.calls + readsPerToken * 10;
      const stream = await c.completions.create({ model: "faulty", prompt: "Once upon a time", max_tokens: 100, temperature: 0, stream: true });
      let text = "";
      const err = await (async () => {
        for await (const chunk of stream) text += chunk.choices[0].text;
      })().catch((x) => x);
      failFrom = Infinity;
      expect(err).toBeInstanceOf(OpenAI.APIError);
      expect(err.message).toMatch(/READ_FAILED/);
      // Some text came before the failure, and it is the right text.
      expect(text.length).toBeGreaterThan(0);
      expect((await denseText("Once upon a time", { maxTokens: 100 })).startsWith(text)).toBe(true);
      expect(s.queue.busy).toBe(false);
      const ok = await c.completions.create({ model: "faulty", prompt: "Once upon a time", max_tokens: 20, temperature: 0 });
      expect(ok.choices[0].text).toBe(await denseText("Once upon a time", { maxTokens: 20 }));
    } finally {
      await s.close();
      await m.dispose();
    }
  });
});

describe("bounded load", () => {
  it("200 requests, 8 at a time, all answered right; heap and WASM memory stay flat", async () => {
    setFlagsFromString("--expose-gc");
    const gc = runInNewContext("gc") as () => void;
    const prompts = ["Once upon a time", "The little dog", "Lily wanted"];
    const want: string[] = [];
    for (const p of prompts) want.push(await denseText(p, { maxTokens: 6 }));
    const chatWant = await denseChat([{ role: "user", content: "Hi" }], { maxTokens: 6 });
    const one = async (i: number): Promise<void> => {
      const k = i % prompts.length;
      if (i % 4 === 3) {
        const stream = await client.chat.completions.create({ model: MODEL, messages: [{ role: "user", content: "Hi" }], max_tokens: 6, temperature: 0, stream: true });
        let text = "";
        for await (const c of stream) text += c.choices[0]?.delta?.content ?? "";
        expect(text, `request ${i}`).toBe(chatWant);
      } else {
        const r = await client.completions.create({ model: MODEL, prompt: prompts[k], max_tokens: 6, temperature: 0, stream: i % 4 === 1 ? false : undefined });
        expect(r.choices[0].text, `request ${i}`).toBe(want[k]);
      }
    };
    const run = async (from: number, to: number) => {
      let next = from;
      await Promise.all(Array.from({ length: 8 }, async () => {
        while (next < to) await one(next++);
      }));
    };
    const wasm = model.wasmMemoryBytes;
    await run(0, 40); // warm up: JIT, connection pool, buffers
    gc();
    const { heapUsed: heap0, rss: rss0 } = process.memoryUsage();
    await run(40, 200);
    gc();
    const { heapUsed: heap1, rss: rss1 } = process.memoryUsage();
    const mib = (x: number) => (x / 2 ** 20).toFixed(1);
    console.log(`[serve load] requests 40→200: heap ${mib(heap0)} → ${mib(heap1)} MiB, RSS ${mib(rss0)} → ${mib(rss1)} MiB, WASM ${mib(wasm)} MiB`);
    // 160 more requests leaking even 32 KiB each would add 5 MiB of heap.
    expect(heap1 - heap0).toBeLessThan(4 * 2 ** 20);
    expect(rss1 - rss0).toBeLessThan(32 * 2 ** 20);
    expect(model.wasmMemoryBytes).toBe(wasm);
    expect(server.queue.busy).toBe(false);
    expect(server.queue.length).toBe(0);
  });
});

describe("flashllm serve (the CLI)", () => {
  it.each([[[]], [["--workers", "2"]]])("starts on a free port with --api-key and --chat-template, answers the client, and stops on SIGINT (%j)", async (extra: string[]) => {
    const tpl = join(dir, "chatml.jinja");
    writeFileSync(tpl, CHATML_TEMPLATE);
    const plain = join(dir, "plain.flm");
    const sink = new MemorySink();
    await convertLlama2c(readBytes(STORIES_BIN), readBytes(STORIES_TOK), sink);
    writeFileSync(plain, sink.bytes());
    const args = ["serve", plain, "--port", "0", "--api-key", "k1", "--chat-template", tpl, "--memory-budget", "70%", "--context", "128", "--model-name", "tiny", ...extra];
    const child = spawn(process.execPath, [join(ROOT, "packages/node-io/dist/cli.js"), ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d) => (stderr += d));
    const url = await new Promise<string>((resolve, reject) => {
      let out = "";
      child.stdout.on("data", (d) => {
        out += d;
        const m = /^(http:\/\/127\.0\.0\.1:\d+\/v1)\n/m.exec(out);
        if (m) resolve(m[1]);
      });
      child.once("exit", (code) => reject(new Error(`serve exited with ${code}: ${stderr}`)));
    });
    const c = new OpenAI({ apiKey: "k1", baseURL: url, maxRetries: 0 });
    const r = await c.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "Tell me about a cat." }], max_tokens: 30, temperature: 0 });
    expect(r.choices[0].message.content).toBe(await denseChat([{ role: "user", content: "Tell me about a cat." }], { maxTokens: 30 }));
    const code = await new Promise<number | null>((resolve) => {
      child.once("exit", resolve);
      child.kill("SIGINT");
    });
    expect(code, stderr).toBe(0);
    expect(stderr).toMatch(/serving "tiny" on http:\/\/127\.0\.0\.1:\d+\/v1 \(OpenAI API, API key required\)/);
    expect(stderr).toMatch(/chatcmpl-\w+ 200 maxTokens: \d+ prompt \+ 30 generated tokens/);
    // A 1.2 MB model: "auto" keeps one instance; --workers 2 serves from two shards, the same reply.
    if (extra.length > 0) expect(stderr).toMatch(/, 2 shards \(shard 0 on this thread\)/);
    else expect(stderr).not.toMatch(/shards/);
  });
});
