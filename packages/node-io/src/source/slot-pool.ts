/** One in-flight read's resources: its bounce buffer, allocated on first bounced read and then reused. */
export interface Slot {
  bounce: Uint8Array | null;
}

/**
 * A counting semaphore of `size` slots, shared by every `read()` call of a source, so the limit on reads
 * in flight holds even when the engine issues several batches at once. FIFO for waiters.
 */
export class SlotPool {
  private readonly free: Slot[] = [];
  private readonly waiters: Array<(slot: Slot) => void> = [];

  constructor(readonly size: number) {
    for (let i = 0; i < size; i++) this.free.push({ bounce: null });
  }

  /** A slot now, or undefined if all are taken (the common path stays synchronous). */
  tryAcquire(): Slot | undefined {
    return this.free.pop();
  }

  /** A slot once one is released. */
  acquire(): Promise<Slot> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  release(slot: Slot): void {
    const waiter = this.waiters.shift();
    if (waiter) waiter(slot);
    else this.free.push(slot);
  }
}

/**
 * A bounce buffer of at least `bytes`, page-aligned as O_DIRECT needs. Node Buffers and plain
 * ArrayBuffers are not (the kernel answers EINVAL); a WebAssembly.Memory's base is.
 */
export function alignedBuffer(bytes: number): Uint8Array {
  const pages = Math.ceil(bytes / 65536);
  return new Uint8Array(new WasmMemory({ initial: pages, maximum: pages }).buffer);
}

// The repo's lib (ES2022) and @types/node 20 declare no `WebAssembly` global; name just what we use
// rather than pulling in the DOM lib.
const WasmMemory = (globalThis as unknown as {
  WebAssembly: { Memory: new (descriptor: { initial: number; maximum?: number }) => { buffer: ArrayBuffer } };
}).WebAssembly.Memory;
