import { SingleBar, Presets } from "cli-progress";
import { stat } from "node:fs/promises";
import { formatBytes } from "../format-stats.js";
import { convertFile } from "../model-files.js";
import { containerDtype, type CliDtype } from "../dtypes.js";

export interface ConvertCliOptions {
  tokenizer?: string;
  dtype: "keep" | CliDtype;
  activation: "silu" | "relu";
  bundleAlign: number;
  woLayout?: "heads" | "rows";
}

/** `flashllm convert <checkpoint.bin> <out.flm>` with a progress bar. */
export async function convertCommand(input: string, output: string, o: ConvertCliOptions): Promise<void> {
  const bar = new SingleBar({ format: "converting [{bar}] {value}/{total} steps ({percentage}%)", hideCursor: true, stream: process.stderr }, Presets.shades_classic);
  let started = false;
  await convertFile(input, o.tokenizer, output, {
    dtype: o.dtype === "keep" ? undefined : containerDtype(o.dtype),
    activation: o.activation,
    bundleAlignment: o.bundleAlign,
    woLayout: o.woLayout,
    onProgress(done, total) {
      if (!started) {
        bar.start(total, 0);
        started = true;
      }
      bar.update(done);
    },
  });
  bar.stop();
  process.stderr.write(`wrote ${output} (${formatBytes((await stat(output)).size)})\n`);
}
