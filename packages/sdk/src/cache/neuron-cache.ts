import { FlashError } from "../errors.js";

/**
 * The neuron cache (DESIGN §1, "memory management"): a preallocated slot matrix of `capacity` slots of
 * `slotStride` bytes in WASM memory, holding whole neuron bundles of any layer (the flash path gives
 * neuron `i` of layer `l` the id `l·neurons + i`, so one cache serves every layer). Live slots are always
 * `0 … size-1`: insert appends at `size`, delete moves the last live slot into the hole. So the
 * live bundles stay dense, nothing is allocated per token, and nothing that stays is copied.
 *
 * Each neuron remembers the clock tick that last used it. When room is needed, neurons outside the
 * window (`window` ticks) leave before any inside it (see {@link makeRoom}): the paper's window, made
 * lazy: a neuron that left the window keeps its slot, and can still hit, until the slot is needed.
 * {@link evictOutsideWindow} gives the paper's strict window.
 * Loads are two-phase so a failed read leaves the cache as it was: {@link reserve} hands out slots
 * past the live ones, {@link commit} makes them live, {@link rollback} forgets them.
 */
export class NeuronCache {
  /** Number of live slots. */
  size = 0;
  /** Slots handed out by {@link reserve} and not yet committed or rolled back. */
  private reserved = 0;
  private readonly slotOfNeuron: Int32Array; // neuron → slot, -1 when not cached
  private readonly neuronOfSlot: Int32Array; // slot → neuron (for live and reserved slots)
  private readonly lastUsed: Int32Array; // neuron → last clock tick that used it (-2^31 when never)
  // Cached neurons in order of last use, oldest at `head` (a doubly linked list over neuron ids, -1
  // ends it): eviction takes from either end without scanning the slots. Clock ticks never decrease,
  // so a touched neuron moves to the tail and the list stays sorted.
  private readonly prev: Int32Array;
  private readonly next: Int32Array;
  private head = -1;
  private tail = -1;

  /**
   * @param neurons  neuron ids the cache can hold (every layer's neurons)
   * @param capacity slots available (fixed for the cache's life)
   * @param slotStride bytes per slot (the file's bundle stride, so runs of bundles land in runs of slots)
   * @param memory   returns a byte view of the slot matrix (re-fetched because WASM memory growth detaches views)
   * @param window   clock ticks a used neuron stays protected from eviction (the flash path ticks once
   *                 per layer evaluation, so a window of k tokens is k × layers ticks)
   */
  constructor(
    readonly neurons: number,
    readonly capacity: number,
    readonly slotStride: number,
    private readonly memory: () => Uint8Array,
    readonly window: number,
  ) {
    if (!(capacity >= 1)) throw new FlashError("BUDGET_TOO_SMALL", `a neuron cache needs at least one slot, got ${capacity}`);
    this.slotOfNeuron = new Int32Array(neurons).fill(-1);
    this.neuronOfSlot = new Int32Array(capacity).fill(-1);
    this.lastUsed = new Int32Array(neurons).fill(NEVER);
    this.prev = new Int32Array(neurons).fill(-1);
    this.next = new Int32Array(neurons).fill(-1);
  }

  /** Free slots (not live, not reserved). */
  get free(): number {
    return this.capacity - this.size - this.reserved;
  }

  /** Slot of `neuron`, or -1 when it is not cached. */
  slotOf(neuron: number): number {
    return this.slotOfNeuron[neuron];
  }

  /** Neuron held by live slot `slot`. */
  neuronAt(slot: number): number {
    return this.neuronOfSlot[slot];
  }

  /** Records that `neuron` is used at clock tick `tick` (protects it for the window). Ticks never decrease. */
  touch(neuron: number, tick: number): void {
    this.lastUsed[neuron] = tick;
    if (this.slotOfNeuron[neuron] >= 0 && this.tail !== neuron) {
      this.unlink(neuron);
      this.linkAfter(neuron, this.tail);
    }
  }

  /** Byte offset of `slot` within the slot matrix. */
  slotOffset(slot: number): number {
    return slot * this.slotStride;
  }

  /**
   * Makes at least `need` slots free. Neurons that left the window go first, least recently used
   * first. If that is not enough, neurons inside the window go, most recently used first: the clock
   * ticks once per layer evaluation and layers come round in a cycle, so the neuron used most recently
   * is the one needed again furthest in the future (Belady's choice; LRU would evict exactly the
   * neurons the next layers are about to ask for). Neurons used at `tick` itself are never evicted,
   * so the result can fall short: returns how many slots are free. Up to `extra` more slots are freed
   * from neurons that left the window only (room that is nice to have, not needed).
   */
  makeRoom(need: number, tick: number, extra = 0): number {
    if (this.free >= need + extra || this.size === 0) return this.free;
    if (this.reserved > 0) throw new FlashError("BAD_ARGUMENT", "makeRoom during a pending load");
    const w = Math.max(1, this.window);
    // Outside the window, oldest first, from the head: `extra` slots more if such neurons allow, so
    // the next layers find room without coming back here.
    while (this.free < need + extra && this.head >= 0 && this.age(this.head, tick) >= w) this.evictNeuron(this.head);
    // Inside the window, youngest first, from the tail, past the neurons of this tick (age 0, never taken).
    let n = this.tail;
    while (n >= 0 && this.age(n, tick) === 0) n = this.prev[n];
    while (this.free < need && n >= 0) {
      const older = this.prev[n];
      this.evictNeuron(n);
      n = older;
    }
    return this.free;
  }

  /** Evicts every neuron (the no-reuse strategies start each layer evaluation empty). */
  clear(): void {
    if (this.reserved > 0) throw new FlashError("BAD_ARGUMENT", "clear during a pending load");
    for (let s = 0; s < this.size; s++) {
      const n = this.neuronOfSlot[s];
      this.slotOfNeuron[n] = -1;
      this.prev[n] = this.next[n] = -1;
    }
    this.size = 0;
    this.head = this.tail = -1;
  }

  /**
   * Reserves `count` consecutive slots for neurons `first … first+count-1` (a contiguous run in the
   * file, so one read fills them). Returns the first slot. The neurons must not be cached.
   */
  reserve(first: number, count: number): number {
    if (count > this.free) throw new FlashError("BUDGET_TOO_SMALL", `cache: ${count} slots asked, ${this.free} free`);
    const start = this.size + this.reserved;
    for (let i = 0; i < count; i++) {
      const n = first + i;
      if (this.slotOfNeuron[n] >= 0) throw new FlashError("BAD_ARGUMENT", `neuron ${n} is already cached`);
      this.neuronOfSlot[start + i] = n;
    }
    this.reserved += count;
    return start;
  }

  /** Makes every reserved slot live (their bytes have arrived). */
  commit(): void {
    for (let s = this.size; s < this.size + this.reserved; s++) {
      const n = this.neuronOfSlot[s];
      this.slotOfNeuron[n] = s;
      this.insertByAge(n);
    }
    this.size += this.reserved;
    this.reserved = 0;
  }

  /** Forgets every reserved slot (their read failed): the cache is exactly as before the reservations. */
  rollback(): void {
    for (let s = this.size; s < this.size + this.reserved; s++) this.neuronOfSlot[s] = -1;
    this.reserved = 0;
  }

  /** Swap-with-last delete: the last live bundle moves into the hole, its maps follow. */
  private evictSlot(s: number): void {
    const last = this.size - 1;
    const gone = this.neuronOfSlot[s];
    if (s !== last) {
      const moved = this.neuronOfSlot[last];
      const mem = this.memory();
      const stride = this.slotStride;
      mem.copyWithin(s * stride, last * stride, (last + 1) * stride);
      this.neuronOfSlot[s] = moved;
      this.slotOfNeuron[moved] = s;
    }
    this.neuronOfSlot[last] = -1;
    this.slotOfNeuron[gone] = -1;
    // Forget its last use: if it comes back unasked (a gap neuron of a merged read) it is the oldest
    // thing here and goes to the head at once. Keeping the old tick made `insertByAge` walk the list
    // from the tail for it: ~90 ms per 7B token once the cache had filled (CPU profile, 30 Nov).
    this.lastUsed[gone] = NEVER;
    this.unlink(gone);
    this.size = last;
  }

  private evictNeuron(n: number): void {
    this.evictSlot(this.slotOfNeuron[n]);
  }

  // Puts a newly committed neuron where its last use belongs: at the tail when used this tick (loaded
  // on demand), at the head when not used since it was last evicted (a gap neuron, a prefetched one),
  // else walking back from the tail (a neuron touched in an earlier tick and loaded only now: rare).
  private insertByAge(n: number): void {
    const used = this.lastUsed[n];
    let after = this.tail;
    if (this.head >= 0 && used <= this.lastUsed[this.head]) after = -1;
    else while (after >= 0 && this.lastUsed[after] > used) after = this.prev[after];
    this.linkAfter(n, after);
  }

  // Links `n` after `after` (-1: at the head).
  private linkAfter(n: number, after: number): void {
    const following = after < 0 ? this.head : this.next[after];
    this.prev[n] = after;
    this.next[n] = following;
    if (after < 0) this.head = n;
    else this.next[after] = n;
    if (following < 0) this.tail = n;
    else this.prev[following] = n;
  }

  private unlink(n: number): void {
    const p = this.prev[n];
    const q = this.next[n];
    if (p < 0) this.head = q;
    else this.next[p] = q;
    if (q < 0) this.tail = p;
    else this.prev[q] = p;
    this.prev[n] = this.next[n] = -1;
  }

  // Ticks since `neuron` was last used (never used: older than any).
  private age(neuron: number, tick: number): number {
    const used = this.lastUsed[neuron];
    return used === NEVER ? Infinity : Math.max(tick - used, 0);
  }

  /**
   * The paper's strict window: evicts every neuron not used in the last `window` ticks (up to and
   * including `tick`). Returns how many were evicted. Without it, such neurons stay until their slot
   * is needed (LRU beyond the window), which can only raise the hit rate at the same memory.
   */
  evictOutsideWindow(tick: number): number {
    let evicted = 0;
    while (this.head >= 0 && this.age(this.head, tick) >= this.window) {
      this.evictNeuron(this.head);
      evicted++;
    }
    return evicted;
  }
}

const NEVER = -0x80000000;
