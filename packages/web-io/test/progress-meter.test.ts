// What the demo's loaders show: percent, speed over a sliding window, time left; and the step between
// an import's progress reports.
import { describe, expect, it } from "vitest";
import { ProgressMeter, formatDuration } from "../src/progress-meter.js";
import { MAX_PROGRESS_STEP, progressStep } from "../src/opfs-import.js";

describe("ProgressMeter", () => {
  it("percent, speed and time left from reports at known times", () => {
    const m = new ProgressMeter(3000, 250);
    expect(m.update(0, 1000, 0)).toMatchObject({ percent: 0, bytesPerSecond: undefined, secondsLeft: undefined });
    expect(m.update(10, 1000, 100).bytesPerSecond).toBeUndefined(); // under minSpanMs: no speed yet
    const r = m.update(100, 1000, 500); // 100 bytes in 0.5 s
    expect(r.percent).toBe(10);
    expect(r.bytesPerSecond).toBeCloseTo(200, 9);
    expect(r.secondsLeft).toBeCloseTo(4.5, 9); // 900 bytes at 200 B/s
  });

  it("speed follows the last window, not the whole copy", () => {
    const m = new ProgressMeter(1000, 100);
    let loaded = 0;
    for (let t = 0; t <= 5000; t += 100) m.update((loaded = t < 3000 ? t * 10 : 30_000 + (t - 3000)), 100_000, t); // 10 kB/s, then 1 kB/s
    const r = m.update(loaded, 100_000, 5000);
    expect(r.bytesPerSecond).toBeCloseTo(1000, 6);
    expect(r.secondsLeft).toBeCloseTo((100_000 - 32_000) / 1000, 6);
  });

  it("unknown total: no percent or time left; a restart clears the history", () => {
    const m = new ProgressMeter();
    m.update(5000, undefined, 0);
    expect(m.update(6000, undefined, 1000)).toMatchObject({ percent: undefined, secondsLeft: undefined, bytesPerSecond: 1000 });
    expect(m.update(10, undefined, 1100).bytesPerSecond).toBeUndefined();
  });

  it("formats durations", () => {
    expect(formatDuration(4.4)).toBe("4 s");
    expect(formatDuration(125)).toBe("2 min 05 s");
    expect(formatDuration(3720)).toBe("1 h 02 min");
    expect(formatDuration(Infinity)).toBe("–");
  });
});

describe("progressStep", () => {
  it("is 1% of the file, at most 256 KiB, at least 1 byte", () => {
    expect(progressStep(1_073_152)).toBe(10_732);
    expect(progressStep(7e9)).toBe(MAX_PROGRESS_STEP);
    expect(progressStep(50)).toBe(1);
  });
});
