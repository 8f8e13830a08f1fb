import { isGguf, openFlm } from "@flashllm/sdk";
import type { TensorEntry } from "@flashllm/sdk/internal";
import { inspectGguf } from "./inspect-gguf.js";
import type { CliDtype } from "../dtypes.js";
import { formatBytes } from "../format-stats.js";
import { requireFile } from "../input-files.js";
import { stdoutWatch } from "../output.js";
import { NodeFileSource } from "../source/index.js";

/**
 * `flashllm inspect <file.flm|file.gguf>`: the manifest, the resident vs flash sizes, and every
 * checksum (a GGUF: what it holds and whether flashllm can run it). With `--json`, stdout is one JSON
 * document (the manifest, and the checksum report under `verification`); a failed check also gives
 * exit code 2.
 */
export async function inspectCommand(path: string, o: { json: boolean; verify: boolean; memoryBudget?: string; dtype?: "keep" | CliDtype }): Promise<void> {
  await requireFile(path, "model");
  const source = await NodeFileSource.open(path);
  const out = stdoutWatch();
  try {
    if (await isGguf(source)) return await inspectGguf(path, source, { json: o.json, memoryBudget: o.memoryBudget, dtype: o.dtype ?? "keep" });
    const file = await openFlm(source);
    const m = file.manifest;
    if (o.json) {
      const report = o.verify ? await file.verifyAll() : undefined;
      const verification = report && { ok: report.ok, sections: report.sections, bundlesChecked: report.bundlesChecked, badBundles: report.badBundles };
      out.write(JSON.stringify({ ...m, ...(verification ? { verification } : {}) }, null, 2) + "\n");
      if (report && !report.ok) process.exitCode = 2;
      return;
    } else {
      const c = m.config;
      const size = (name: string) => file.section(name).length;
      const flash = m.ffn.layers.reduce((s, l) => s + size(l.section), 0);
      const resident = size("resident") + size(m.tokenizer.section) + size(m.ffn.crcSection);
      const lines = [
        `${path}: flashllm container v${m.version}, ${formatBytes(source.byteLength)}`,
        `architecture ${m.architecture}: dim ${c.dim}, FFN ${c.hiddenDim} neurons × ${c.nLayers} layers, ${c.nHeads} heads (${c.nKvHeads} KV), vocab ${c.vocabSize}, context ${c.seqLen}`,
        `  norm ${c.norm}, rope ${c.ropeStyle}, activation ${c.activation}${c.activationThreshold !== undefined ? ` (threshold ${c.activationThreshold})` : ""}${c.gated ? " (gated)" : ""}, classifier ${c.sharedClassifier ? "shared with the embedding" : "separate"}`,
        `dtype: resident ${m.dtype.resident}, FFN ${m.dtype.ffn}; bundle ${m.ffn.bundleBytes} B, stride ${m.ffn.bundleStride} B`,
        `resident part (kept in memory): ${formatBytes(resident)} (${((100 * resident) / source.byteLength).toFixed(1)}%)`,
        `flash part (FFN bundles, read on demand): ${formatBytes(flash)} (${((100 * flash) / source.byteLength).toFixed(1)}%)`,
        woLayoutLine(m.tensors),
        `tensors: ${m.tensors.length}; sections:`,
        ...m.sections.map((s) => `  ${s.name.padEnd(10)} offset ${String(s.offset).padStart(12)}  length ${String(s.length).padStart(12)}  crc32 ${s.crc32}`),
      ];
      const p = m.predictor;
      if (p) {
        const ranks = [...new Set(p.layers.map((l) => l.rank))].join("/");
        const from = p.input === "residual" ? "reading the residual stream before the FFN norm (imported from PowerInfer)" : "reading the FFN input";
        lines.push(`predictors: low-rank, rank ${ranks}, ${from}${p.recallTarget !== undefined ? `, recall target ${p.recallTarget}` : ""}`);
      } else lines.push("predictors: none (`flashllm calibrate` trains them)");
      if (m.provenance) lines.push(`provenance: ${JSON.stringify(m.provenance)}`);
      out.write(lines.join("\n") + "\n");
    }
    if (o.verify) {
      const report = await file.verifyAll();
      const bad = report.sections.filter((s) => !s.ok);
      const badBundles = report.badBundles;
      const hex = (n: number) => (n >>> 0).toString(16).padStart(8, "0");
      if (!report.ok) {
        for (const s of bad) out.write(`checksum MISMATCH in section ${s.name}: expected ${hex(s.expected)}, got ${hex(s.actual)}\n`);
        if (badBundles.length) out.write(`${badBundles.length} bundle(s) fail their CRC, first: ${JSON.stringify(badBundles.slice(0, 5))}\n`);
        process.exitCode = 2;
      } else {
        out.write(`checksums: all ${report.sections.length} sections and ${report.bundlesChecked} bundles verified\n`);
      }
    }
  } finally {
    await source.close();
  }
}

/** Which layout the output projections are stored in (docs/FORMAT.md §3.2.1), one line. */
function woLayoutLine(tensors: readonly TensorEntry[]): string {
  const wo = tensors.filter((t) => /^layers\.\d+\.wo$/.test(t.name));
  const blocks = [...new Set(wo.map((t) => t.columnBlock))];
  if (wo.length === 0) return "output projection (wo): none";
  if (blocks.length === 1 && blocks[0] !== undefined) return `output projection (wo): head-major, blocks of ${blocks[0]} columns (a shard reads only its heads' columns)`;
  if (blocks.length === 1) return "output projection (wo): row-major (every shard with heads reads whole rows; convert again for head-major)";
  return `output projection (wo): mixed, column blocks ${blocks.map((b) => b ?? "none").join("/")}`;
}
