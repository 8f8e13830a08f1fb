//! Test helpers: a deterministic PRNG, guarded buffers, and the plain references.

/// xorshift64*: tiny, deterministic, good enough for test data.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// uniform in [0, 1)
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn range(&mut self, lo: f32, hi: f32) -> f32 {
        (lo as f64 + (hi as f64 - lo as f64) * self.unit()) as f32
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    pub fn vec(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| self.range(lo, hi)).collect()
    }
    pub fn vec_i8(&mut self, n: usize) -> Vec<i8> {
        (0..n).map(|_| self.next_u64() as i8).collect()
    }
}

/// Sizes that hit every remainder of the 16-, 8- and 4-wide loops.
pub const SIZES: &[usize] = &[1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 127, 172, 288];

pub const GUARD: usize = 19;

/// A buffer with `GUARD` sentinel values on each side of the `n` values a kernel may touch.
/// The odd guard length also makes the inner slice start off any 16-byte boundary.
pub struct Guarded<T> {
    buf: Vec<T>,
    sentinel: T,
}

impl<T: Copy + PartialEq + core::fmt::Debug> Guarded<T> {
    pub fn new(n: usize, fill: T, sentinel: T) -> Self {
        let mut buf = vec![sentinel; n + 2 * GUARD];
        for v in &mut buf[GUARD..GUARD + n] {
            *v = fill;
        }
        Guarded { buf, sentinel }
    }
    pub fn from(data: &[T], sentinel: T) -> Self {
        let mut g = Self::new(data.len(), sentinel, sentinel);
        g.inner_mut().copy_from_slice(data);
        g
    }
    pub fn inner(&self) -> &[T] {
        &self.buf[GUARD..self.buf.len() - GUARD]
    }
    pub fn inner_mut(&mut self) -> &mut [T] {
        let end = self.buf.len() - GUARD;
        &mut self.buf[GUARD..end]
    }
    pub fn ptr(&mut self) -> *mut T {
        self.inner_mut().as_mut_ptr()
    }
    pub fn check(&self) {
        let end = self.buf.len() - GUARD;
        for (i, v) in self.buf[..GUARD].iter().chain(&self.buf[end..]).enumerate() {
            assert!(*v == self.sentinel, "guard value {i} overwritten: {v:?}");
        }
    }
}

pub const F32_SENTINEL: f32 = -123456.75;

pub fn guarded_f32(n: usize) -> Guarded<f32> {
    Guarded::new(n, 7777.0, F32_SENTINEL)
}

/// Plain f64 dot product, the reference for every f32 dot.
pub fn dot_f64(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum()
}

/// Error bound for an f32 sum of `n` products with absolute values summing to `abs_sum`:
/// each of the ~log/linear chain of roundings adds at most 2^-24 relative.
pub fn dot_tolerance(n: usize, abs_sum: f64) -> f64 {
    (n as f64 + 2.0) * f32::EPSILON as f64 * abs_sum + 1e-30
}

pub fn abs_dot_f64(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (*x as f64 * *y as f64).abs()).sum()
}

pub fn assert_bits_eq(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(g.to_bits() == w.to_bits(), "{what}[{i}]: {g} != {w} (bits differ)");
    }
}

pub fn assert_close(got: &[f32], want: &[f64], tol: impl Fn(usize) -> f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let err = (*g as f64 - w).abs();
        assert!(err <= tol(i), "{what}[{i}]: got {g}, want {w}, err {err} > {}", tol(i));
    }
}
