/**
 * The kernels module declares an ordinary (unshared) linear memory; Rust 1.63 cannot build it with a
 * shared one (that needs the `atomics` target feature and a rebuilt std). The kernels never use
 * atomics, so the same code runs unchanged on a *shared* memory: this rewrites the module's memory
 * section to `shared, max 4 GiB`. A shared memory's buffer is a SharedArrayBuffer, which another thread
 * (a Node reader thread, a browser worker) can fill while this one computes — the reason to want it.
 *
 * Binary layout (WebAssembly core spec §5.5.8): section id 5, u32 LEB size, vec(limits); limits =
 * flag byte (bit 0: has max, bit 1: shared), min pages, [max pages]. A shared memory must have a max.
 */
const MEMORY_SECTION = 5;
/** wasm32's ceiling: 65536 pages of 64 KiB. */
const MAX_PAGES = 65536;

/** The module bytes with its one memory made shared (max 4 GiB); throws if the module has none. */
export function withSharedMemory(module: Uint8Array): Uint8Array<ArrayBuffer> {
  let pos = 8; // magic + version
  while (pos < module.length) {
    const id = module[pos];
    const [size, body] = readU32(module, pos + 1);
    const end = body + size;
    if (id === MEMORY_SECTION) {
      const [count, limits] = readU32(module, body);
      if (count !== 1) throw new Error(`kernels module has ${count} memories; expected 1`);
      const flags = module[limits];
      const [minPages] = readU32(module, limits + 1);
      const content = [1, 0b11, ...writeU32(minPages), ...writeU32(MAX_PAGES)];
      void flags; // a previous max (if any) is replaced by wasm32's ceiling
      const section = [MEMORY_SECTION, ...writeU32(content.length), ...content];
      const out = new Uint8Array(module.length - (end - pos) + section.length);
      out.set(module.subarray(0, pos));
      out.set(section, pos);
      out.set(module.subarray(end), pos + section.length);
      return out;
    }
    pos = end;
  }
  throw new Error("kernels module has no memory section");
}

function readU32(bytes: Uint8Array, at: number): [value: number, next: number] {
  let value = 0;
  let shift = 0;
  for (;;) {
    const b = bytes[at++];
    value += (b & 0x7f) * 2 ** shift;
    if ((b & 0x80) === 0) return [value, at];
    shift += 7;
  }
}

function writeU32(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return out;
}
