import { describe, expect, it } from "vitest";
import { BLOCK, PieceCursor, emptyPiece, type Piece, type PlanLimits } from "../../src/source/read-plan.js";
import type { ReadRequest } from "../../src/source/sdk.js";

const limits = (direct: boolean, misaligned = false): PlanLimits => ({
  direct,
  chunkBytes: 4 * BLOCK,
  bounceBytes: 2 * BLOCK,
  isMisaligned: () => misaligned,
});

function pieces(requests: ReadRequest[], l: PlanLimits): Array<Omit<Piece, "request"> & { r: number }> {
  const c = new PieceCursor(requests, l);
  const p = emptyPiece(requests[0]);
  const out = [];
  while (c.next(p)) out.push({ r: requests.indexOf(p.request), fileOffset: p.fileOffset, length: p.length, targetOffset: p.targetOffset, kind: p.kind });
  return out;
}

const mem = new Uint8Array(new WebAssembly.Memory({ initial: 2 }).buffer);
const req = (offset: number, length: number, at: number): ReadRequest => ({ offset, length, target: mem.subarray(at, at + length) });

describe("PieceCursor", () => {
  it("cuts plain reads into chunks and skips empty requests", () => {
    expect(pieces([req(0, 0, 0), req(10, 9 * BLOCK, 5)], limits(false))).toEqual([
      { r: 1, fileOffset: 10, length: 4 * BLOCK, targetOffset: 0, kind: "plain" },
      { r: 1, fileOffset: 10 + 4 * BLOCK, length: 4 * BLOCK, targetOffset: 4 * BLOCK, kind: "plain" },
      { r: 1, fileOffset: 10 + 8 * BLOCK, length: BLOCK, targetOffset: 8 * BLOCK, kind: "plain" },
    ]);
  });

  it("reads an aligned request directly, in chunks", () => {
    expect(pieces([req(BLOCK, 5 * BLOCK, BLOCK)], limits(true)).map((p) => [p.kind, p.length])).toEqual([
      ["direct", 4 * BLOCK],
      ["direct", BLOCK],
    ]);
  });

  it("bounces only the partial head and tail of a congruent request", () => {
    // offset ≡ address (mod BLOCK): the interior can go straight into the target.
    expect(pieces([req(BLOCK + 100, 3 * BLOCK, 100)], limits(true)).map((p) => [p.kind, p.fileOffset, p.length])).toEqual([
      ["bounce", BLOCK + 100, BLOCK - 100],
      ["direct", 2 * BLOCK, 2 * BLOCK],
      ["bounce", 4 * BLOCK, 100],
    ]);
  });

  it("bounces a small congruent request that holds no whole block in one piece", () => {
    expect(pieces([req(BLOCK - 3, 6, BLOCK - 3)], limits(true)).map((p) => [p.kind, p.length])).toEqual([["bounce", 6]]);
  });

  it("bounces a request whose offset and address disagree, in bounce-sized pieces", () => {
    expect(pieces([req(BLOCK, 5 * BLOCK, 8)], limits(true)).map((p) => [p.kind, p.length])).toEqual([
      ["bounce", 2 * BLOCK],
      ["bounce", 2 * BLOCK],
      ["bounce", BLOCK],
    ]);
  });

  it("bounces everything in a buffer known to be misaligned", () => {
    expect(pieces([req(0, 2 * BLOCK, 0)], limits(true, true)).map((p) => p.kind)).toEqual(["bounce"]);
  });
});
