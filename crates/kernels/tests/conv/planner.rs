//! The convolution planner's interface: forcing a path (`Conv2d::with_path`, `VENTRAL_CONV`)
//! takes it where it serves and falls back to the plan where it does not, and an unknown
//! `VENTRAL_CONV` value is an error. (Which path each production layer gets is asserted in
//! `production.rs`; every forced path is checked against the reference in `reference.rs`.)

use ventral_kernels::conv::plan::{self, parse_forced};
use ventral_kernels::conv::{Conv2d, Conv2dParams, ConvPath, Epilogue, Pass, WeightUse};
use ventral_kernels::{Isa, KernelError};

use crate::common::{assert_error, isas, random_vec};

/// LeNet-5's second layer at batch 4: every pass has a special path on AVX-512.
fn lenet_conv2() -> Conv2d {
    Conv2d::new([4, 6, 14, 14], [16, 6, 5, 5], Conv2dParams::default()).unwrap()
}

/// Forward, input and weight gradient of `conv` on fixed data.
fn passes(conv: &Conv2d) -> [Vec<u32>; 3] {
    let g = conv.geometry();
    let len = |s: [usize; 4]| s.iter().product::<usize>();
    let x = random_vec(len(g.input_shape()), -1.0, 1.0, 1);
    let w = random_vec(len(g.weight_shape()), -1.0, 1.0, 2);
    let dy = random_vec(len(g.output_shape()), -1.0, 1.0, 3);
    let mut y = vec![0.0; dy.len()];
    let mut dx = vec![0.0; x.len()];
    let mut dw = vec![0.0; w.len()];
    conv.forward(&x, &w, None, &mut y).unwrap();
    conv.backward_input(&dy, &w, &mut dx).unwrap();
    conv.backward_weight(&x, &dy, &mut dw).unwrap();
    let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<u32>>();
    [bits(&y), bits(&dx), bits(&dw)]
}

#[test]
fn a_forced_path_that_cannot_serve_a_pass_falls_back_to_the_plan() {
    // A stride-2 convolution: flat rows, the direct weight gradient, input_rows and the
    // transposed input gradient all need stride 1, so forcing any of them changes nothing.
    let strided = Conv2d::new(
        [2, 3, 12, 12],
        [4, 3, 3, 3],
        Conv2dParams::default().stride(2).padding(1),
    )
    .unwrap();
    for isa in isas() {
        let planned = strided.with_isa(isa).unwrap().with_path(None);
        for path in [
            ConvPath::Flat,
            ConvPath::Direct,
            ConvPath::InputRows,
            ConvPath::Transposed,
            ConvPath::Channels,
            ConvPath::Pointwise,
        ] {
            let forced = planned.with_path(Some(path));
            for pass in Pass::ALL {
                assert!(
                    !path.serves(planned.geometry(), isa, pass),
                    "{path} {pass:?}"
                );
            }
            assert_eq!(forced.plan(), planned.plan(), "{path} on {isa:?}");
            assert_eq!(passes(&forced), passes(&planned), "{path} on {isa:?}");
        }
    }
}

#[test]
fn a_forced_path_runs_the_passes_it_serves_and_only_those() {
    for isa in isas() {
        let planned = lenet_conv2().with_isa(isa).unwrap().with_path(None);
        let g = *planned.geometry();
        // Flat serves only the forward pass: the gradients keep their planned paths.
        let flat = planned.with_path(Some(ConvPath::Flat));
        assert_eq!(flat.plan().forward, ConvPath::Flat);
        assert_eq!(flat.plan().input_gradient, planned.plan().input_gradient);
        assert_eq!(flat.plan().weight_gradient, planned.plan().weight_gradient);
        // The implicit GEMM serves the forward pass and the weight gradient.
        let implicit = planned.with_path(Some(ConvPath::Implicit));
        assert_eq!(implicit.plan().forward, ConvPath::Implicit);
        assert_eq!(implicit.plan().weight_gradient, ConvPath::Implicit);
        assert_eq!(
            implicit.plan().input_gradient,
            planned.plan().input_gradient
        );
        // The AVX-512 paths serve this layer on AVX-512 only.
        for (path, pass) in [
            (ConvPath::Channels, Pass::Forward),
            (ConvPath::Channels, Pass::WeightGradient),
            (ConvPath::InputRows, Pass::InputGradient),
        ] {
            assert_eq!(
                path.serves(&g, isa, pass),
                isa == Isa::Avx512,
                "{path} on {isa:?}"
            );
        }
        // Without a forced path, the plan is the planner's.
        for pass in Pass::ALL {
            assert_eq!(planned.plan().get(pass), plan::plan(&g, isa, pass));
        }
    }
}

#[test]
fn prepared_weights_move_winograds_tile_bound_on_avx2_only() {
    let params = Conv2dParams::default().padding(1);
    let geometry = |n, c, h| {
        *Conv2d::new([n, c, h, h], [c, c, 3, 3], params)
            .unwrap()
            .geometry()
    };
    // ResNet-50's third stage at batch 1: 16 tiles of 4x4.
    let stage3 = geometry(1, 256, 14);
    // Its fourth: 4 tiles, too few even for prepared weights.
    let stage4 = geometry(1, 512, 7);
    let forward = |g, isa, weights| plan::plan_for(g, isa, Pass::Forward, weights);
    assert_eq!(
        forward(&stage3, Isa::Avx2Fma, WeightUse::Prepared),
        ConvPath::Winograd
    );
    assert_eq!(
        forward(&stage3, Isa::Avx2Fma, WeightUse::PerCall),
        ConvPath::Implicit
    );
    assert_eq!(
        plan::plan(&stage3, Isa::Avx2Fma, Pass::Forward),
        ConvPath::Implicit
    );
    assert_eq!(
        forward(&stage4, Isa::Avx2Fma, WeightUse::Prepared),
        ConvPath::Implicit
    );
    for isa in [Isa::Avx512, Isa::Portable] {
        for g in [&stage3, &stage4] {
            assert_eq!(
                forward(g, isa, WeightUse::Prepared),
                forward(g, isa, WeightUse::PerCall),
                "{isa:?}"
            );
        }
    }
    // Only the forward pass changes: the gradients run on weights new every call.
    for pass in [Pass::InputGradient, Pass::WeightGradient] {
        assert_eq!(
            plan::plan_for(&stage3, Isa::Avx2Fma, pass, WeightUse::Prepared),
            plan::plan(&stage3, Isa::Avx2Fma, pass)
        );
    }
}

#[test]
fn a_convolution_for_prepared_weights_plans_and_prepares_winograd_on_avx2() {
    if !Isa::Avx2Fma.is_supported() {
        return;
    }
    let conv = Conv2d::new(
        [1, 64, 14, 14],
        [64, 64, 3, 3],
        Conv2dParams::default().padding(1),
    )
    .unwrap()
    .with_isa(Isa::Avx2Fma)
    .unwrap()
    .with_path(None);
    let prepared_use = conv.with_weight_use(WeightUse::Prepared);
    assert_eq!(conv.plan().forward, ConvPath::Implicit);
    assert_eq!(prepared_use.plan().forward, ConvPath::Winograd);
    let g = conv.geometry();
    let len = |s: [usize; 4]| s.iter().product::<usize>();
    let x = random_vec(len(g.input_shape()), -1.0, 1.0, 4);
    let w = random_vec(len(g.weight_shape()), -1.0, 1.0, 5);
    let prepared = prepared_use.prepare_forward(&w).unwrap().unwrap();
    assert_eq!(prepared.path(), ConvPath::Winograd);
    // Weights prepared for the per-call plan's path do not fit, and the reverse.
    assert!(!conv.fits(&prepared));
    let mut winograd = vec![f32::NAN; len(g.output_shape())];
    let mut implicit = winograd.clone();
    prepared_use
        .forward_prepared(&x, &w, &prepared, None, Epilogue::Identity, &mut winograd)
        .unwrap();
    conv.forward(&x, &w, None, &mut implicit).unwrap();
    // Two summation orders of 576 products of values in [-1, 1]: within Winograd's bound.
    let scale = implicit.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    for (a, b) in winograd.iter().zip(&implicit) {
        assert!((a - b).abs() <= 1e-4 * scale, "{a} against {b}");
    }
}

#[test]
fn every_path_serves_only_its_passes() {
    // One geometry per path that it serves, and the passes it must never serve.
    let narrow = Conv2d::new(
        [2, 2, 8, 8],
        [16, 1, 3, 3],
        Conv2dParams::default().groups(2),
    )
    .unwrap()
    .with_isa(Isa::Portable)
    .unwrap();
    let g = *narrow.geometry();
    let isa = Isa::Portable;
    use ConvPath::*;
    use Pass::*;
    for (path, served) in [
        (Implicit, [true, false, true]),
        (SmallImages, [true, false, true]),
        (Flat, [true, false, false]),
        (Direct, [false, false, true]),
        (Transposed, [false, true, false]),
        (Col2im, [false, true, false]),
        (Pointwise, [false, false, false]),
        (Channels, [false, false, false]),
        (InputRows, [false, false, false]),
        // One group only.
        (Winograd, [false, false, false]),
        (Dense, [false, false, false]),
    ] {
        let got = [Forward, InputGradient, WeightGradient].map(|pass| path.serves(&g, isa, pass));
        assert_eq!(got, served, "{path}");
    }
}

#[test]
fn path_names_round_trip_and_unknown_ventral_conv_values_are_errors() {
    for path in ConvPath::ALL {
        assert_eq!(ConvPath::from_name(path.name()), Some(path));
        assert_eq!(parse_forced(&path.name().to_uppercase()), Ok(Some(path)));
    }
    assert_eq!(parse_forced(""), Ok(None));
    assert_eq!(parse_forced(" auto "), Ok(None));
    let err = assert_error(
        parse_forced("im2col"),
        "InvalidArgument",
        "VENTRAL_CONV=\"im2col\" is not a convolution path",
    );
    assert!(err.to_string().contains("flat"), "lists the names: {err}");
}

/// Run in a child process by [`ventral_conv_is_read_by_conv2d_new`]: prints the plan
/// `Conv2d::new` gives LeNet-5's second layer under this process's `VENTRAL_CONV`, or its
/// error.
#[test]
#[ignore = "run in a child process with VENTRAL_CONV set"]
fn child_prints_the_plan_under_ventral_conv() {
    match Conv2d::new([4, 6, 14, 14], [16, 6, 5, 5], Conv2dParams::default()) {
        Ok(conv) => println!("plan: {} on {}", conv.plan(), Isa::detect().name()),
        Err(KernelError::InvalidArgument { detail, .. }) => println!("error: {detail}"),
        Err(e) => panic!("unexpected error {e}"),
    }
}

/// Runs [`child_prints_the_plan_under_ventral_conv`] with `VENTRAL_CONV=value` and returns
/// its line of output.
fn child_line(value: &str) -> String {
    let name = "planner::child_prints_the_plan_under_ventral_conv";
    let out = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", name, "--include-ignored", "--nocapture"])
        .arg("--test-threads=1")
        .env("VENTRAL_CONV", value)
        .output()
        .expect("child test process");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "VENTRAL_CONV={value}: {stdout}");
    // The harness prints `test <name> ... ` before the line, and `ok` after it.
    stdout
        .lines()
        .find_map(|l| {
            l.find("plan: ")
                .or_else(|| l.find("error: "))
                .map(|i| &l[i..])
        })
        .unwrap_or_else(|| panic!("no plan line in {stdout}"))
        .to_string()
}

#[test]
fn ventral_conv_is_read_by_conv2d_new() {
    let isa = Isa::detect();
    let planned = lenet_conv2().with_path(None).plan();
    assert_eq!(child_line(""), format!("plan: {planned} on {}", isa.name()));
    // `implicit` serves the forward pass and weight gradient; the input gradient keeps its
    // planned path.
    assert_eq!(
        child_line("implicit"),
        format!(
            "plan: y:implicit dx:{} dw:implicit on {}",
            planned.input_gradient,
            isa.name()
        )
    );
    let line = child_line("implicit-gemm");
    assert!(
        line.starts_with("error: VENTRAL_CONV=\"implicit-gemm\" is not a convolution path"),
        "{line}"
    );
}
