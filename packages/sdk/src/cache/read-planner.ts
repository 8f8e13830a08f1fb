/**
 * Turns the neurons a layer is missing into few, large reads (DESIGN §1, "row-column bundling"):
 * bundles are stored in neuron order, so neighbouring missing neurons form one contiguous run, and a
 * small gap of uncached neurons between two runs is cheaper to read than a second request costs.
 * Gap neurons read that way are loaded into the cache too: they are real bundles, not waste.
 */
export class ReadPlanner {
  /** `[first, count]` pairs of the last plan, `runCount` of them. */
  readonly runs: Int32Array;
  runCount = 0;
  /** Slots the last plan fills (missing neurons plus gap neurons). */
  slots = 0;
  /** Gap neurons the last plan reads that nobody asked for. */
  gapNeurons = 0;
  /**
   * `[firstRun, lastRun]` pairs of the last {@link group}, `spanCount` of them: runs read together as
   * one span through a staging buffer (a pair with firstRun === lastRun is a run read on its own).
   */
  readonly spans: Int32Array;
  spanCount = 0;

  /**
   * @param neurons    neurons in a layer (bounds the plan's size)
   * @param maxGap     largest gap, in neurons, worth reading to merge two runs (0 = never merge)
   */
  constructor(neurons: number, readonly maxGap: number) {
    this.runs = new Int32Array(2 * neurons);
    this.spans = new Int32Array(2 * neurons);
  }

  /**
   * Plans reads for `missing[0…count-1]` (ascending, none cached). `isCached(n)` says whether a gap
   * neuron is already in memory (then the gap cannot be read into a new slot); `freeSlots` bounds how
   * many gap neurons can be taken on.
   */
  plan(missing: Int32Array, count: number, isCached: (neuron: number) => boolean, freeSlots: number): void {
    const runs = this.runs;
    let nRuns = 0;
    let slots = 0;
    let gaps = 0;
    let budget = freeSlots - count; // slots left for gap neurons
    for (let i = 0; i < count; i++) {
      const n = missing[i];
      if (nRuns > 0) {
        const end = runs[2 * nRuns - 2] + runs[2 * nRuns - 1]; // one past the current run
        const gap = n - end;
        if (gap === 0 || (gap <= this.maxGap && gap <= budget && !anyCached(end, n, isCached))) {
          runs[2 * nRuns - 1] += gap + 1;
          slots += gap + 1;
          gaps += gap;
          budget -= gap;
          continue;
        }
      }
      runs[2 * nRuns] = n;
      runs[2 * nRuns + 1] = 1;
      nRuns++;
      slots++;
    }
    this.runCount = nRuns;
    this.slots = slots;
    this.gapNeurons = gaps;
  }

  /**
   * Groups the runs of the last plan into spans read as one request each: runs the plan could not
   * merge (a cached neuron, or no free slot, in the gap) still share a read when the gap is at most
   * `maxGap` neurons and the spans fit a staging buffer of `stagingNeurons` bundles in all, from which
   * only the runs' bundles are copied into their slots. So the number of requests does not depend on
   * how full the cache is. With `stagingNeurons` 0 every run is its own span.
   */
  group(stagingNeurons: number): void {
    const { runs, spans, runCount, maxGap } = this;
    let staged = 0;
    let nSpans = 0;
    for (let r = 0; r < runCount; ) {
      const start = runs[2 * r];
      let s = r;
      while (s + 1 < runCount) {
        const gap = runs[2 * s + 2] - (runs[2 * s] + runs[2 * s + 1]);
        const span = runs[2 * s + 2] + runs[2 * s + 3] - start;
        if (gap > maxGap || staged + span > stagingNeurons) break;
        s++;
      }
      if (s > r) staged += runs[2 * s] + runs[2 * s + 1] - start;
      spans[2 * nSpans] = r;
      spans[2 * nSpans + 1] = s;
      nSpans++;
      r = s + 1;
    }
    this.spanCount = nSpans;
  }
}

function anyCached(from: number, to: number, isCached: (n: number) => boolean): boolean {
  for (let n = from; n < to; n++) if (isCached(n)) return true;
  return false;
}
