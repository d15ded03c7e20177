//! The list of gradient checks of every op ([`gradcheck_cases`]), read by this crate's tests
//! and by `ventral gradcheck` alike, so a new op cannot be checked in one place and
//! forgotten in the other. Values keep away from kinks and singular points (positive
//! inputs for `log`, `sqrt` and real powers; [`distinct_values`] for `relu`, `abs`, `max`,
//! pooling and the hinge loss), as any finite-difference check needs.

use super::{GradcheckOptions, GradcheckReport, gradcheck};
use crate::error::Result;
use crate::ops::{
    AvgPool2dParams, BatchNormOptions, Conv2dParams, LrnParams, MarginNormalization,
    MaxPool2dParams, Mode, RunningStats, concat, cross_entropy, mse_loss, multi_margin_loss,
    nll_loss,
};
use crate::shape::Shape;
use crate::tensor::Tensor;

/// One named gradient check: runs one or more [`gradcheck`]s of an op with the options it is
/// given and returns their reports joined ([`GradcheckReport::join`]).
#[derive(Debug, Clone, Copy)]
pub struct GradcheckCase {
    /// The op's method (or function) name.
    pub name: &'static str,
    /// Runs the checks.
    pub run: fn(&GradcheckOptions) -> Result<GradcheckReport>,
}

/// Pairwise-distinct values on a grid `spacing` apart, offset by `spacing / 2` from 0 and
/// shuffled by `seed`: no element sits within `spacing / 2` of 0 or of another element, so
/// kinks (`relu` at 0, ties in `max`) stay beyond the checker's `2h = 1/64` when
/// `spacing >= 0.04`.
///
/// # Errors
/// [`crate::Error::InvalidArgument`] for a shape with too many elements.
pub fn distinct_values(shape: impl Into<Shape>, spacing: f32, seed: u64) -> Result<Tensor> {
    let shape = shape.into();
    let keys = Tensor::rand_uniform(shape.clone(), 0.0, 1.0, seed)?.to_vec();
    let mut order: Vec<usize> = (0..keys.len()).collect();
    order.sort_by(|&a, &b| keys[a].total_cmp(&keys[b]));
    let half = keys.len() as f32 / 2.0;
    let mut values = vec![0.0; keys.len()];
    for (rank, &i) in order.iter().enumerate() {
        values[i] = ((rank as f32 - half).floor() + 0.5) * spacing;
    }
    Tensor::from_vec(values, shape)
}

fn check(
    options: &GradcheckOptions,
    f: impl Fn(&[Tensor]) -> Result<Tensor>,
    inputs: &[Tensor],
) -> Result<GradcheckReport> {
    gradcheck(f, inputs, options)
}

/// Uniform values in `[lo, hi)` from `seed`.
fn u(shape: &[usize], lo: f32, hi: f32, seed: u64) -> Tensor {
    Tensor::rand_uniform(shape.to_vec(), lo, hi, seed).expect("a small shape and a valid range")
}

fn distinct(shape: &[usize], spacing: f32, seed: u64) -> Tensor {
    distinct_values(shape.to_vec(), spacing, seed).expect("a small shape")
}

macro_rules! op {
    ($name:literal, $run:expr) => {
        GradcheckCase {
            name: $name,
            run: $run,
        }
    };
}

/// Every differentiable op of this crate, each checked on small inputs, in the order of
/// `src/ops`. `tests/gradcheck_cases.rs` runs every case as it is and with a backward 5 %
/// off; `ventral gradcheck` runs the same list.
pub fn gradcheck_cases() -> Vec<GradcheckCase> {
    vec![
        // arith.rs: broadcasting binary ops and scalar ops.
        op!("add", |o| check(
            o,
            |t| t[0].add(&t[1]),
            &[u(&[2, 3], -2.0, 2.0, 1), u(&[3], -2.0, 2.0, 2)]
        )),
        op!("sub", |o| check(
            o,
            |t| t[0].sub(&t[1]),
            &[u(&[2, 1], -2.0, 2.0, 3), u(&[2, 3], -2.0, 2.0, 4)]
        )),
        op!("mul", |o| check(
            o,
            |t| t[0].mul(&t[1]),
            &[u(&[2, 3], -2.0, 2.0, 5), u(&[1, 3], -2.0, 2.0, 6)]
        )),
        op!("div", |o| check(
            o,
            |t| t[0].div(&t[1]),
            &[u(&[2, 3], -2.0, 2.0, 7), u(&[3], 0.5, 2.0, 8)]
        )),
        op!("neg", |o| check(
            o,
            |t| t[0].neg(),
            &[u(&[2, 3], -2.0, 2.0, 9)]
        )),
        op!("add_scalar", |o| check(
            o,
            |t| t[0].add_scalar(0.7),
            &[u(&[4], -2.0, 2.0, 10)]
        )),
        op!("sub_scalar", |o| check(
            o,
            |t| t[0].sub_scalar(0.7),
            &[u(&[4], -2.0, 2.0, 11)]
        )),
        op!("rsub_scalar", |o| check(
            o,
            |t| t[0].rsub_scalar(0.7),
            &[u(&[4], -2.0, 2.0, 12)]
        )),
        op!("mul_scalar", |o| check(
            o,
            |t| t[0].mul_scalar(1.5),
            &[u(&[4], -2.0, 2.0, 13)]
        )),
        op!("div_scalar", |o| check(
            o,
            |t| t[0].div_scalar(1.5),
            &[u(&[4], -2.0, 2.0, 14)]
        )),
        // unary.rs
        op!("pow", |o| GradcheckReport::join([
            check(o, |t| t[0].pow(2.5), &[u(&[2, 3], 0.5, 2.0, 15)]),
            check(o, |t| t[0].pow(-1.5), &[u(&[2, 3], 0.5, 2.0, 16)]),
        ])),
        op!("exp", |o| check(
            o,
            |t| t[0].exp(),
            &[u(&[2, 3], -2.0, 2.0, 17)]
        )),
        op!("log", |o| check(
            o,
            |t| t[0].log(),
            &[u(&[2, 3], 0.5, 2.0, 18)]
        )),
        op!("sqrt", |o| check(
            o,
            |t| t[0].sqrt(),
            &[u(&[2, 3], 0.5, 2.0, 19)]
        )),
        op!("abs", |o| check(
            o,
            |t| t[0].abs(),
            &[distinct(&[2, 3], 0.1, 20)]
        )),
        op!("clamp", |o| check(
            o,
            |t| t[0].clamp(-0.3, 0.4),
            &[distinct(&[3, 4], 0.1, 21)]
        )),
        // activation.rs
        op!("relu", |o| check(
            o,
            |t| t[0].relu(),
            &[distinct(&[2, 3], 0.1, 22)]
        )),
        // Sums (0.05 + 0.1i) + (0.1 + 0.2j) stay 0.05 from the kink at 0.
        op!("add_relu", |o| check(
            o,
            |t| t[0].add_relu(&t[1]),
            &[distinct(&[2, 3], 0.1, 26), distinct(&[2, 3], 0.2, 27)]
        )),
        op!("leaky_relu", |o| check(
            o,
            |t| t[0].leaky_relu(0.1),
            &[distinct(&[2, 3], 0.1, 23)]
        )),
        op!("prelu", |o| check(
            o,
            |t| t[0].prelu(&t[1]),
            &[distinct(&[2, 3, 2, 2], 0.1, 24), u(&[3], 0.05, 0.5, 25)]
        )),
        op!("elu", |o| check(
            o,
            |t| t[0].elu(1.0),
            &[distinct(&[2, 3], 0.1, 26)]
        )),
        op!("sigmoid", |o| check(
            o,
            |t| t[0].sigmoid(),
            &[u(&[2, 3], -2.0, 2.0, 27)]
        )),
        op!("tanh", |o| check(
            o,
            |t| t[0].tanh(),
            &[u(&[2, 3], -2.0, 2.0, 28)]
        )),
        op!("maxout", |o| check(
            o,
            |t| t[0].maxout(3),
            &[distinct(&[2, 6, 2], 0.1, 29)]
        )),
        // reduce.rs
        op!("sum", |o| GradcheckReport::join([
            check(
                o,
                |t| t[0].sum(&[1], false),
                &[u(&[2, 3, 2], -2.0, 2.0, 30)]
            ),
            check(
                o,
                |t| t[0].sum(&[0, 2], true),
                &[u(&[2, 3, 2], -2.0, 2.0, 31)]
            ),
        ])),
        op!("mean", |o| check(
            o,
            |t| t[0].mean(&[0], true),
            &[u(&[2, 3], -2.0, 2.0, 32)]
        )),
        op!("sum_all", |o| check(
            o,
            |t| t[0].sum_all(),
            &[u(&[2, 3], -2.0, 2.0, 33)]
        )),
        op!("mean_all", |o| check(
            o,
            |t| t[0].mean_all(),
            &[u(&[2, 3], -2.0, 2.0, 34)]
        )),
        op!("max", |o| GradcheckReport::join([
            check(o, |t| t[0].max(&[1], false), &[distinct(&[3, 4], 0.1, 35)]),
            check(o, |t| t[0].max(&[], false), &[distinct(&[3, 4], 0.1, 36)]),
        ])),
        op!("min", |o| check(
            o,
            |t| t[0].min(&[0], true),
            &[distinct(&[3, 4], 0.1, 37)]
        )),
        // softmax.rs
        op!("softmax", |o| check(
            o,
            |t| t[0].softmax(1),
            &[u(&[2, 4], -2.0, 2.0, 38)]
        )),
        op!("log_softmax", |o| check(
            o,
            |t| t[0].log_softmax(1),
            &[u(&[2, 4], -2.0, 2.0, 39)]
        )),
        // loss.rs
        op!("cross_entropy", |o| GradcheckReport::join([
            check(
                o,
                |t| cross_entropy(&t[0], &[1, 3, 0], 0.0),
                &[u(&[3, 4], -2.0, 2.0, 40)]
            ),
            check(
                o,
                |t| cross_entropy(&t[0], &[1, 3, 0], 0.1),
                &[u(&[3, 4], -2.0, 2.0, 41)]
            ),
        ])),
        op!("nll_loss", |o| check(
            o,
            |t| nll_loss(&t[0].log_softmax(1)?, &[2, 0, 1]),
            &[u(&[3, 4], -2.0, 2.0, 42)]
        )),
        op!("mse_loss", |o| {
            let target = u(&[3, 4], -1.0, 1.0, 43);
            check(
                o,
                move |t| mse_loss(&t[0], &target),
                &[u(&[3, 4], -2.0, 2.0, 44)],
            )
        }),
        op!("multi_margin_loss", |o| GradcheckReport::join([
            // Scores 0.13 apart: s_j - s_y + 1 stays >= 0.04 from the hinge's kink at 0.
            check(
                o,
                |t| multi_margin_loss(&t[0], &[1, 3, 0], MarginNormalization::Sum),
                &[distinct(&[3, 4], 0.13, 45)]
            ),
            check(
                o,
                |t| multi_margin_loss(&t[0], &[1, 3, 0], MarginNormalization::ByClasses),
                &[distinct(&[3, 4], 0.13, 46)]
            ),
        ])),
        // matmul.rs
        op!("matmul", |o| GradcheckReport::join([
            check(
                o,
                |t| t[0].matmul(&t[1]),
                &[u(&[3, 4], -2.0, 2.0, 47), u(&[4, 2], -2.0, 2.0, 48)]
            ),
            check(
                o,
                |t| t[0].matmul(&t[1]),
                &[u(&[2, 3, 4], -2.0, 2.0, 49), u(&[4, 2], -2.0, 2.0, 50)]
            ),
        ])),
        // conv.rs
        op!("conv2d", |o| GradcheckReport::join([
            check(
                o,
                |t| t[0].conv2d(
                    &t[1],
                    Some(&t[2]),
                    Conv2dParams {
                        padding: (1, 1),
                        ..Conv2dParams::default()
                    }
                ),
                &[
                    u(&[2, 2, 5, 5], -1.0, 1.0, 51),
                    u(&[3, 2, 3, 3], -1.0, 1.0, 52),
                    u(&[3], -1.0, 1.0, 53)
                ]
            ),
            check(
                o,
                |t| t[0].conv2d(
                    &t[1],
                    None,
                    Conv2dParams {
                        stride: (2, 2),
                        dilation: (2, 1),
                        groups: 2,
                        ..Conv2dParams::default()
                    }
                ),
                &[
                    u(&[1, 4, 7, 6], -1.0, 1.0, 54),
                    u(&[2, 2, 2, 2], -1.0, 1.0, 55)
                ]
            ),
        ])),
        op!("conv2d_relu", |o| check(
            o,
            |t| t[0].conv2d_relu(
                &t[1],
                Some(&t[2]),
                Conv2dParams {
                    padding: (1, 1),
                    ..Conv2dParams::default()
                }
            ),
            &[
                u(&[2, 2, 5, 5], -1.0, 1.0, 151),
                u(&[3, 2, 3, 3], -1.0, 1.0, 152),
                u(&[3], -1.0, 1.0, 153)
            ]
        )),
        // pool.rs
        op!("max_pool2d", |o| {
            let params = MaxPool2dParams::new((3, 3))
                .with_stride((2, 2))
                .with_padding((1, 1));
            check(
                o,
                move |t| t[0].max_pool2d(&params),
                &[distinct(&[2, 2, 5, 5], 0.1, 56)],
            )
        }),
        op!("avg_pool2d", |o| {
            let params = AvgPool2dParams::new((2, 2)).with_stride((1, 1));
            check(
                o,
                move |t| t[0].avg_pool2d(&params),
                &[u(&[2, 2, 4, 4], -2.0, 2.0, 57)],
            )
        }),
        op!("adaptive_avg_pool2d", |o| check(
            o,
            |t| t[0].adaptive_avg_pool2d((2, 3)),
            &[u(&[2, 2, 5, 7], -2.0, 2.0, 58)]
        )),
        // norm.rs
        op!("batch_norm", |o| {
            let opts = BatchNormOptions::default();
            let (mean, var) = (u(&[3], -0.5, 0.5, 62), u(&[3], 0.5, 2.0, 63));
            GradcheckReport::join([
                // Values 0.3 apart: no channel's variance is tiny.
                check(
                    o,
                    move |t| t[0].batch_norm(Some(&t[1]), Some(&t[2]), None, Mode::Train, opts),
                    &[
                        distinct(&[3, 3, 2, 2], 0.3, 59),
                        u(&[3], 0.5, 1.5, 60),
                        u(&[3], -1.0, 1.0, 61),
                    ],
                ),
                check(
                    o,
                    move |t| {
                        let (mut m, mut v) = (mean.clone(), var.clone());
                        let running = RunningStats {
                            mean: &mut m,
                            var: &mut v,
                        };
                        t[0].batch_norm(Some(&t[1]), Some(&t[2]), Some(running), Mode::Eval, opts)
                    },
                    &[
                        u(&[2, 3, 2, 2], -2.0, 2.0, 64),
                        u(&[3], 0.5, 1.5, 65),
                        u(&[3], -1.0, 1.0, 66),
                    ],
                ),
            ])
        }),
        op!("batch_norm_relu", |o| {
            let opts = BatchNormOptions::default();
            let (mean, var) = (u(&[3], -0.5, 0.5, 162), u(&[3], 0.5, 2.0, 163));
            let (train_mean, train_var) = (mean.clone(), var.clone());
            GradcheckReport::join([
                // Training: values 0.3 apart (no tiny variance). With these seeds the
                // batch norm's outputs lie at least 0.098 from the ReLU's kink at 0 (printed
                // once when the case was written), far beyond the checker's step, and 17 of
                // the 36 are positive, so the mask matters.
                check(
                    o,
                    move |t| {
                        let (mut m, mut v) = (train_mean.clone(), train_var.clone());
                        let running = RunningStats {
                            mean: &mut m,
                            var: &mut v,
                        };
                        t[0].batch_norm_relu(
                            Some(&t[1]),
                            Some(&t[2]),
                            Some(running),
                            Mode::Train,
                            opts,
                        )
                    },
                    &[
                        distinct(&[3, 3, 2, 2], 0.3, 159),
                        u(&[3], 0.5, 1.5, 160),
                        u(&[3], -0.5, 0.5, 161),
                    ],
                ),
                // Evaluation: the running statistics' affine map, then ReLU.
                check(
                    o,
                    move |t| {
                        let (mut m, mut v) = (mean.clone(), var.clone());
                        let running = RunningStats {
                            mean: &mut m,
                            var: &mut v,
                        };
                        t[0].batch_norm_relu(
                            Some(&t[1]),
                            Some(&t[2]),
                            Some(running),
                            Mode::Eval,
                            opts,
                        )
                    },
                    &[
                        distinct(&[2, 3, 2, 2], 0.3, 164),
                        u(&[3], 0.5, 1.5, 165),
                        u(&[3], -0.5, 0.5, 166),
                    ],
                ),
            ])
        }),
        op!("local_response_norm", |o| {
            let params = LrnParams::new(3)
                .with_alpha(0.5)
                .with_beta(0.75)
                .with_k(1.0);
            check(
                o,
                move |t| t[0].local_response_norm(&params),
                &[u(&[2, 5, 2, 2], -2.0, 2.0, 67)],
            )
        }),
        // dropout.rs: a fixed seed fixes the mask, so the op is linear in x.
        op!("dropout", |o| check(
            o,
            |t| t[0].dropout(0.4, 68, Mode::Train),
            &[u(&[4, 5], -2.0, 2.0, 69)]
        )),
        // shape_ops.rs
        op!("reshape", |o| check(
            o,
            |t| t[0].reshape([3, 4]),
            &[u(&[2, 3, 2], -2.0, 2.0, 70)]
        )),
        op!("flatten", |o| check(
            o,
            |t| t[0].flatten(1, 2),
            &[u(&[2, 3, 2], -2.0, 2.0, 71)]
        )),
        op!("squeeze", |o| check(
            o,
            |t| t[0].squeeze(1),
            &[u(&[2, 1, 3], -2.0, 2.0, 72)]
        )),
        op!("unsqueeze", |o| check(
            o,
            |t| t[0].unsqueeze(1),
            &[u(&[2, 3], -2.0, 2.0, 73)]
        )),
        op!("permute", |o| check(
            o,
            |t| t[0].permute(&[2, 0, 1]),
            &[u(&[2, 3, 2], -2.0, 2.0, 74)]
        )),
        op!("transpose", |o| check(
            o,
            |t| t[0].transpose(0, 2)?.mul(&t[0].transpose(0, 2)?),
            &[u(&[2, 3, 2], -2.0, 2.0, 75)]
        )),
        op!("t", |o| check(
            o,
            |t| t[0].t()?.matmul(&t[1]),
            &[u(&[3, 2], -2.0, 2.0, 76), u(&[3, 2], -2.0, 2.0, 77)]
        )),
        op!("broadcast_to", |o| check(
            o,
            |t| t[0].broadcast_to([2, 2, 3]),
            &[u(&[1, 3], -2.0, 2.0, 78)]
        )),
        op!("narrow", |o| check(
            o,
            |t| t[0].narrow(1, 1, 2),
            &[u(&[2, 4], -2.0, 2.0, 79)]
        )),
        op!("contiguous", |o| check(
            o,
            |t| t[0].permute(&[1, 0])?.contiguous(),
            &[u(&[2, 3], -2.0, 2.0, 80)]
        )),
        op!("split", |o| check(
            o,
            |t| {
                let parts = t[0].split(&[1, 2], 0)?;
                parts[1].sum_all()?.sub(&parts[0].sum_all()?)
            },
            &[u(&[3, 2], -2.0, 2.0, 81)]
        )),
        // Repeated indices: their gradients add up.
        op!("index_select", |o| check(
            o,
            |t| t[0].index_select(0, &[2, 0, 2, 1]),
            &[u(&[3, 2], -2.0, 2.0, 82)]
        )),
        op!("gather", |o| check(
            o,
            |t| t[0].gather(1, &[1, 0, 2], [3, 1]),
            &[u(&[3, 3], -2.0, 2.0, 83)]
        )),
        op!("concat", |o| GradcheckReport::join([
            check(
                o,
                |t| concat(&[&t[0], &t[1]], 1),
                &[u(&[2, 3], -2.0, 2.0, 84), u(&[2, 2], -2.0, 2.0, 85)],
            ),
            // GoogLeNet's Inception join: four branches of different widths along the
            // channels; a batch of 2 makes the per-image interleaving of the slices matter.
            check(
                o,
                |t| concat(&[&t[0], &t[1], &t[2], &t[3]], 1),
                &[
                    u(&[2, 1, 3, 3], -2.0, 2.0, 1),
                    u(&[2, 2, 3, 3], -2.0, 2.0, 2),
                    u(&[2, 3, 3, 3], -2.0, 2.0, 3),
                    u(&[2, 2, 3, 3], -2.0, 2.0, 4),
                ],
            ),
        ])),
        // shortcut.rs: the CIFAR ResNets' option-A shortcut.
        op!("shortcut_option_a", |o| GradcheckReport::join([
            // 4 -> 8 channels at stride 2 (2 zero channels before, 2 after), as between the
            // CIFAR ResNets' stages, on an even and an odd map (⌈5/2⌉ = 3 keeps the last row
            // and column).
            check(
                o,
                |t| t[0].shortcut_option_a(8, 2),
                &[u(&[2, 4, 6, 6], -2.0, 2.0, 11)],
            ),
            check(
                o,
                |t| t[0].shortcut_option_a(8, 2),
                &[u(&[2, 4, 5, 5], -2.0, 2.0, 12)],
            ),
            // An odd number of padded channels (3 -> 6: 1 before, 2 after), and stride 1.
            check(
                o,
                |t| t[0].shortcut_option_a(6, 1),
                &[u(&[2, 3, 3, 4], -2.0, 2.0, 13)],
            ),
        ])),
    ]
}

/// Runs every case of `cases` with `options`: the name and report of each that fails (a case
/// whose op errors counts as failing, its error in place of the report). Empty when all pass.
pub fn failing_cases(cases: &[GradcheckCase], options: &GradcheckOptions) -> Vec<String> {
    cases
        .iter()
        .filter_map(|case| match (case.run)(options) {
            Ok(report) if report.passed() => None,
            Ok(report) => Some(format!("{}:\n{report}", case.name)),
            Err(e) => Some(format!("{}: {e}", case.name)),
        })
        .collect()
}

/// The mutation test of a list of cases: runs each with every backward scaled by `scale`
/// ([`GradcheckOptions::with_backward_scale`]) and names each case the checker does not
/// catch, as a whole or at an input whose gradient is large enough for the error to exceed
/// twice the tolerance ([`GradcheckReport::uncaught`]). Empty when every wrong backward is
/// caught, so a case added to a list is mutation-tested without further work.
pub fn uncaught_mutations(
    cases: &[GradcheckCase],
    options: &GradcheckOptions,
    scale: f32,
) -> Vec<String> {
    let mutation = options.with_backward_scale(scale);
    cases
        .iter()
        .filter_map(|case| {
            let (good, bad) = match ((case.run)(options), (case.run)(&mutation)) {
                (Ok(good), Ok(bad)) => (good, bad),
                (Err(e), _) | (_, Err(e)) => return Some(format!("{}: {e}", case.name)),
            };
            let uncaught = good.uncaught(&bad, &mutation);
            (bad.passed() || !uncaught.is_empty())
                .then(|| format!("{} (inputs {uncaught:?}):\n{bad}", case.name))
        })
        .collect()
}
