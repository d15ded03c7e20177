//! Weights packed once (`Conv2d::prepare_forward`) give the same bits as packing them in
//! every call, on every forward path that packs (implicit GEMM, flat rows, Winograd,
//! pointwise, dense) and every
//! instruction set, with and without bias and ReLU; paths that pack nothing prepare nothing;
//! weights prepared for one path are not used by a convolution that plans another.

use ventral_kernels::Isa;
use ventral_kernels::conv::{Conv2d, Conv2dParams, ConvPath, Epilogue};

use crate::common::random_vec;
use crate::epilogue::forward_convs;

fn len(s: [usize; 4]) -> usize {
    s.iter().product()
}

#[test]
fn prepared_weights_give_the_bits_of_a_plain_forward_on_every_path() {
    let mut prepared_paths = std::collections::BTreeSet::new();
    for (input, isa, path, conv) in forward_convs() {
        let g = conv.geometry();
        let x = random_vec(len(g.input_shape()), -1.0, 1.0, 21);
        let w = random_vec(len(g.weight_shape()), -1.0, 1.0, 22);
        let b = random_vec(g.out_channels, -0.5, 0.5, 23);
        let Some(prepared) = conv.prepare_forward(&w).unwrap() else {
            // Flat rows are read in place on AVX-512 and AVX2: only the portable GEMM
            // flavour packs.
            let packs = match path {
                ConvPath::Implicit | ConvPath::Winograd | ConvPath::Dense => true,
                ConvPath::Flat => isa == Isa::Portable,
                _ => false,
            };
            assert!(!packs, "{path} packs its weights, so it must prepare them");
            continue;
        };
        prepared_paths.insert(path.name());
        assert_eq!(prepared.path(), path);
        assert!(conv.fits(&prepared) && prepared.bytes() >= 4 * w.len());
        for bias in [None, Some(&b[..])] {
            for epilogue in [Epilogue::Identity, Epilogue::Relu] {
                let mut want = vec![f32::NAN; len(g.output_shape())];
                conv.forward_with(&x, &w, bias, epilogue, &mut want)
                    .unwrap();
                // Twice: a prepared packing is read, never consumed. The slice of
                // weights passed along is only the fallback for a packing that does
                // not fit: zeros here show the prepared one is what runs.
                let zeros = vec![0.0; w.len()];
                for _ in 0..2 {
                    let mut got = vec![f32::NAN; want.len()];
                    conv.forward_prepared(&x, &zeros, &prepared, bias, epilogue, &mut got)
                        .unwrap();
                    let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits(&got), bits(&want), "{path} on {isa:?}, {input:?}");
                }
            }
        }
    }
    for path in ["implicit", "winograd", "flat", "pointwise", "dense"] {
        assert!(
            prepared_paths.contains(path),
            "no layer prepared {path}: {prepared_paths:?}"
        );
    }
}

#[test]
fn weights_prepared_for_another_path_are_not_used() {
    // The same weights at two input sizes: implicit GEMM for a 6x6 map, Winograd for 32x32.
    let (weight, params) = ([8, 8, 3, 3], Conv2dParams::default().padding(1));
    let small = Conv2d::new([1, 8, 6, 6], weight, params)
        .unwrap()
        .with_path(Some(ConvPath::Implicit));
    let large = Conv2d::new([1, 8, 32, 32], weight, params)
        .unwrap()
        .with_path(Some(ConvPath::Winograd));
    let w = random_vec(len(weight), -1.0, 1.0, 31);
    let prepared = small.prepare_forward(&w).unwrap().unwrap();
    assert!(!large.fits(&prepared));
    // Other weights' packing would give other outputs: `large` packs `w` itself.
    let x = random_vec(len(large.geometry().input_shape()), -1.0, 1.0, 32);
    let mut want = vec![0.0; len(large.geometry().output_shape())];
    large.forward(&x, &w, None, &mut want).unwrap();
    let mut got = vec![0.0; want.len()];
    large
        .forward_prepared(&x, &w, &prepared, None, Epilogue::Identity, &mut got)
        .unwrap();
    assert_eq!(got, want);
    // A prepared packing does not fit another weight shape either.
    let other = Conv2d::new([1, 8, 6, 6], [9, 8, 3, 3], params)
        .unwrap()
        .with_path(Some(ConvPath::Implicit));
    assert!(!other.fits(&prepared));
}

#[test]
fn preparing_weights_of_the_wrong_length_is_an_error() {
    let conv = Conv2d::new([1, 4, 8, 8], [4, 4, 3, 3], Conv2dParams::default()).unwrap();
    let err = conv.prepare_forward(&[0.0; 10]).unwrap_err().to_string();
    assert!(err.contains("weight"), "{err}");
}
