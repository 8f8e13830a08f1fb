//! Single-query multi-head attention over a KV cache (grouped-query heads allowed).

use crate::activation::softmax;
use crate::axpy::add_scaled;
use crate::dot::dot;
use crate::math::sqrt_f32;

/// Cache geometry: key/value `i` of kv head `kvh` at time `t` is at `t*kv_stride + kvh*head_size + i`.
#[derive(Clone, Copy, Debug)]
pub struct AttnShape {
    pub pos: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_size: usize,
    pub kv_stride: usize,
}

impl AttnShape {
    /// f32 values of a cache that `attention` may read.
    pub fn cache_len(&self) -> usize {
        self.pos * self.kv_stride + self.n_kv_heads * self.head_size
    }
}

/// For each head `h` (kv head `h / (n_heads/n_kv_heads)`):
/// `att[h][t] = dot(q_h, k[t]) / sqrt(head_size)` for `t ≤ pos`, softmaxed over `t`, then
/// `out_h = Σ_t att[h][t]·v[t]` accumulated from 0.0 in increasing `t`.
/// `n_heads` must be a multiple of `n_kv_heads` (checked).
pub fn attention(out: &mut [f32], q: &[f32], k_cache: &[f32], v_cache: &[f32], att: &mut [f32], s: AttnShape) {
    assert!(s.n_kv_heads > 0 && s.n_heads % s.n_kv_heads == 0);
    let hs = s.head_size;
    let steps = s.pos + 1;
    let kv_mul = s.n_heads / s.n_kv_heads;
    // Divide like llama2.c (`score /= sqrtf(head_size)`) rather than multiply by a rounded inverse.
    let norm = sqrt_f32(hs as f32);
    let (k_cache, v_cache) = (&k_cache[..s.cache_len()], &v_cache[..s.cache_len()]);
    let at = |t: usize, kvh: usize| t * s.kv_stride + kvh * hs;

    for h in 0..s.n_heads {
        let kvh = h / kv_mul;
        let q_h = &q[h * hs..(h + 1) * hs];
        let att_h = &mut att[h * steps..(h + 1) * steps];
        for (t, a) in att_h.iter_mut().enumerate() {
            *a = dot(q_h, &k_cache[at(t, kvh)..at(t, kvh) + hs]) / norm;
        }
        softmax(att_h);

        let out_h = &mut out[h * hs..(h + 1) * hs];
        for o in out_h.iter_mut() {
            *o = 0.0;
        }
        for (t, &a) in att_h.iter().enumerate() {
            add_scaled(out_h, a, &v_cache[at(t, kvh)..at(t, kvh) + hs]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    #[test]
    fn attention_matches_f64_and_the_in_order_sum() {
        let mut rng = Rng::new(90);
        let cases: &[(usize, usize, usize, usize)] = &[
            // (pos, n_heads, n_kv_heads, head_size)
            (0, 1, 1, 1),
            (0, 2, 2, 4),
            (3, 2, 1, 7),
            (6, 4, 2, 17),
            (16, 4, 4, 16),
            (40, 6, 2, 33),
            (9, 8, 1, 64),
        ];
        for &(pos, n_heads, n_kv_heads, head_size) in cases {
            // extra padding in the cache row to exercise kv_stride > n_kv_heads*head_size
            let kv_stride = n_kv_heads * head_size + 3;
            let s = AttnShape { pos, n_heads, n_kv_heads, head_size, kv_stride };
            let q = rng.vec(n_heads * head_size, -1.0, 1.0);
            let k = rng.vec(s.cache_len(), -1.0, 1.0);
            let v = rng.vec(s.cache_len(), -1.0, 1.0);
            let mut out = guarded_f32(n_heads * head_size);
            let mut att = guarded_f32(n_heads * (pos + 1));
            attention(out.inner_mut(), &q, &k, &v, att.inner_mut(), s);
            out.check();
            att.check();

            for h in 0..n_heads {
                let kvh = h / (n_heads / n_kv_heads);
                let qh = &q[h * head_size..(h + 1) * head_size];
                let kt = |t: usize| &k[t * kv_stride + kvh * head_size..][..head_size];
                let vt = |t: usize| &v[t * kv_stride + kvh * head_size..][..head_size];
                let scores: Vec<f64> = (0..=pos).map(|t| dot_f64(qh, kt(t)) / (head_size as f64).sqrt()).collect();
                let m = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = scores.iter().map(|x| (x - m).exp()).collect();
                let z: f64 = e.iter().sum();
                let p: Vec<f64> = e.iter().map(|x| x / z).collect();
                let got_att = &att.inner()[h * (pos + 1)..(h + 1) * (pos + 1)];
                assert_close(got_att, &p, |t| p[t] * 1e-5 + 1e-7, "att");
                for i in 0..head_size {
                    let want: f64 = (0..=pos).map(|t| p[t] * vt(t)[i] as f64).sum();
                    let got = out.inner()[h * head_size + i];
                    assert!((got as f64 - want).abs() <= 1e-5, "out[{h}][{i}]: {got} vs {want}");
                    // bit-exact: the in-order f32 sum of the kernel's own probabilities
                    let mut exact = 0.0f32;
                    for t in 0..=pos {
                        exact += got_att[t] * vt(t)[i];
                    }
                    assert_eq!(got.to_bits(), exact.to_bits());
                }
                // the scores are the shared dot, divided
                let mut sc: Vec<f32> = (0..=pos).map(|t| dot(qh, kt(t)) / (head_size as f32).sqrt()).collect();
                softmax(&mut sc);
                assert_bits_eq(got_att, &sc, "att bits");
            }
        }
    }
}
