//! `ventral visualize filters` and `ventral visualize boundary`, run through the binary.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::{assert_one_line_error, data_dir, run, run_ok, scratch};

const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
/// One boundary frame's size (`FRAME_WIDTH` × `FRAME_HEIGHT` in the CLI).
const FRAME: (u32, u32) = (360, 400);

/// A LeNet-5 trained for one epoch on 256 images: its run directory.
fn trained() -> &'static PathBuf {
    static RUN: OnceLock<PathBuf> = OnceLock::new();
    RUN.get_or_init(|| {
        let dir = scratch("visualize-run");
        run_ok(&[
            "train",
            "--epochs",
            "1",
            "--limit-train",
            "256",
            "--limit-test",
            "100",
            "--quiet",
            "--out",
            &s(&dir),
        ]);
        dir
    })
}

fn example(name: &str) -> String {
    format!("csv:{}", data_dir("examples").join(name).display())
}

/// A PNG's width and height from its IHDR chunk, after checking the signature.
fn png_size(path: &Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(
        &bytes[..8],
        PNG_SIGNATURE,
        "{} is not a PNG",
        path.display()
    );
    assert_eq!(&bytes[12..16], b"IHDR");
    let be = |i: usize| u32::from_be_bytes(bytes[i..i + 4].try_into().unwrap());
    (be(16), be(20))
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn filters_of_a_trained_lenet5_tile_six_5x5_filters() {
    let run_dir = trained();
    let weights = run_dir.join("last.safetensors");
    let out = scratch("visualize-filters");
    let png = out.join("filters.png");
    run_ok(&[
        "visualize",
        "filters",
        "--model",
        "lenet5",
        "--weights",
        &s(&weights),
        "--out",
        &s(&png),
    ]);
    // conv1.weight is [6, 1, 5, 5]: a 3×2 grid, tiles magnified 8× (to ≥ 40 px), 1-pixel
    // separators between and around: 3·40 + 4 by 2·40 + 3.
    assert_eq!(png_size(&png), (3 * 40 + 4, 2 * 40 + 3));

    // With an image: the activation maps of conv1 (6 maps of 28×28, padding 2), magnified
    // 2× (to ≥ 56 px), also in a 3×2 grid.
    let digit = out.join("digit.pgm");
    let mut pgm = b"P5 28 28 255\n".to_vec();
    pgm.extend((0..28 * 28).map(|i| if (i % 28) / 4 == 3 { 255u8 } else { 0 }));
    std::fs::write(&digit, pgm).unwrap();
    let maps = out.join("maps.png");
    run_ok(&[
        "visualize",
        "filters",
        "--weights",
        &s(&weights),
        "--out",
        &s(&png),
        "--image",
        &s(&digit),
        "--layer",
        "conv1",
        "--activations-out",
        &s(&maps),
    ]);
    assert_eq!(png_size(&maps), (3 * 56 + 4, 2 * 56 + 3));
    // Default name beside --out.
    run_ok(&[
        "visualize",
        "filters",
        "--weights",
        &s(&weights),
        "--out",
        &s(&png),
        "--image",
        &s(&digit),
    ]);
    assert_eq!(
        png_size(&out.join("filters-activations.png")),
        (3 * 56 + 4, 2 * 56 + 3)
    );

    // A deeper layer is captured from a forward pass: conv2's 16 maps of 10x10, tiled 4x4 and
    // magnified 6x (to at least 56 px) with 1-pixel separators: 4 * 60 + 5 = 245.
    let deep = out.join("conv2-maps.png");
    run_ok(&[
        "visualize",
        "filters",
        "--weights",
        &s(&weights),
        "--out",
        &s(&png),
        "--image",
        &s(&digit),
        "--layer",
        "conv2",
        "--activations-out",
        &s(&deep),
    ]);
    assert_eq!(png_size(&deep), (245, 245));
    // An unknown layer lists the convolutions.
    let line = assert_one_line_error(
        &run(&[
            "visualize",
            "filters",
            "--weights",
            &s(&weights),
            "--out",
            &s(&png),
            "--image",
            &s(&digit),
            "--layer",
            "fc9",
        ]),
        &["fc9"],
    );
    assert!(line.contains("conv1, conv2"), "{line}");
    // Weights of another architecture, an unknown model, a missing file.
    assert_one_line_error(
        &run(&[
            "visualize",
            "filters",
            "--model",
            "alexnet",
            "--weights",
            &s(&weights),
            "--out",
            &s(&png),
        ]),
        &["alexnet"],
    );
    assert_one_line_error(
        &run(&[
            "visualize",
            "filters",
            "--model",
            "nonet",
            "--weights",
            &s(&weights),
            "--out",
            &s(&png),
        ]),
        &["unknown model", "lenet5"],
    );
    assert_one_line_error(
        &run(&[
            "visualize",
            "filters",
            "--weights",
            &s(&out.join("missing.safetensors")),
            "--out",
            &s(&png),
        ]),
        &["missing.safetensors"],
    );
}

#[test]
fn boundary_strip_for_the_perceptron_on_blobs() {
    let out = scratch("visualize-blobs");
    let png = out.join("blobs.png");
    let result = run_ok(&[
        "visualize",
        "boundary",
        "--dataset",
        &example("blobs.csv"),
        "--model",
        "perceptron",
        "--out",
        &s(&png),
    ]);
    assert_eq!(png_size(&png), (4 * FRAME.0, FRAME.1));
    // Linearly separable: the perceptron ends with no mistakes.
    let text = String::from_utf8_lossy(&result.stdout);
    assert!(
        text.contains("epoch 20/20: training accuracy 100.0 %"),
        "{text}"
    );
    // Adaline, 3 frames.
    run_ok(&[
        "visualize",
        "boundary",
        "--dataset",
        &example("blobs.csv"),
        "--model",
        "adaline",
        "--frames",
        "3",
        "--out",
        &s(&png),
    ]);
    assert_eq!(png_size(&png), (3 * FRAME.0, FRAME.1));
}

#[test]
fn boundary_strip_for_the_mlp_on_two_moons_and_a_gif() {
    let out = scratch("visualize-moons");
    let png = out.join("moons.png");
    let result = run_ok(&[
        "visualize",
        "boundary",
        "--dataset",
        &example("two_moons.csv"),
        "--model",
        "mlp",
        "--frames",
        "5",
        "--out",
        &s(&png),
    ]);
    assert_eq!(png_size(&png), (5 * FRAME.0, FRAME.1));
    let text = String::from_utf8_lossy(&result.stdout);
    let last: f64 = text
        .lines()
        .find(|l| l.starts_with("epoch 100/100"))
        .and_then(|l| l.rsplit(' ').nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{text}"));
    assert!(last >= 95.0, "the MLP should fit the moons: {text}");

    let gif = out.join("moons.gif");
    run_ok(&[
        "visualize",
        "boundary",
        "--dataset",
        &example("two_moons.csv"),
        "--model",
        "mlp",
        "--epochs",
        "20",
        "--gif",
        "--out",
        &s(&gif),
    ]);
    let bytes = std::fs::read(&gif).unwrap();
    assert_eq!(&bytes[..6], b"GIF89a");
    let be16 = |i: usize| u32::from(u16::from_le_bytes([bytes[i], bytes[i + 1]]));
    assert_eq!((be16(6), be16(8)), FRAME);
    // Several frames: one image descriptor (0x2C after a graphic control block) per frame.
    let frames = bytes.windows(2).filter(|w| w == b"\x00\x2c").count();
    assert!(frames >= 4, "{frames} frames");
}

#[test]
fn boundary_bad_inputs_fail_in_one_line() {
    let out = scratch("visualize-bad");
    let png = s(&out.join("x.png"));
    // Three features.
    let three = out.join("three.csv");
    std::fs::write(&three, "a,b,c,class\n1,2,3,0\n2,3,4,1\n").unwrap();
    // Three classes.
    let classes = out.join("classes.csv");
    std::fs::write(&classes, "x,y,class\n0,0,0\n1,1,1\n2,2,2\n").unwrap();
    let three = format!("csv:{}", three.display());
    let classes = format!("csv:{}", classes.display());
    let blobs = example("blobs.csv");
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (
            vec!["--dataset", &three, "--model", "perceptron", "--out", &png],
            vec!["3 features", "exactly 2"],
        ),
        (
            vec!["--dataset", &classes, "--model", "adaline", "--out", &png],
            vec!["binary", "3 classes", "mlp"],
        ),
        (
            vec!["--dataset", &blobs, "--model", "svm", "--out", &png],
            vec!["unknown model `svm`", "perceptron, adaline, mlp"],
        ),
        (
            vec!["--dataset", "digits", "--model", "mlp", "--out", &png],
            vec!["64 features"],
        ),
        (
            vec![
                "--dataset",
                &blobs,
                "--model",
                "mlp",
                "--lr",
                "-1",
                "--out",
                &png,
            ],
            vec!["--lr"],
        ),
        (
            vec![
                "--dataset",
                &blobs,
                "--model",
                "mlp",
                "--frames",
                "0",
                "--out",
                &png,
            ],
            vec!["--frames"],
        ),
        (
            vec![
                "--dataset",
                &blobs,
                "--model",
                "mlp",
                "--epochs",
                "abc",
                "--out",
                &png,
            ],
            vec!["--epochs"],
        ),
        (
            vec![
                "--dataset",
                &blobs,
                "--model",
                "mlp",
                "--gif",
                "--out",
                &png,
            ],
            vec![".gif"],
        ),
        (
            vec![
                "--dataset",
                "csv:/nonexistent/x.csv",
                "--model",
                "mlp",
                "--out",
                &png,
            ],
            vec!["x.csv"],
        ),
        (
            vec![
                "--dataset",
                &blobs,
                "--model",
                "mlp",
                "--out",
                "/nonexistent-dir/x.png",
            ],
            vec!["/nonexistent-dir/x.png"],
        ),
    ];
    for (args, needles) in cases {
        let mut full = vec!["visualize", "boundary"];
        full.extend(args);
        assert_one_line_error(&run(&full), &needles);
    }
}
