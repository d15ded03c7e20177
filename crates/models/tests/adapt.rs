//! Adapting zoo models (`ModelOptions`: `--in-channels`, `--num-classes`): for every model
//! trained by autograd, the stem's first layer takes the asked channels, the head gives the
//! asked classes, and every other state-dict entry keeps its name and shape.

mod common;

use common::layout;
use ventral_models::{ModelOptions, Training, build, build_with, models};
use ventral_nn::Tensor;
use ventral_nn::init::shapes_only;

/// The stem's key, its shape for `C` channels, and the head's keys.
type StemAndHead = (
    &'static str,
    fn(usize) -> Vec<usize>,
    &'static [&'static str],
);

/// The stem's weight key with its shape as a function of the input channels, and the head's
/// keys, from torchvision's (and the papers') layer names.
fn stem_and_head(name: &str) -> StemAndHead {
    match name {
        // The only layer is both stem and head: [classes, C·28·28].
        "linear" => ("weight", |c| vec![7, c * 28 * 28], &["weight", "bias"]),
        "mlp" => (
            "fc1.weight",
            |c| vec![100, c * 28 * 28],
            &["fc2.weight", "fc2.bias"],
        ),
        "lenet5" => (
            "conv1.weight",
            |c| vec![6, c, 5, 5],
            &["fc3.weight", "fc3.bias"],
        ),
        // The RBF codes are the head (a buffer: one code per class).
        "lenet5_paper" => ("c1.weight", |c| vec![6, c, 5, 5], &["output.weight"]),
        "alexnet" => (
            "features.0.weight",
            |c| vec![64, c, 11, 11],
            &["classifier.6.weight", "classifier.6.bias"],
        ),
        "alexnet_paper" => (
            "features.0.weight",
            |c| vec![96, c, 11, 11],
            &["classifier.6.weight", "classifier.6.bias"],
        ),
        "vgg11_cifar" => (
            "features.0.weight",
            |c| vec![64, c, 3, 3],
            &["classifier.weight", "classifier.bias"],
        ),
        "googlenet" => (
            "conv1.conv.weight",
            |c| vec![64, c, 7, 7],
            &["fc.weight", "fc.bias"],
        ),
        "resnet20" | "resnet32" | "resnet44" | "resnet56" | "resnet110" => (
            "conv1.weight",
            |c| vec![16, c, 3, 3],
            &["fc.weight", "fc.bias"],
        ),
        "resnet18" | "resnet34" | "resnet50" | "resnet101" | "resnet152" => (
            "conv1.weight",
            |c| vec![64, c, 7, 7],
            &["fc.weight", "fc.bias"],
        ),
        vgg if vgg.starts_with("vgg") => (
            "features.0.weight",
            |c| vec![64, c, 3, 3],
            &["classifier.6.weight", "classifier.6.bias"],
        ),
        other => panic!("no stem and head listed for {other}: add it here"),
    }
}

#[test]
fn every_zoo_model_adapts_its_stem_and_head_and_nothing_else() {
    const CLASSES: usize = 7;
    for info in models().iter().filter(|m| m.training == Training::Autograd) {
        let name = info.name;
        let (stem, stem_shape, head) = stem_and_head(name);
        let original = layout(
            shapes_only(|| build(name, info.default_classes, 0))
                .unwrap()
                .as_mut(),
        );
        for channels in [1, 2, 5] {
            let options = ModelOptions::new(CLASSES)
                .in_channels(channels)
                .input([1, 28, 28]);
            let adapted = layout(
                shapes_only(|| build_with(name, &options, 0))
                    .unwrap()
                    .as_mut(),
            );
            let keys =
                |l: &[(String, Vec<usize>)]| l.iter().map(|e| e.0.clone()).collect::<Vec<_>>();
            assert_eq!(keys(&adapted), keys(&original), "{name}: keys");
            for ((key, got), (_, was)) in adapted.iter().zip(&original) {
                let want = if key == stem {
                    stem_shape(channels)
                } else if head.contains(&key.as_str()) {
                    let mut s = was.clone();
                    s[0] = CLASSES;
                    s
                } else {
                    was.clone()
                };
                assert_eq!(got, &want, "{name} with {channels} channels: `{key}`");
            }
            assert!(
                adapted.iter().any(|(k, _)| k == stem),
                "{name}: no `{stem}`"
            );
            for h in head {
                assert!(adapted.iter().any(|(k, _)| k == h), "{name}: no `{h}`");
            }
        }
    }
}

#[test]
fn the_zoo_channels_build_the_same_model_bit_for_bit() {
    for (name, classes) in [("lenet5", 10), ("resnet20", 10), ("mlp", 10)] {
        let a = ventral_nn::state_dict(build(name, classes, 3).unwrap().as_mut());
        let zoo_channels =
            ModelOptions::new(classes).in_channels(if name == "resnet20" { 3 } else { 1 });
        let b = ventral_nn::state_dict(build_with(name, &zoo_channels, 3).unwrap().as_mut());
        assert_eq!(a, b, "{name}");
    }
}

#[test]
fn resnet20_with_one_channel_takes_fashion_mnist_sized_images() {
    let mut net = build_with("resnet20", &ModelOptions::new(10).in_channels(1), 0).unwrap();
    net.set_mode(ventral_nn::Mode::Eval);
    // 28 → 14 → 7 through the strided stages, then global average pooling.
    let out = net
        .forward(&Tensor::zeros([2, 1, 28, 28]).unwrap())
        .unwrap();
    assert_eq!(out.dims(), [2, 10]);
    // Three channels no longer fit: the stem names the shapes.
    let err = net
        .forward(&Tensor::zeros([2, 3, 28, 28]).unwrap())
        .unwrap_err();
    assert!(err.to_string().contains("conv1"), "{err}");
}

#[test]
fn zero_classes_or_channels_are_refused_by_name() {
    let e = build_with("resnet20", &ModelOptions::new(0), 0)
        .err()
        .unwrap();
    assert_eq!(
        e.to_string(),
        "model: `resnet20` needs at least one class, got 0"
    );
    let e = build_with("lenet5", &ModelOptions::new(10).in_channels(0), 0)
        .err()
        .unwrap();
    assert_eq!(
        e.to_string(),
        "model: `lenet5` needs at least one input channel, got 0"
    );
}
