// The CLI on GGUF files: `inspect` says what a file holds and whether it runs, from the header alone;
// `convert` recognises GGUF by its magic (any name) and keeps its blocks; the converted model gives
// run.c's greedy tokens at F32.
import { afterAll, describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GgmlType, MemorySource, kv, openFlashModel, openFlm } from "@flashllm/sdk/internal";
import { ROOT, STORIES_REF, readBytes, readJson } from "./helpers.js";
import { storiesGguf } from "./gguf-helpers.js";

const CLI = join(ROOT, "packages/node-io/dist/cli.js");
const dir = mkdtempSync(join(tmpdir(), "flashllm-gguf-cli-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const run = (args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8" });

describe("flashllm CLI on GGUF", () => {
  it("inspect: contents, runnability and a memory plan, from the header", async () => {
    const path = join(dir, "model.q4"); // no .gguf extension: recognised by its magic
    writeFileSync(path, await storiesGguf(GgmlType.Q4_0, [kv.str("tokenizer.chat_template", "{{ messages }}")]));
    const r = run(["inspect", path, "--memory-budget", "2MB"]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/architecture llama \(stories260K\)/);
    expect(r.stdout).toMatch(/tensor types: Q4_0 ×31/);
    expect(r.stdout).toMatch(/dim 64, FFN 172 neurons × 5 layers, 8 heads \(4 KV\), vocab 512/);
    expect(r.stdout).toMatch(/chat template: yes \(14 characters\)/);
    expect(r.stdout).toMatch(/flashllm can run it: yes\. As \.flm \(q4_0\)/);
    expect(r.stdout).toMatch(/with a budget of 1\.91 MiB: neuron cache of 860 bundles \(100\.0% of all neurons\)/);
    const json = JSON.parse(run(["inspect", path, "--json"]).stdout);
    expect(json).toMatchObject({ runnable: true, ggufVersion: 3, flm: { dtype: "q4_0" }, chatTemplate: true });
  });

  it("inspect names why a file cannot run", async () => {
    const bytes = await storiesGguf(GgmlType.F32, [kv.str("llama.rope.scaling.type", "yarn")]);
    const path = join(dir, "yarn.gguf");
    writeFileSync(path, bytes);
    const r = run(["inspect", path]);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/flashllm can run it: no\. UNSUPPORTED: GGUF: RoPE scaling "yarn"/);
  });

  it("convert: F32 GGUF → .flm gives run.c's greedy tokens; the chat template is kept", async () => {
    const path = join(dir, "f32.bin");
    writeFileSync(path, await storiesGguf(GgmlType.F32, [kv.str("tokenizer.chat_template", "{% for m in messages %}{{ m.content }}{% endfor %}")]));
    const out = join(dir, "f32.flm");
    const r = run(["convert", path, out]);
    expect(r.status, r.stderr).toBe(0);
    const bytes = readBytes(out);
    const file = await openFlm(new MemorySource(bytes));
    expect(file.manifest.dtype).toEqual({ resident: "f32", ffn: "f32" });
    expect(file.manifest.chatTemplate).toBe("{% for m in messages %}{{ m.content }}{% endfor %}");
    expect(file.manifest.provenance).toMatchObject({ sourceFormat: "gguf", ggufArchitecture: "llama" });
    const ref = readJson(`${STORIES_REF}/greedy.json`).cases[1];
    const model = await openFlashModel(new MemorySource(bytes));
    const tokens = [...ref.prompt_tokens];
    for await (const t of model.generate(ref.prompt, { temperature: 0, maxTokens: 80 })) tokens.push(t.token);
    await model.dispose();
    expect(tokens).toEqual(ref.tokens.slice(0, tokens.length));
  });

  it("convert without a tokenizer refuses a non-GGUF file, naming the option", () => {
    const r = run(["convert", join(ROOT, "packages/node-io/models/stories260K/stories260K.bin"), join(dir, "x.flm")]);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/is not a GGUF file, so it needs a tokenizer \(-z\/--tokenizer\)/);
  });
});
