// What opening a .flm costs: wall time, bytes read and how (direct / bounced), GB/s, and peak RSS
// against the budget. Prints figures; asserts nothing.
//
//   node benches/open.mjs --model FILE [--budget 50%] [--workers K] [--no-direct] [--no-evict] [--repeat N] [--no-placement]
//
// --no-placement (one instance only) drops the file offset `loadParts` gives `WeightStore.reserve`, so the
// tensors are placed as before direct placement existed: the "before" of an A/B in the same process setup.
//
// Context 256 positions (--context N), selector "all". Before each open the file is evicted from the page cache (vmtouch -e, else dd iflag=nocache), so
// the reads come from the device. Peak RSS is the process's VmHWM (/proc/self/status), read after
// each open: run one open per process (the default) to attribute it to that open alone.

import { execFileSync } from "node:child_process";
import { readFileSync, statSync } from "node:fs";
import os from "node:os";
import { performance } from "node:perf_hooks";
import { NodeFileSource, openModelFile, parseBudget } from "../packages/node-io/dist/index.js";

const args = process.argv.slice(2);
const opt = { model: null, budget: "50%", workers: 1, direct: true, evict: true, repeat: 1, context: 256, placement: true };
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (a === "--model") opt.model = args[++i];
  else if (a === "--budget") opt.budget = args[++i];
  else if (a === "--workers") opt.workers = Number(args[++i]);
  else if (a === "--no-direct") opt.direct = false;
  else if (a === "--no-evict") opt.evict = false;
  else if (a === "--no-placement") opt.placement = false;
  else if (a === "--repeat") opt.repeat = Number(args[++i]);
  else if (a === "--context") opt.context = Number(args[++i]);
  else {
    console.error(`open.mjs: unknown argument ${a}\nusage: node benches/open.mjs --model FILE [--budget 50%] [--workers K] [--no-direct] [--no-evict] [--repeat N]`);
    process.exit(2);
  }
}
if (!opt.model) {
  console.error("open.mjs: --model FILE is required");
  process.exit(2);
}

const GiB = 2 ** 30;
const fileBytes = statSync(opt.model).size;
const budget = parseBudget(opt.budget, fileBytes);
const status = (key) => Number(/\d+/.exec(readFileSync("/proc/self/status", "utf8").split("\n").find((l) => l.startsWith(key)) ?? "0")?.[0] ?? 0) * 1024;

function evict(path) {
  try {
    execFileSync("vmtouch", ["-e", path], { stdio: "ignore" });
    return "vmtouch -e";
  } catch {
    execFileSync("dd", [`if=${path}`, "iflag=nocache", "count=0", "status=none"]);
    return "dd iflag=nocache";
  }
}

console.log(`open ${opt.model} (${(fileBytes / GiB).toFixed(2)} GiB), budget ${(budget / GiB).toFixed(2)} GiB, workers ${opt.workers}, ${opt.direct ? "O_DIRECT" : "page cache"}${opt.placement ? "" : ", no direct placement"}; load ${os.loadavg().map((v) => v.toFixed(2)).join(" ")}; RSS before ${(status("VmRSS") / 2 ** 20).toFixed(0)} MiB`);
for (let r = 0; r < opt.repeat; r++) {
  const how = opt.evict ? evict(opt.model) : "not evicted";
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  // workers 1: our own source, so that its counters can be read; K > 1: each shard opens its own.
  let source;
  let model;
  if (opt.workers === 1) {
    source = await NodeFileSource.open(opt.model, { direct: opt.direct });
    const { openFlashModel, WeightStore } = await import("../packages/sdk/dist/internal.js");
    if (!opt.placement) {
      const reserve = WeightStore.prototype.reserve;
      WeightStore.prototype.reserve = function (name, dtype, rows, cols) {
        return reserve.call(this, name, dtype, rows, cols);
      };
    }
    model = await openFlashModel(source, { memoryBudget: budget, contextLength: opt.context, workers: 1, selector: "all" });
  } else {
    model = await openModelFile(opt.model, { workers: opt.workers, direct: opt.direct, memoryBudget: budget, contextLength: opt.context, selector: "all" });
  }
  const s = (performance.now() - t0) / 1e3;
  const cpu = process.cpuUsage(cpu0);
  const st = source?.stats;
  const resident = model.memoryPlan?.residentBytes;
  const line = [
    `open ${r + 1}: ${s.toFixed(2)} s wall, CPU ${((cpu.user + cpu.system) / 1e6).toFixed(2)} s (user ${(cpu.user / 1e6).toFixed(2)}, sys ${(cpu.system / 1e6).toFixed(2)}), file ${how}`,
    resident ? `resident ${(resident / GiB).toFixed(2)} GiB → ${(resident / s / 1e9).toFixed(2)} GB/s of resident bytes` : "",
    st ? `read ${(st.bytes / GiB).toFixed(2)} GiB in ${st.reads} fs reads (${st.directReads} direct, ${st.bouncedReads} bounced), I/O wait ${(st.ioWaitMs / 1e3).toFixed(2)} s` : "",
    `peak RSS ${(status("VmHWM") / GiB).toFixed(2)} GiB (budget ${(budget / GiB).toFixed(2)} GiB)`,
  ].filter(Boolean);
  console.log(line.join("; "));
  await model.dispose();
  if (source) await source.close();
}
console.log(`load ${os.loadavg().map((v) => v.toFixed(2)).join(" ")} at end`);
