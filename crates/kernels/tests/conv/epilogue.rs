//! The fused ReLU epilogue (`Conv2d::forward_with`): on every path that serves the forward
//! pass, on every instruction set, it gives exactly the bits of the plain forward pass
//! followed by the separate `relu` kernel — with and without bias, at geometries that reach
//! each path (flat rows, the 16-channel direct path, small images, pointwise, implicit GEMM,
//! Winograd).

use ventral_kernels::Isa;
use ventral_kernels::conv::{Conv2d, Conv2dParams, ConvPath, Epilogue, Pass};
use ventral_kernels::elementwise::relu;

use crate::common::{isas, random_vec};

/// `(input, weight, params)` of layers that between them reach every forward path.
fn layers() -> Vec<([usize; 4], [usize; 4], Conv2dParams)> {
    let pad1 = Conv2dParams::default().padding(1);
    vec![
        ([3, 6, 14, 14], [16, 6, 5, 5], Conv2dParams::default()),
        ([2, 32, 9, 11], [33, 32, 3, 3], pad1),
        ([1, 40, 16, 16], [32, 40, 3, 3], pad1),
        ([2, 17, 7, 7], [19, 17, 1, 1], Conv2dParams::default()),
        ([2, 3, 13, 13], [7, 3, 3, 3], pad1.stride(2)),
        (
            [1, 1, 28, 28],
            [6, 1, 5, 5],
            Conv2dParams::default().padding(2),
        ),
        ([4, 8, 6, 6], [12, 4, 3, 3], pad1.groups(2)),
        // Fewer pixels than taps: the dense path serves it.
        ([3, 5, 2, 2], [6, 5, 3, 3], pad1),
    ]
}

/// Every layer of [`layers`] on every instruction set with each path that serves its forward
/// pass forced: `(input shape, instruction set, path, convolution)`.
pub fn forward_convs() -> Vec<([usize; 4], Isa, ConvPath, Conv2d)> {
    let mut convs = Vec::new();
    for (input, weight, params) in layers() {
        for isa in isas() {
            let planned = Conv2d::new(input, weight, params)
                .unwrap()
                .with_isa(isa)
                .unwrap();
            for path in ConvPath::ALL {
                if path.serves(planned.geometry(), isa, Pass::Forward) {
                    convs.push((input, isa, path, planned.with_path(Some(path))));
                }
            }
        }
    }
    convs
}

#[test]
fn fused_relu_equals_forward_then_relu_on_every_path() {
    let mut paths_seen = std::collections::BTreeSet::new();
    for (input, isa, path, conv) in forward_convs() {
        paths_seen.insert(path.name());
        let g = conv.geometry();
        let len = |s: [usize; 4]| s.iter().product::<usize>();
        let x = random_vec(len(g.input_shape()), -1.0, 1.0, 11);
        let w = random_vec(len(g.weight_shape()), -1.0, 1.0, 12);
        let b = random_vec(g.out_channels, -0.5, 0.5, 13);
        for bias in [None, Some(&b[..])] {
            let mut plain = vec![f32::NAN; len(g.output_shape())];
            conv.forward(&x, &w, bias, &mut plain).unwrap();
            let mut want = vec![0.0; plain.len()];
            relu(&plain, &mut want).unwrap();
            assert!(
                plain.iter().any(|v| *v < 0.0) && want.iter().any(|v| *v > 0.0),
                "{path}: the data must have outputs on both sides of zero"
            );
            let mut fused = vec![f32::NAN; plain.len()];
            conv.forward_with(&x, &w, bias, Epilogue::Relu, &mut fused)
                .unwrap();
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(
                bits(&fused),
                bits(&want),
                "{path} on {isa:?}, {input:?}, bias {}",
                bias.is_some()
            );
            let mut identity = vec![f32::NAN; plain.len()];
            conv.forward_with(&x, &w, bias, Epilogue::Identity, &mut identity)
                .unwrap();
            assert_eq!(bits(&identity), bits(&plain), "{path}: identity epilogue");
        }
    }
    for path in ["implicit", "winograd", "flat", "pointwise", "dense"] {
        assert!(
            paths_seen.contains(path),
            "no layer reached {path}: {paths_seen:?}"
        );
    }
}
