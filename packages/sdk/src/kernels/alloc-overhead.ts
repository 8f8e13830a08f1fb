/**
 * Most bytes the kernels' allocator (`crates/kernels/src/alloc.rs`) adds to one block of 16-byte
 * aligned data: its 16-byte header, plus up to 15 bytes rounding the payload up to 16. Blocks with a
 * larger alignment (the 4096-aligned slot matrix) can also leave a gap before them, counted separately.
 */
export const ALLOC_BLOCK_OVERHEAD = 32;
