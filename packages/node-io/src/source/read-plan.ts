import type { ReadRequest } from "./sdk.js";

/**
 * Alignment unit for O_DIRECT: file offset, length and buffer address must be multiples of the device's
 * logical block size. 4096 covers 512-byte and 4Kn devices and equals the page size.
 */
export const BLOCK = 4096;

/** Largest round down to a multiple of {@link BLOCK}. */
export function alignDown(x: number): number {
  return x - (x % BLOCK);
}

/** Smallest multiple of {@link BLOCK} that is ≥ x. */
export function alignUp(x: number): number {
  return alignDown(x + BLOCK - 1);
}

/**
 * How a piece is read: `plain` straight into the target through the page cache, `direct` with O_DIRECT
 * straight into the target, `bounce` with O_DIRECT into an aligned bounce buffer then copied.
 */
export type PieceKind = "plain" | "direct" | "bounce";

/** One fs-sized slice of a request. Workers reuse one Piece each, so planning allocates nothing. */
export interface Piece {
  request: ReadRequest;
  /** Absolute position in the file. */
  fileOffset: number;
  length: number;
  /** Where the bytes go inside `request.target`. */
  targetOffset: number;
  kind: PieceKind;
}

/** Limits used to cut requests into pieces. */
export interface PlanLimits {
  direct: boolean;
  /** Largest plain/direct piece; a multiple of BLOCK. Splitting lets parallelism apply to big requests. */
  chunkBytes: number;
  /** Largest bounced piece; its enclosing aligned range must fit a bounce buffer. */
  bounceBytes: number;
  /** True if `buffer` is known not to be page-aligned (O_DIRECT refused it before). */
  isMisaligned(buffer: ArrayBufferLike): boolean;
}

/** A fresh Piece to be filled by {@link PieceCursor.next}. */
export function emptyPiece(request: ReadRequest): Piece {
  return { request, fileOffset: 0, length: 0, targetOffset: 0, kind: "plain" };
}

/**
 * Hands out the pieces of a batch of (already validated) requests, in order, to any number of workers.
 *
 * In direct mode a request whose file offset and target address agree modulo BLOCK reads its aligned
 * interior straight into the target and bounces only the partial head and tail blocks (e.g. the file's
 * last, partial block); any other request bounces entirely. A target address is its `byteOffset`: we
 * assume the buffer's base is page-aligned, as WebAssembly.Memory's is, until the kernel says otherwise.
 */
export class PieceCursor {
  private index = 0; // request being cut
  private done = 0; // bytes of it already handed out

  constructor(
    private readonly requests: readonly ReadRequest[],
    private readonly limits: PlanLimits,
  ) {}

  /** Fills `p` with the next piece; false when every request has been handed out. */
  next(p: Piece): boolean {
    const { requests, limits } = this;
    while (this.index < requests.length) {
      const r = requests[this.index];
      const remaining = r.length - this.done;
      if (remaining <= 0) {
        this.index++;
        this.done = 0;
        continue;
      }
      const off = r.offset + this.done;
      let length: number;
      let kind: PieceKind;
      if (!limits.direct) {
        length = Math.min(remaining, limits.chunkBytes);
        kind = "plain";
      } else if ((off - (r.target.byteOffset + this.done)) % BLOCK === 0 && !limits.isMisaligned(r.target.buffer)) {
        const head = off % BLOCK;
        if (alignDown(off + remaining) <= alignUp(off)) {
          // No whole block inside: one bounced read of the enclosing blocks beats a head and a tail read.
          length = remaining;
          kind = "bounce";
        } else if (head !== 0) {
          length = BLOCK - head;
          kind = "bounce";
        } else if (remaining >= BLOCK) {
          length = Math.min(alignDown(remaining), limits.chunkBytes);
          kind = "direct";
        } else {
          length = remaining;
          kind = "bounce";
        }
      } else {
        length = Math.min(remaining, limits.bounceBytes);
        kind = "bounce";
      }
      p.request = r;
      p.fileOffset = off;
      p.length = length;
      p.targetOffset = this.done;
      p.kind = kind;
      this.done += length;
      return true;
    }
    return false;
  }
}
