//! Rotary position embedding, applied in place to every head of a q or k vector.

/// Rotates pairs of each `head_size` block of `v` by the angles whose `cos`/`sin` are given
/// (`head_size/2` values, for the current position):
/// `v0' = v0·c − v1·s`, `v1' = v0·s + v1·c`. Pairs are `(2j, 2j+1)` (llama2.c, `neox == false`) or
/// `(j, j + head_size/2)` (HF `rotate_half`, `neox == true`). An odd last value is left alone.
pub fn rope(v: &mut [f32], n_heads: usize, head_size: usize, cos: &[f32], sin: &[f32], neox: bool) {
    let half = head_size / 2;
    let (cos, sin) = (&cos[..half], &sin[..half]);
    for head in v[..n_heads * head_size].chunks_exact_mut(head_size.max(1)) {
        for j in 0..half {
            let (i0, i1) = if neox { (j, j + half) } else { (2 * j, 2 * j + 1) };
            let (v0, v1) = (head[i0], head[i1]);
            let (c, s) = (cos[j], sin[j]);
            head[i0] = v0 * c - v1 * s;
            head[i1] = v0 * s + v1 * c;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    #[test]
    fn rope_rotates_the_right_pairs() {
        let mut rng = Rng::new(80);
        for &(n_heads, head_size) in &[(1usize, 2usize), (1, 3), (2, 4), (3, 8), (4, 64), (2, 17), (5, 100)] {
            for neox in [false, true] {
                let half = head_size / 2;
                let pos = rng.below(1000) as f64;
                let theta: Vec<f64> =
                    (0..half).map(|j| pos * 10000f64.powf(-2.0 * j as f64 / head_size as f64)).collect();
                let cos: Vec<f32> = theta.iter().map(|t| t.cos() as f32).collect();
                let sin: Vec<f32> = theta.iter().map(|t| t.sin() as f32).collect();
                let x = rng.vec(n_heads * head_size, -2.0, 2.0);
                let mut g = Guarded::from(&x, F32_SENTINEL);
                rope(g.inner_mut(), n_heads, head_size, &cos, &sin, neox);
                g.check();
                let got = g.inner();
                for h in 0..n_heads {
                    let o = h * head_size;
                    let mut touched = vec![false; head_size];
                    for j in 0..half {
                        let (i0, i1) = if neox { (j, j + half) } else { (2 * j, 2 * j + 1) };
                        touched[i0] = true;
                        touched[i1] = true;
                        let (c, s) = (cos[j] as f64, sin[j] as f64);
                        let (a, b) = (x[o + i0] as f64, x[o + i1] as f64);
                        let (wa, wb) = (a * c - b * s, a * s + b * c);
                        assert!((got[o + i0] as f64 - wa).abs() < 1e-6 && (got[o + i1] as f64 - wb).abs() < 1e-6);
                        // the f32 formula exactly
                        assert_eq!(got[o + i0], x[o + i0] * cos[j] - x[o + i1] * sin[j]);
                        assert_eq!(got[o + i1], x[o + i0] * sin[j] + x[o + i1] * cos[j]);
                    }
                    for i in 0..head_size {
                        if !touched[i] {
                            assert_eq!(got[o + i], x[o + i], "untouched value changed");
                        }
                    }
                }
            }
        }
    }
}
