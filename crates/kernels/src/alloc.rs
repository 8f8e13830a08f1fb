//! The module's heap: a first-fit, address-ordered free list over linear memory.
//!
//! Every block (free or live) starts with a 16-byte header: word 0 is the block size in bytes
//! (header included, a multiple of 16), word 1 is the next free block (free blocks) or `LIVE`
//! (live blocks). Blocks start on 16-byte boundaries, so user pointers (block + 16) are 16-byte
//! aligned; larger alignments split a free gap off the front of the block. Keeping the free list
//! sorted by address makes coalescing a look at the two list neighbours of a freed block.
//!
//! The allocator is generic over [`Memory`] so the same code runs on wasm linear memory and, in
//! native tests, on a simulated one.

/// Bytes of a wasm page.
pub const PAGE: u64 = 65536;
const HEADER: u64 = 16;
/// Marks a live block's header (word 1), to catch frees of pointers that are not live blocks.
const LIVE: u32 = 0x4C49_5645;
/// The heap never extends into the last 64 KiB of the 4 GiB space, so every block address and
/// size fits in a u32.
const MAX_END: u64 = (1 << 32) - PAGE;

/// A growable linear memory addressed by u32 byte offsets.
pub trait Memory {
    /// Current size in bytes.
    fn size(&self) -> u64;
    /// Grows by `pages` wasm pages; false when that is impossible.
    fn grow(&mut self, pages: u32) -> bool;
    fn load(&self, addr: u32) -> u32;
    fn store(&mut self, addr: u32, value: u32);
}

pub struct Heap<M: Memory> {
    mem: M,
    /// Heap range is `[base, end)`; `end` is where the heap last grew to.
    base: u64,
    end: u64,
    /// First free block, 0 when none.
    free: u32,
    used: u32,
    ready: bool,
}

fn align_up(v: u64, a: u64) -> u64 {
    (v + a - 1) & !(a - 1)
}

impl<M: Memory> Heap<M> {
    pub const fn new(mem: M) -> Self {
        Heap { mem, base: 0, end: 0, free: 0, used: 0, ready: false }
    }

    /// Starts the heap at `base` (rounded up to 16), spanning the rest of the current memory.
    /// `base` must be non-zero (0 is the null pointer).
    pub fn init(&mut self, base: u32) {
        self.base = align_up(base.max(1) as u64, HEADER);
        self.end = self.base.max(self.mem.size().min(MAX_END));
        self.free = 0;
        self.used = 0;
        self.ready = true;
        if self.end > self.base {
            self.insert_free(self.base as u32, (self.end - self.base) as u32);
        }
    }

    pub fn is_ready(&self) -> bool {
        self.ready
    }

    /// Bytes in live blocks, headers included.
    pub fn used(&self) -> u32 {
        self.used
    }

    /// A block of `size` bytes aligned to `max(align, 16)`, or 0 when `align` is not a power of two
    /// or memory cannot grow enough.
    pub fn alloc(&mut self, size: u32, align: u32) -> u32 {
        debug_assert!(self.ready);
        if align != 0 && !align.is_power_of_two() {
            return 0;
        }
        let align = (align as u64).max(HEADER);
        // At least 16 payload bytes, so distinct allocations never share an address.
        let payload = align_up((size as u64).max(1), HEADER);
        if let Some(p) = self.alloc_from_free_list(payload, align) {
            return p;
        }
        if !self.grow_for(payload, align) {
            return 0;
        }
        self.alloc_from_free_list(payload, align).unwrap_or(0)
    }

    /// Returns a live block to the free list, merging it with free neighbours. `free(0)` is a no-op.
    pub fn free(&mut self, ptr: u32) {
        if ptr == 0 {
            return;
        }
        let block = ptr.wrapping_sub(HEADER as u32);
        assert!(self.ready && ptr as u64 >= self.base + HEADER && (ptr as u64) < self.end);
        assert!(self.mem.load(block + 4) == LIVE, "fl_free: not a live block");
        let size = self.mem.load(block);
        self.used -= size;
        self.mem.store(block + 4, 0);
        self.insert_free(block, size);
    }

    fn next(&self, block: u32) -> u32 {
        self.mem.load(block + 4)
    }

    /// Makes `prev`'s successor `next` (`prev == 0`: the list head).
    fn link(&mut self, prev: u32, next: u32) {
        if prev == 0 {
            self.free = next;
        } else {
            self.mem.store(prev + 4, next);
        }
    }

    /// First fit: the first free block that holds `payload` bytes at an `align`ed address after
    /// its header.
    fn alloc_from_free_list(&mut self, payload: u64, align: u64) -> Option<u32> {
        let mut prev = 0u32;
        let mut cur = self.free;
        while cur != 0 {
            let size = self.mem.load(cur) as u64;
            let user = align_up(cur as u64 + HEADER, align);
            let front = user - HEADER - cur as u64;
            if front + HEADER + payload <= size {
                return Some(self.carve(prev, cur, size, front, payload));
            }
            prev = cur;
            cur = self.next(cur);
        }
        None
    }

    /// Splits free block `cur` (size `size`) into [front gap][live block][rest]; the gap and the rest
    /// (multiples of 16, possibly empty) stay free, in place in the list.
    fn carve(&mut self, prev: u32, cur: u32, size: u64, front: u64, payload: u64) -> u32 {
        let next = self.next(cur);
        let block = cur as u64 + front;
        let need = HEADER + payload;
        let rest = size - front - need;

        let mut before = prev;
        if front > 0 {
            self.mem.store(cur, front as u32);
            before = cur;
        }
        if rest > 0 {
            let r = (block + need) as u32;
            self.mem.store(r, rest as u32);
            self.mem.store(r + 4, next);
            self.link(before, r);
        } else {
            self.link(before, next);
        }

        self.mem.store(block as u32, need as u32);
        self.mem.store(block as u32 + 4, LIVE);
        self.used += need as u32;
        (block + HEADER) as u32
    }

    /// Inserts `[block, block+size)` into the address-ordered list, merging with the free blocks
    /// directly before and after it.
    fn insert_free(&mut self, block: u32, size: u32) {
        let mut prev = 0u32;
        let mut cur = self.free;
        while cur != 0 && cur < block {
            prev = cur;
            cur = self.next(cur);
        }
        let mut size = size;
        let mut next = cur;
        if cur != 0 && block as u64 + size as u64 == cur as u64 {
            size += self.mem.load(cur);
            next = self.next(cur);
        }
        if prev != 0 && prev as u64 + self.mem.load(prev) as u64 == block as u64 {
            let merged = self.mem.load(prev) + size;
            self.mem.store(prev, merged);
            self.mem.store(prev + 4, next);
        } else {
            self.mem.store(block, size);
            self.mem.store(block + 4, next);
            self.link(prev, block);
        }
    }

    /// Grows memory so that a block of `payload` bytes aligned to `align` fits at the end of the
    /// heap, reusing the last free block when it reaches the current end.
    fn grow_for(&mut self, payload: u64, align: u64) -> bool {
        let mem_end = self.mem.size();
        // The new pages start at `mem_end`; if someone else grew the memory, the bytes between
        // our end and theirs are not ours.
        let fresh = mem_end.max(self.base);
        let mut start = fresh;
        if mem_end == self.end {
            let mut cur = self.free;
            while cur != 0 {
                if cur as u64 + self.mem.load(cur) as u64 == self.end {
                    start = cur as u64;
                }
                cur = self.next(cur);
            }
        }
        let needed_end = align_up(start + HEADER, align) + payload;
        if needed_end > MAX_END {
            return false;
        }
        let pages = (needed_end - mem_end + PAGE - 1) / PAGE;
        if !self.mem.grow(pages as u32) {
            return false;
        }
        let new_end = self.mem.size();
        self.insert_free(fresh as u32, (new_end - fresh) as u32);
        self.end = new_end;
        true
    }

    /// Checks the free list (sorted, inside the heap, fully coalesced) and returns
    /// `(free bytes, free blocks)`.
    #[cfg(test)]
    fn check(&self) -> (u64, usize) {
        let (mut bytes, mut count, mut prev_end) = (0u64, 0usize, 0u64);
        let mut cur = self.free;
        while cur != 0 {
            let size = self.mem.load(cur) as u64;
            assert!(cur as u64 % 16 == 0 && size % 16 == 0 && size >= 16);
            assert!(cur as u64 >= self.base && cur as u64 + size <= self.end);
            assert!(cur as u64 > prev_end || count == 0, "free list unsorted or blocks not coalesced");
            prev_end = cur as u64 + size;
            bytes += size;
            count += 1;
            cur = self.next(cur);
        }
        (bytes, count)
    }
}

/// The wasm module's linear memory (memory index 0).
#[cfg(target_arch = "wasm32")]
pub struct WasmMemory;

#[cfg(target_arch = "wasm32")]
impl Memory for WasmMemory {
    fn size(&self) -> u64 {
        core::arch::wasm32::memory_size(0) as u64 * PAGE
    }
    fn grow(&mut self, pages: u32) -> bool {
        core::arch::wasm32::memory_grow(0, pages as usize) != usize::MAX
    }
    fn load(&self, addr: u32) -> u32 {
        // SAFETY: the heap only touches headers inside [base, end) of its own memory.
        unsafe { (addr as usize as *const u32).read() }
    }
    fn store(&mut self, addr: u32, value: u32) {
        // SAFETY: as `load`.
        unsafe { (addr as usize as *mut u32).write(value) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::Rng;

    /// Memory as a Vec, with a page limit.
    struct SimMemory {
        bytes: Vec<u8>,
        max_pages: u64,
    }

    impl SimMemory {
        fn new(pages: u64, max_pages: u64) -> Self {
            SimMemory { bytes: vec![0; (pages * PAGE) as usize], max_pages }
        }
    }

    impl Memory for SimMemory {
        fn size(&self) -> u64 {
            self.bytes.len() as u64
        }
        fn grow(&mut self, pages: u32) -> bool {
            let new = self.bytes.len() as u64 + pages as u64 * PAGE;
            if new > self.max_pages * PAGE {
                return false;
            }
            self.bytes.resize(new as usize, 0);
            true
        }
        fn load(&self, addr: u32) -> u32 {
            let a = addr as usize;
            u32::from_le_bytes([self.bytes[a], self.bytes[a + 1], self.bytes[a + 2], self.bytes[a + 3]])
        }
        fn store(&mut self, addr: u32, value: u32) {
            let a = addr as usize;
            self.bytes[a..a + 4].copy_from_slice(&value.to_le_bytes());
        }
    }

    fn heap(pages: u64, max_pages: u64, base: u32) -> Heap<SimMemory> {
        let mut h = Heap::new(SimMemory::new(pages, max_pages));
        h.init(base);
        h
    }

    struct Live {
        ptr: u32,
        size: u32,
        tag: u8,
    }

    fn fill(h: &mut Heap<SimMemory>, l: &Live) {
        for b in &mut h.mem.bytes[l.ptr as usize..(l.ptr + l.size) as usize] {
            *b = l.tag;
        }
    }

    fn intact(h: &Heap<SimMemory>, l: &Live) -> bool {
        h.mem.bytes[l.ptr as usize..(l.ptr + l.size) as usize].iter().all(|b| *b == l.tag)
    }

    #[test]
    fn random_alloc_free_sequences() {
        let aligns = [0u32, 1, 4, 16, 32, 64, 256, 4096, 65536];
        for seed in 0..6u64 {
            let mut rng = Rng::new(200 + seed);
            let mut h = heap(1, 1 << 12, 1000 + seed as u32 * 13);
            let start = h.used();
            assert_eq!(start, 0);
            let mut live: Vec<Live> = Vec::new();
            for step in 0..3000 {
                if live.is_empty() || rng.below(100) < 55 {
                    let size = match rng.below(10) {
                        0 => 0,
                        1 => rng.below(200_000) as u32,
                        _ => rng.below(3000) as u32,
                    };
                    let align = aligns[rng.below(aligns.len())];
                    let ptr = h.alloc(size, align);
                    assert!(ptr != 0, "alloc failed at step {step}");
                    assert_eq!(ptr % align.max(16), 0, "alignment {align}");
                    assert!(ptr as u64 >= h.base && ptr as u64 + size as u64 <= h.mem.size());
                    for l in &live {
                        let disjoint = ptr + size.max(1) <= l.ptr || l.ptr + l.size.max(1) <= ptr;
                        assert!(disjoint, "overlap at step {step}");
                    }
                    let l = Live { ptr, size, tag: rng.below(255) as u8 + 1 };
                    fill(&mut h, &l);
                    live.push(l);
                } else {
                    let l = live.swap_remove(rng.below(live.len()));
                    assert!(intact(&h, &l), "block contents clobbered at step {step}");
                    h.free(l.ptr);
                }
                let live_bytes: u64 = live.iter().map(|l| l.size as u64).sum();
                assert!(h.used() as u64 >= live_bytes + 16 * live.len() as u64);
                let (free_bytes, _) = h.check();
                assert!(free_bytes + h.used() as u64 <= h.end - h.base);
            }
            for l in live.drain(..) {
                assert!(intact(&h, &l));
                h.free(l.ptr);
            }
            assert_eq!(h.used(), start);
            // everything coalesced back into one block spanning the heap
            assert_eq!(h.check(), (h.end - h.base, 1));
        }
    }

    #[test]
    fn first_fit_reuses_and_coalesces() {
        let mut h = heap(1, 4, 64);
        let a = h.alloc(100, 0);
        let b = h.alloc(100, 0);
        let c = h.alloc(100, 0);
        assert_eq!(a, 64 + 16);
        assert_eq!(b, a + 112 + 16);
        assert_eq!(h.used(), 3 * 128);
        h.free(a);
        h.free(c);
        assert_eq!(h.check().1, 2, "a and the tail after c are separate holes");
        // first fit: the hole left by a
        let d = h.alloc(50, 16);
        assert_eq!(d, a);
        h.free(d);
        h.free(b);
        assert_eq!(h.check(), (h.end - h.base, 1));
        assert_eq!(h.used(), 0);
        h.free(0);
    }

    #[test]
    fn large_alignment_and_growth() {
        let mut h = heap(1, 64, 100);
        let p = h.alloc(3 * 65536 + 5, 65536);
        assert!(p != 0 && p % 65536 == 0);
        let q = h.alloc(10, 4096);
        assert!(q != 0 && q % 4096 == 0);
        // the gap in front of the aligned blocks stays usable
        let small = h.alloc(16, 0);
        assert!(small < p);
        h.free(p);
        h.free(q);
        h.free(small);
        assert_eq!(h.used(), 0);
        assert_eq!(h.check().1, 1);
        assert!(h.mem.size() <= 6 * PAGE, "grew more than needed: {}", h.mem.size());
    }

    #[test]
    fn out_of_memory_returns_zero_and_leaves_the_heap_usable() {
        let mut h = heap(1, 3, 16);
        let a = h.alloc(65536, 0);
        assert!(a != 0);
        assert_eq!(h.alloc(4 * 65536, 0), 0);
        assert_eq!(h.alloc(u32::MAX, 0), 0);
        assert_eq!(h.alloc(u32::MAX - 20, 65536), 0);
        assert_eq!(h.alloc(16, 48), 0, "alignment must be a power of two");
        let b = h.alloc(1000, 0);
        assert!(b != 0);
        h.free(a);
        h.free(b);
        assert_eq!(h.used(), 0);
        assert_eq!(h.check().1, 1);
    }

    #[test]
    fn foreign_growth_is_left_alone() {
        let mut h = heap(1, 8, 16);
        let a = h.alloc(1000, 0);
        assert!(h.mem.grow(1)); // somebody else's page: [65536, 131072)
        let b = h.alloc(100_000, 0);
        assert!(b as u64 >= 2 * PAGE, "must not use the foreign page");
        h.free(a);
        h.free(b);
        assert_eq!(h.used(), 0);
    }

    #[test]
    #[should_panic]
    fn double_free_is_caught() {
        let mut h = heap(1, 1, 16);
        let a = h.alloc(100, 0);
        let _b = h.alloc(100, 0);
        h.free(a);
        h.free(a);
    }
}
