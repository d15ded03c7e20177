//! The numerical error of Winograd's F(4x4, 3x3) (`conv/winograd.rs`'s module doc): on
//! N(0, 1) inputs and weights, against a direct convolution in f64, its error is within 24x
//! the implicit GEMM's (the plain summation; 10-18x measured) and below 1e-5 of the largest
//! output (3.7-6.3e-6 measured), on every instruction set and with padding 0 and 1, odd and
//! even sizes.

use ventral_kernels::conv::{Conv2d, Conv2dParams, ConvPath};

use crate::common::{isas, random_vec};

/// N(0, 1) samples by Box–Muller from the tests' uniform generator.
fn normal_vec(len: usize, seed: u64) -> Vec<f32> {
    let u = random_vec(2 * len, f32::EPSILON, 1.0, seed);
    u.chunks_exact(2)
        .map(|p| {
            let (a, b) = (f64::from(p[0]), f64::from(p[1]));
            ((-2.0 * a.ln()).sqrt() * (std::f64::consts::TAU * b).cos()) as f32
        })
        .collect()
}

/// `conv(x, w)` (3x3, stride 1, `pad`) in f64: the exact answer for the error measure.
fn direct_f64(x: &[f32], w: &[f32], input: [usize; 4], out_c: usize, pad: usize) -> Vec<f64> {
    let [n, c, h, wd] = input;
    let (oh, ow) = (h + 2 * pad - 2, wd + 2 * pad - 2);
    let mut y = vec![0.0f64; n * out_c * oh * ow];
    for b in 0..n {
        for k in 0..out_c {
            for i in 0..oh {
                for j in 0..ow {
                    let mut acc = 0.0f64;
                    for ch in 0..c {
                        for r in 0..3 {
                            for s in 0..3 {
                                let (ih, iw) = (
                                    (i + r) as isize - pad as isize,
                                    (j + s) as isize - pad as isize,
                                );
                                if ih < 0 || iw < 0 || ih as usize >= h || iw as usize >= wd {
                                    continue;
                                }
                                let xv = x[((b * c + ch) * h + ih as usize) * wd + iw as usize];
                                let wv = w[((k * c + ch) * 3 + r) * 3 + s];
                                acc += f64::from(xv) * f64::from(wv);
                            }
                        }
                    }
                    y[((b * out_c + k) * oh + i) * ow + j] = acc;
                }
            }
        }
    }
    y
}

/// Largest absolute error of `got` against `want`.
fn max_error(got: &[f32], want: &[f64]) -> f64 {
    got.iter()
        .zip(want)
        .map(|(&g, &w)| (f64::from(g) - w).abs())
        .fold(0.0, f64::max)
}

#[test]
fn winograd_error_is_a_small_multiple_of_the_direct_sum() {
    // Channels deep enough that the sums are long (576 and 1152 terms), sizes odd and even.
    for (input, out_c, pad, seed) in [
        ([2, 64, 9, 9], 48, 1, 1u64),
        ([1, 128, 8, 8], 64, 1, 2),
        ([2, 32, 11, 6], 40, 0, 3),
    ] {
        let weight = [out_c, input[1], 3, 3];
        let x = normal_vec(input.iter().product(), seed);
        let w = normal_vec(weight.iter().product(), seed + 100);
        let want = direct_f64(&x, &w, input, out_c, pad);
        let largest = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let params = Conv2dParams::default().padding(pad);
        for isa in isas() {
            let run = |path: ConvPath| {
                let conv = Conv2d::new(input, weight, params)
                    .unwrap()
                    .with_isa(isa)
                    .unwrap()
                    .with_path(Some(path));
                assert_eq!(conv.plan().forward, path, "{path} must serve {input:?}");
                let mut y = vec![0.0f32; want.len()];
                conv.forward(&x, &w, None, &mut y).unwrap();
                max_error(&y, &want)
            };
            let (winograd, implicit) = (run(ConvPath::Winograd), run(ConvPath::Implicit));
            assert!(
                winograd / largest < 1e-5,
                "{input:?} on {isa:?}: Winograd's error {winograd:.3e} is {:.2e} of the largest output {largest:.1}",
                winograd / largest
            );
            // The transforms add roundings scaled by their coefficients (up to 8): within
            // 24x the plain sum's error (measured 10-18x), with a floor of a few ulps of the
            // largest output.
            let floor = 4.0 * f64::from(f32::EPSILON) * largest;
            assert!(
                winograd <= 24.0 * implicit.max(floor),
                "{input:?} on {isa:?}: Winograd's error {winograd:.3e} against the implicit GEMM's {implicit:.3e}"
            );
        }
    }
}
