import { mkdir, stat } from "node:fs/promises";
import { dirname } from "node:path";
import { performance } from "node:perf_hooks";
import { synthShape, synthesizeFlm, type Manifest, type SynthShape } from "@flashllm/sdk/internal";
import { NodeFileSink } from "../file-sink.js";
import { formatBytes } from "../format-stats.js";

export interface SynthCommandOptions {
  shape: string;
  out: string;
  layers?: number;
  vocab?: number;
  seed: number;
  bundleAlign: number;
  woLayout?: "heads" | "rows";
  quiet?: boolean;
}

/** Writes a random-weight `.flm` of a model's exact shape, streaming, with progress on stderr. */
export async function synthFile(shape: SynthShape, out: string, o: { seed: number; bundleAlign: number; woLayout?: "heads" | "rows"; quiet?: boolean }): Promise<Manifest> {
  await mkdir(dirname(out), { recursive: true });
  const sink = await NodeFileSink.create(out);
  const t0 = performance.now();
  let last = 0;
  const say = (m: string) => {
    if (!o.quiet) process.stderr.write(m);
  };
  say(`[synth] ${shape.name}: dim ${shape.config.dim}, FFN ${shape.config.hiddenDim} (${shape.config.gated ? "gated, " : ""}${shape.config.activation}), ${shape.config.nLayers} layers, vocab ${shape.config.vocabSize}; random q8 weights (the .flm format stores f32 or q8, no f16)\n`);
  try {
    const m = await synthesizeFlm(sink, shape, {
      seed: o.seed,
      bundleAlignment: o.bundleAlign,
      woLayout: o.woLayout,
      onProgress: (done, total) => {
        const now = performance.now();
        if (now - last < 500 && done < total) return;
        last = now;
        const s = (now - t0) / 1000;
        const rate = done / Math.max(s, 1e-3);
        say(`\r[synth] ${((100 * done) / total).toFixed(1).padStart(5)}%  ${formatBytes(done)} of ${formatBytes(total)}  ${formatBytes(rate)}/s  ETA ${((total - done) / Math.max(rate, 1)).toFixed(0)} s   `);
      },
    });
    await sink.commit();
    const bytes = (await stat(out)).size;
    say(`\n[synth] wrote ${out}: ${formatBytes(bytes)} in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
    return m;
  } catch (e) {
    await sink.abort();
    throw e;
  }
}

/** `flashllm synth`. */
export async function synthCommand(o: SynthCommandOptions): Promise<void> {
  const shape = synthShape(o.shape, { nLayers: o.layers, vocabSize: o.vocab });
  await synthFile(shape, o.out, o);
}
