//! Every layer type of `ventral-nn`, checked with respect to its input and each of its
//! parameters: each evaluation builds the layer afresh from the same seed (so dropout draws
//! the same mask) and swaps the checker's leaves in for its parameters.

use ventral_autograd::{GradcheckOptions, GradcheckReport, Tensor, gradcheck};
use ventral_nn::layers::{
    AdaptiveAvgPool2d, AvgPool2d, BatchNorm1d, BatchNorm2d, Conv2d, Dropout, ELU, Flatten,
    LeakyReLU, Linear, LocalResponseNorm, MaxPool2d, Maxout, PReLU, ReLU, Sequential, Sigmoid,
    Tanh,
};
use ventral_nn::{Conv2dParams, Init, LrnParams, Mode, Module, Slot, named_parameters};

use super::{Case, Kind, distinct, uniform};

type Result<T> = ventral_autograd::Result<T>;

/// Gradchecks the layer `make` builds, with respect to `x` and every parameter.
fn layer(
    options: &GradcheckOptions,
    make: impl Fn() -> Box<dyn Module>,
    x: Tensor,
) -> Result<GradcheckReport> {
    let mut inputs = vec![x];
    inputs.extend(
        named_parameters(make().as_mut())
            .into_iter()
            .map(|(_, t)| t),
    );
    gradcheck(
        |t| {
            let mut layer = make();
            let mut i = 1;
            layer.visit("", &mut |_, slot| {
                if let Slot::Parameter(p) = slot {
                    *p = t[i].clone();
                    i += 1;
                }
            });
            layer
                .forward(&t[0])
                .map_err(|e| ventral_autograd::Error::InvalidArgument {
                    op: "layer",
                    detail: e.to_string(),
                })
        },
        &inputs,
        options,
    )
}

/// Sets every parameter and buffer to uniform values in `[lo, hi)` drawn from `seed`, so a
/// check does not start from the all-ones / all-zeros initialisation.
fn randomise(mut layer: Box<dyn Module>, seed: u64, lo: f32, hi: f32) -> Box<dyn Module> {
    let mut k = seed;
    layer.visit("", &mut |_, slot| {
        if let Slot::Parameter(t) | Slot::Buffer(t) = slot {
            k += 1;
            let r = uniform(t.dims(), lo, hi, k).to_vec();
            t.update(|d| d.copy_from_slice(&r))
                .expect("same number of values");
        }
    });
    layer
}

fn in_mode(mut layer: Box<dyn Module>, mode: Mode) -> Box<dyn Module> {
    layer.set_mode(mode);
    layer
}

/// Normal values pushed to ±[0.1, ∞): no step of the checker crosses a kink at 0.
fn away_from_zero(shape: &[usize], seed: u64) -> Tensor {
    let v: Vec<f32> = uniform(shape, -1.0, 1.0, seed)
        .to_vec()
        .iter()
        .map(|&x| x.signum() * (x.abs() + 0.1))
        .collect();
    Tensor::from_vec(v, shape.to_vec()).expect("one value per element")
}

fn normal(shape: &[usize], seed: u64) -> Tensor {
    Tensor::rand_normal(shape.to_vec(), 0.0, 1.0, seed).expect("a valid shape")
}

macro_rules! layer {
    ($name:literal, $run:expr) => {
        Case {
            name: $name,
            kind: Kind::Layer,
            run: $run,
        }
    };
}

/// Every layer type.
pub fn cases() -> Vec<Case> {
    vec![
        layer!("Linear", |o| layer(
            o,
            || Box::new(Linear::new(4, 3, true, &mut Init::new(1)).expect("valid sizes")),
            normal(&[5, 4], 2)
        )),
        layer!("Conv2d", |o| layer(
            o,
            || {
                let params = Conv2dParams {
                    padding: (1, 1),
                    ..Conv2dParams::default()
                };
                Box::new(
                    Conv2d::new(2, 3, (3, 3), params, true, &mut Init::new(3))
                        .expect("valid sizes"),
                )
            },
            uniform(&[2, 2, 4, 4], -1.0, 1.0, 4)
        )),
        layer!("BatchNorm1d", |o| GradcheckReport::join([
            layer(
                o,
                || randomise(
                    Box::new(BatchNorm1d::new(3).expect("3 features")),
                    5,
                    0.5,
                    1.5
                ),
                normal(&[6, 3], 6)
            ),
            layer(
                o,
                || in_mode(
                    randomise(
                        Box::new(BatchNorm1d::new(3).expect("3 features")),
                        5,
                        0.5,
                        1.5
                    ),
                    Mode::Eval
                ),
                normal(&[6, 3], 7)
            ),
        ])),
        layer!("BatchNorm2d", |o| GradcheckReport::join([
            layer(
                o,
                || randomise(
                    Box::new(BatchNorm2d::new(2).expect("2 channels")),
                    8,
                    0.5,
                    1.5
                ),
                normal(&[2, 2, 3, 3], 9)
            ),
            layer(
                o,
                || in_mode(
                    randomise(
                        Box::new(BatchNorm2d::new(2).expect("2 channels")),
                        8,
                        0.5,
                        1.5
                    ),
                    Mode::Eval
                ),
                normal(&[2, 2, 3, 3], 10)
            ),
        ])),
        layer!("ReLU", |o| layer(
            o,
            || Box::new(ReLU),
            away_from_zero(&[3, 4], 11)
        )),
        layer!("LeakyReLU", |o| layer(
            o,
            || Box::new(LeakyReLU::new(0.1)),
            away_from_zero(&[3, 4], 12)
        )),
        layer!("ELU", |o| layer(
            o,
            || Box::new(ELU::new(1.5)),
            away_from_zero(&[3, 4], 13)
        )),
        layer!("PReLU", |o| layer(
            o,
            || randomise(Box::new(PReLU::new(3).expect("3 slopes")), 14, 0.1, 0.5),
            away_from_zero(&[2, 3, 2, 2], 15)
        )),
        layer!("Sigmoid", |o| layer(
            o,
            || Box::new(Sigmoid),
            normal(&[3, 4], 16)
        )),
        layer!("Tanh", |o| layer(o, || Box::new(Tanh), normal(&[3, 4], 17))),
        // With these seeds no two pieces of a unit come within a step of a tie.
        layer!("Maxout", |o| layer(
            o,
            || Box::new(Maxout::new(4, 3, 3, &mut Init::new(19)).expect("valid sizes")),
            normal(&[5, 4], 20)
        )),
        layer!("MaxPool2d", |o| layer(
            o,
            || Box::new(MaxPool2d::new(2)),
            distinct(&[2, 2, 4, 4], 0.1, 21)
        )),
        layer!("AvgPool2d", |o| layer(
            o,
            || Box::new(AvgPool2d::new(2)),
            normal(&[2, 2, 4, 4], 22)
        )),
        layer!("AdaptiveAvgPool2d", |o| layer(
            o,
            || Box::new(AdaptiveAvgPool2d::new((2, 3))),
            normal(&[2, 1, 5, 7], 23)
        )),
        // A large alpha makes the normaliser matter (PyTorch's 1e-4 would leave b = a).
        layer!("LocalResponseNorm", |o| layer(
            o,
            || Box::new(LocalResponseNorm::new(
                LrnParams::new(3).with_alpha(0.5).with_k(2.0)
            )),
            normal(&[2, 4, 2, 2], 24)
        )),
        layer!("Dropout", |o| layer(
            o,
            || Box::new(Dropout::new(0.3, 25).expect("p in [0, 1]")),
            normal(&[4, 5], 26)
        )),
        layer!("Flatten", |o| layer(
            o,
            || Box::new(Flatten),
            normal(&[2, 3, 2, 2], 27)
        )),
        layer!("Sequential", |o| layer(
            o,
            || {
                let mut init = Init::new(28);
                let conv = Conv2d::new(1, 2, (2, 2), Conv2dParams::default(), true, &mut init)
                    .expect("valid sizes");
                let fc = Linear::new(8, 3, true, &mut init).expect("valid sizes");
                Box::new(
                    Sequential::new()
                        .push(conv)
                        .push(Tanh)
                        .push(Flatten)
                        .push(fc),
                )
            },
            uniform(&[2, 1, 3, 3], -1.0, 1.0, 29)
        )),
    ]
}
