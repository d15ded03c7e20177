//! LeNet-5 exactly as LeCun, Bottou, Bengio & Haffner 1998 publish it ("Gradient-based
//! learning applied to document recognition", §II.B).

use ventral_nn::layers::{Conv2d, Linear};
use ventral_nn::{AvgPool2dParams, Conv2dParams, Error, Init, Module, Result, Slot, Tensor, join};

use crate::summary::{forward_child, record_macs};

/// `f(a) = A·tanh(S·a)` with `A = 1.7159`, `S = 2/3` (the paper's eq. 6 and Appendix A).
fn squash(x: &Tensor) -> Result<Tensor> {
    Ok(x.mul_scalar(2.0 / 3.0)?.tanh()?.mul_scalar(1.7159)?)
}

/// The paper's initialisation: uniform in `±2.4 / F_i`, `F_i` the unit's fan-in (Appendix A).
fn paper_uniform(init: &mut Init, shape: &[usize], fan_in: usize) -> Result<Tensor> {
    Ok(init.uniform(shape, 2.4 / fan_in as f32)?.with_grad())
}

fn paper_conv(cin: usize, cout: usize, init: &mut Init) -> Result<Conv2d> {
    let fan_in = cin * 25;
    Ok(Conv2d {
        weight: paper_uniform(init, &[cout, cin, 5, 5], fan_in)?,
        bias: Some(paper_uniform(init, &[cout], fan_in)?),
        params: Conv2dParams::default(),
    })
}

/// S2/S4: each map's 2x2 sums times a trainable coefficient plus a trainable bias. Keys
/// `weight` `[C]` (the coefficients), `bias` `[C]`.
struct Subsampling {
    weight: Tensor,
    bias: Tensor,
}

impl Subsampling {
    fn new(channels: usize, init: &mut Init) -> Result<Self> {
        Ok(Self {
            weight: paper_uniform(init, &[channels], 4)?,
            bias: paper_uniform(init, &[channels], 4)?,
        })
    }
}

impl Module for Subsampling {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let c = self.weight.numel();
        let sums = x.avg_pool2d(&AvgPool2dParams::square(2))?.mul_scalar(4.0)?; // [N, C, H/2, W/2]
        let w = self.weight.reshape([1, c, 1, 1])?;
        let b = self.bias.reshape([1, c, 1, 1])?;
        Ok(sums.mul(&w)?.add(&b)?)
    }
    fn visit(&mut self, prefix: &str, f: &mut dyn FnMut(&str, Slot<'_>)) {
        f(&join(prefix, "weight"), Slot::Parameter(&mut self.weight));
        f(&join(prefix, "bias"), Slot::Parameter(&mut self.bias));
    }
    fn describe(&self) -> String {
        format!(
            "Subsampling({}, 2x2, coefficient + bias)",
            self.weight.numel()
        )
    }
}

/// Table I: the S2 maps each C3 map reads.
const C3_TABLE: [&[usize]; 16] = [
    &[0, 1, 2],
    &[1, 2, 3],
    &[2, 3, 4],
    &[3, 4, 5],
    &[0, 4, 5],
    &[0, 1, 5],
    &[0, 1, 2, 3],
    &[1, 2, 3, 4],
    &[2, 3, 4, 5],
    &[0, 3, 4, 5],
    &[0, 1, 4, 5],
    &[0, 1, 2, 5],
    &[0, 1, 3, 4],
    &[1, 2, 4, 5],
    &[0, 2, 3, 5],
    &[0, 1, 2, 3, 4, 5],
];

/// C3: 16 maps of 5x5 convolutions over the subsets of S2's six maps in [`C3_TABLE`]: 60
/// kernels (`weight` `[60, 5, 5]`, in table order) and 16 biases — 1,516 parameters.
struct PartialConv {
    weight: Tensor,
    bias: Tensor,
    /// For each of the 16·6 (output, input) pairs: its kernel in `weight` and 1, or 0 and 0.
    index: Vec<usize>,
    mask: Tensor,
}

impl PartialConv {
    fn new(init: &mut Init) -> Result<Self> {
        let kernels: usize = C3_TABLE.iter().map(|t| t.len()).sum();
        let mut weight = Vec::with_capacity(kernels * 25);
        let mut bias = Vec::with_capacity(16);
        let (mut index, mut mask) = (vec![0; 96], vec![0.0; 96]);
        let mut k = 0;
        for (o, inputs) in C3_TABLE.iter().enumerate() {
            let fan_in = inputs.len() * 25;
            for &i in *inputs {
                weight.extend(init.uniform(&[25], 2.4 / fan_in as f32)?.to_vec());
                index[o * 6 + i] = k;
                mask[o * 6 + i] = 1.0;
                k += 1;
            }
            bias.extend(init.uniform(&[1], 2.4 / fan_in as f32)?.to_vec());
        }
        Ok(Self {
            weight: Tensor::from_vec(weight, [kernels, 5, 5])?.with_grad(),
            bias: Tensor::from_vec(bias, [16])?.with_grad(),
            index,
            mask: Tensor::from_vec(mask, [96, 1, 1])?,
        })
    }
}

impl Module for PartialConv {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        // The full [16, 6, 5, 5] weight, zero where Table I has no connection.
        let full = self
            .weight
            .index_select(0, &self.index)?
            .mul(&self.mask)?
            .reshape([16, 6, 5, 5])?;
        let y = x.conv2d(&full, Some(&self.bias), Conv2dParams::default())?; // [N, 16, 10, 10]
        let positions = (y.dims()[2] * y.dims()[3]) as u64;
        record_macs(positions * self.weight.numel() as u64);
        Ok(y)
    }
    fn visit(&mut self, prefix: &str, f: &mut dyn FnMut(&str, Slot<'_>)) {
        f(&join(prefix, "weight"), Slot::Parameter(&mut self.weight));
        f(&join(prefix, "bias"), Slot::Parameter(&mut self.bias));
    }
    fn describe(&self) -> String {
        "PartialConv2d(6→16, 5x5, Table I: 60 of 96 connections)".into()
    }
}

/// The digits as the paper's output codes: stylised 7x12 bitmaps, `#` = +1, `.` = −1.
const DIGITS: [[&str; 12]; 10] = [
    [
        ".......", "..###..", ".#...#.", "#.....#", "#.....#", "#.....#", "#.....#", "#.....#",
        "#.....#", ".#...#.", "..###..", ".......",
    ],
    [
        ".......", "...#...", "..##...", ".#.#...", "...#...", "...#...", "...#...", "...#...",
        "...#...", "...#...", ".#####.", ".......",
    ],
    [
        ".......", "..###..", ".#...#.", "#.....#", "......#", ".....#.", "....#..", "...#...",
        "..#....", ".#.....", "#######", ".......",
    ],
    [
        ".......", ".####..", "#....#.", "......#", ".....#.", "..###..", ".....#.", "......#",
        "......#", "#....#.", ".####..", ".......",
    ],
    [
        ".......", ".....#.", "....##.", "...#.#.", "..#..#.", ".#...#.", "#....#.", "#######",
        ".....#.", ".....#.", ".....#.", ".......",
    ],
    [
        ".......", "#######", "#......", "#......", "#.###..", "##...#.", "......#", "......#",
        "......#", "#....#.", ".####..", ".......",
    ],
    [
        ".......", "..###..", ".#.....", "#......", "#......", "#.###..", "##...#.", "#.....#",
        "#.....#", ".#...#.", "..###..", ".......",
    ],
    [
        ".......", "#######", "......#", ".....#.", "....#..", "...#...", "...#...", "..#....",
        "..#....", "..#....", "..#....", ".......",
    ],
    [
        ".......", "..###..", ".#...#.", "#.....#", ".#...#.", "..###..", ".#...#.", "#.....#",
        "#.....#", ".#...#.", "..###..", ".......",
    ],
    [
        ".......", "..###..", ".#...#.", "#.....#", "#.....#", ".#...##", "..###.#", "......#",
        "......#", ".....#.", "..###..", ".......",
    ],
];

/// The output layer: one Euclidean RBF unit per class, `y_i = Σ_j (x_j − w_ij)²`, with fixed
/// `±1` codes `w_i` (the digits' bitmaps; further classes get seeded random codes). The codes
/// are a buffer (`weight` `[classes, 84]`), not trained. Returns `−y` as logits, so
/// cross-entropy on them is the paper's MAP criterion (eq. 9) without its constant `e^{−j}`.
struct Rbf {
    weight: Tensor,
}

impl Rbf {
    fn new(classes: usize, init: &mut Init) -> Result<Self> {
        let mut codes = Vec::with_capacity(classes * 84);
        for c in 0..classes {
            match DIGITS.get(c) {
                Some(rows) => codes.extend(
                    rows.iter()
                        .flat_map(|r| r.chars().map(|ch| if ch == '#' { 1.0 } else { -1.0 })),
                ),
                None => codes.extend(
                    init.uniform(&[84], 1.0)?
                        .to_vec()
                        .into_iter()
                        .map(|v| if v >= 0.0 { 1.0 } else { -1.0 }),
                ),
            }
        }
        Ok(Self {
            weight: Tensor::from_vec(codes, [classes, 84])?,
        })
    }
}

impl Module for Rbf {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        // ‖x − w‖² = ‖x‖² − 2 x·w + ‖w‖²
        let xx = x.pow(2.0)?.sum(&[1], true)?; // [N, 1]
        let xw = x.matmul(&self.weight.t()?)?; // [N, classes]
        // ‖w‖² from the codes loaded, not a constant: a state dict may hold other codes.
        let ww = self
            .weight
            .pow(2.0)?
            .sum(&[1], false)?
            .reshape([1, xw.dims()[1]])?; // [1, classes]
        let d = xx.sub(&xw.mul_scalar(2.0)?)?.add(&ww)?; // [N, classes]
        record_macs(self.weight.numel() as u64);
        Ok(d.neg()?)
    }
    fn visit(&mut self, prefix: &str, f: &mut dyn FnMut(&str, Slot<'_>)) {
        f(&join(prefix, "weight"), Slot::Buffer(&mut self.weight));
    }
    fn describe(&self) -> String {
        format!("RBF(84→{}, fixed ±1 codes)", self.weight.dims()[0])
    }
}

/// LeNet-5 as published: 32x32 input; C1 6@5x5 → S2 trainable subsampling → C3 16@5x5 with
/// Table I's partial connections → S4 → C5 120@5x5 → F6 84 → Euclidean RBF output with fixed
/// ±1 codes; every layer up to F6 is followed by `1.7159·tanh(2a/3)`. Weights start uniform
/// in `±2.4 / fan-in` (Appendix A).
///
/// 60,000 trainable parameters, counted as the paper does (weights and biases that learn):
/// C1 6·(25+1) = 156, S2 6·2 = 12, C3 60·25 + 16 = 1,516, S4 16·2 = 32,
/// C5 120·(400+1) = 48,120, F6 84·(120+1) = 10,164; the RBF codes are fixed (a buffer).
/// Keys `c1.*`, `s2.*`, `c3.*`, `s4.*`, `c5.*`, `f6.*`, `output.weight` (buffer).
///
/// # Shapes
/// - input `[N, 1, 32, 32]`, or `[N, 1, 28, 28]` (MNIST) centred in a 32x32 zero field as the
///   paper does
/// - output `[N, num_classes]`: minus each RBF unit's squared distance (logits)
pub struct LeNet5Paper {
    c1: Conv2d,
    s2: Subsampling,
    c3: PartialConv,
    s4: Subsampling,
    c5: Conv2d,
    f6: Linear,
    output: Rbf,
}

impl LeNet5Paper {
    /// The network with `num_classes` RBF units (10 for the digits).
    ///
    /// # Errors
    /// If `num_classes` is zero.
    pub fn new(num_classes: usize, seed: u64) -> Result<Self> {
        Self::adapted(1, num_classes, seed)
    }

    /// The network with C1 taking `in_channels` maps (the registry's `--in-channels`).
    pub(crate) fn adapted(in_channels: usize, num_classes: usize, seed: u64) -> Result<Self> {
        if num_classes == 0 {
            return Err(Error::config("LeNet5Paper", "needs at least one class"));
        }
        let init = &mut Init::new(seed);
        Ok(Self {
            c1: paper_conv(in_channels, 6, init)?,
            s2: Subsampling::new(6, init)?,
            c3: PartialConv::new(init)?,
            s4: Subsampling::new(16, init)?,
            c5: paper_conv(16, 120, init)?,
            f6: Linear {
                weight: paper_uniform(init, &[84, 120], 120)?,
                bias: Some(paper_uniform(init, &[84], 120)?),
            },
            output: Rbf::new(num_classes, init)?,
        })
    }
}

/// `[N, C, 28, 28]` centred in `[N, C, 32, 32]` with zeros (other sizes pass unchanged).
fn centre_in_32(x: &Tensor) -> Result<Tensor> {
    let &[n, c, 28, 28] = x.dims() else {
        return Ok(x.clone());
    };
    // A 1x1 identity convolution with padding 2 pads with zeros and carries the gradient.
    let eye = Tensor::from_vec(
        (0..c * c)
            .map(|k| if k / c == k % c { 1.0 } else { 0.0 })
            .collect(),
        [c, c, 1, 1],
    )?;
    let y = x.conv2d(&eye, None, Conv2dParams::default().padding(2))?;
    debug_assert_eq!(y.dims(), [n, c, 32, 32]);
    Ok(y)
}

impl Module for LeNet5Paper {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = centre_in_32(x)?; // [N, 1, 32, 32]
        let x = squash(&forward_child(&self.c1, "c1", &x)?)?; // [N, 6, 28, 28]
        let x = squash(&forward_child(&self.s2, "s2", &x)?)?; // [N, 6, 14, 14]
        let x = squash(&forward_child(&self.c3, "c3", &x)?)?; // [N, 16, 10, 10]
        let x = squash(&forward_child(&self.s4, "s4", &x)?)?; // [N, 16, 5, 5]
        let x = squash(&forward_child(&self.c5, "c5", &x)?)?; // [N, 120, 1, 1]
        let x = x.flatten(1, 3)?; // [N, 120]
        let x = squash(&forward_child(&self.f6, "f6", &x)?)?; // [N, 84]
        forward_child(&self.output, "output", &x) // [N, classes]
    }

    fn for_each_child(&mut self, f: &mut dyn FnMut(&str, &mut dyn Module)) {
        f("c1", &mut self.c1);
        f("s2", &mut self.s2);
        f("c3", &mut self.c3);
        f("s4", &mut self.s4);
        f("c5", &mut self.c5);
        f("f6", &mut self.f6);
        f("output", &mut self.output);
    }

    fn describe(&self) -> String {
        "LeNet5Paper".into()
    }
}
