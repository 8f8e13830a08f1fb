/**
 * Turns a stream of `{ loaded, total }` reports into what a loader shows: bytes, percent, speed and
 * time left. Speed is measured over the last few seconds (a sliding window), so it follows a network
 * that speeds up or stalls instead of averaging over the whole copy; bytes that were already there
 * (a resumed import) do not count as speed.
 */
export interface ProgressReading {
  loaded: number;
  total?: number;
  /** 0…100, undefined when the total is unknown. */
  percent?: number;
  /** Bytes per second over the window, undefined until two reports `minSpanMs` apart. */
  bytesPerSecond?: number;
  /** Seconds left at that speed, undefined without a total or a speed. */
  secondsLeft?: number;
}

export class ProgressMeter {
  private readonly samples: { t: number; loaded: number }[] = [];

  /**
   * @param windowMs how far back the speed looks (default 3 s)
   * @param minSpanMs shortest span a speed is computed over (default 250 ms: earlier figures jump about)
   */
  constructor(
    readonly windowMs = 3000,
    readonly minSpanMs = 250,
  ) {}

  /** Records a report made at `now` (ms, e.g. `performance.now()`) and returns the reading. */
  update(loaded: number, total: number | undefined, now: number): ProgressReading {
    const s = this.samples;
    if (s.length > 0 && loaded < s[s.length - 1].loaded) s.length = 0; // started over
    s.push({ t: now, loaded });
    while (s.length > 2 && now - s[1].t >= this.windowMs) s.shift();
    const first = s[0];
    const span = now - first.t;
    const bytesPerSecond = span >= this.minSpanMs ? ((loaded - first.loaded) * 1000) / span : undefined;
    const percent = total ? Math.min(100, (100 * loaded) / total) : undefined;
    const secondsLeft = total !== undefined && bytesPerSecond ? Math.max(0, total - loaded) / bytesPerSecond : undefined;
    return { loaded, total, percent, bytesPerSecond, secondsLeft };
  }

  /** Forgets the history (a new copy starts). */
  reset(): void {
    this.samples.length = 0;
  }
}

/** "12 s", "3 min 05 s", "1 h 02 min": a time left for people. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return "–";
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, "0")} s`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")} min`;
}
