//! `summary()` against hand-computed tables.

use ventral_models::{LeNet5, build, summary};
use ventral_nn::parameter_count;

#[test]
fn lenet5_table_is_hand_checkable() {
    let mut model = LeNet5::new(10, 0).unwrap();
    let s = summary(&mut model, &[1, 28, 28]).unwrap();
    let rows: Vec<(&str, &[usize], usize, u64)> = s
        .rows
        .iter()
        .map(|r| (r.path.as_str(), r.output.as_slice(), r.parameters, r.macs))
        .collect();
    // MACs: conv = OH·OW·O · C·KH·KW, linear = out · in.
    assert_eq!(
        rows,
        [
            ("conv1", &[6, 28, 28][..], 156, 28 * 28 * 6 * 25),
            ("conv2", &[16, 10, 10][..], 2_416, 10 * 10 * 16 * 6 * 25),
            ("fc1", &[120][..], 48_120, 120 * 400),
            ("fc2", &[84][..], 10_164, 84 * 120),
            ("fc3", &[10][..], 850, 10 * 84),
        ]
    );
    assert_eq!(s.parameters, 61_706);
    assert_eq!(s.macs, 117_600 + 240_000 + 48_000 + 10_080 + 840);
    assert_eq!(s.output, [10]);
    let text = s.to_string();
    assert!(text.contains("conv2") && text.contains("61,706"), "{text}");
}

#[test]
fn resnet18_totals_match_published_figures() {
    let mut model = build("resnet18", 1000, 0).unwrap();
    let s = summary(model.as_mut(), &[3, 224, 224]).unwrap();
    assert_eq!(s.parameters, parameter_count(model.as_mut()));
    assert_eq!(
        s.rows.iter().map(|r| r.parameters).sum::<usize>(),
        11_689_512
    );
    // torchvision lists ResNet-18 at 1.81 GFLOPS, counting a multiply-add once.
    assert!((1.80e9..1.83e9).contains(&(s.macs as f64)), "{}", s.macs);
    let downsample = s
        .rows
        .iter()
        .find(|r| r.path == "layer2.0.downsample.0")
        .unwrap();
    assert_eq!(downsample.output, [128, 28, 28]);
    assert_eq!(downsample.macs, 28 * 28 * 128 * 64);
    // Any input size: at 64x64 the last stage is 2x2.
    let small = summary(model.as_mut(), &[3, 64, 64]).unwrap();
    let last = small
        .rows
        .iter()
        .find(|r| r.path == "layer4.1.conv2")
        .unwrap();
    assert_eq!(last.output, [512, 2, 2]);
}

#[test]
fn lenet5_paper_reports_its_partial_connections() {
    let mut model = build("lenet5_paper", 10, 0).unwrap();
    let s = summary(model.as_mut(), &[1, 32, 32]).unwrap();
    let c3 = s.rows.iter().find(|r| r.path == "c3").unwrap();
    // 60 kernels of 25 taps at 10x10 positions (the paper's 151,600 connections less the
    // 1,600 bias connections).
    assert_eq!((c3.parameters, c3.macs), (1_516, 150_000));
    assert_eq!(s.parameters, 60_000);
}

#[test]
fn googlenet_macs_match_torchvision() {
    // torchvision lists GoogLeNet at 1.50 GFLOPS (multiply-adds counted once).
    let mut model = build("googlenet", 1000, 0).unwrap();
    let s = summary(model.as_mut(), &[3, 224, 224]).unwrap();
    assert!((1.49e9..1.51e9).contains(&(s.macs as f64)), "{}", s.macs);
    assert_eq!(s.parameters, 6_624_904);
}
