//! Output shapes at batch 2: 224x224 for the ImageNet networks, 227x227 for the paper's
//! AlexNet, 32x32 for the CIFAR networks, 28x28 for LeNet-5.
//!
//! A 224x224 forward of a large network costs seconds, so only a representative subset runs
//! here — alexnet, vgg11, resnet18, resnet50, googlenet (one of each architecture and block
//! kind); vgg13/16/19, the `_bn` variants, resnet34/101/152 share their code and are checked
//! by layout and parameter count only (tests/layout.rs).

use ventral_models::build;
use ventral_nn::{Mode, Tensor, no_grad};

fn output_shape(name: &str, classes: usize, input: [usize; 3]) -> Vec<usize> {
    let mut model = build(name, classes, 0).unwrap();
    model.set_mode(Mode::Eval);
    let x = Tensor::rand_normal(vec![2, input[0], input[1], input[2]], 0.0, 1.0, 3).unwrap();
    let y = no_grad(|| model.forward(&x)).unwrap();
    assert!(
        y.to_vec().iter().all(|v| v.is_finite()),
        "{name}: non-finite output"
    );
    y.dims().to_vec()
}

#[test]
fn alexnet_and_vgg11_at_224() {
    assert_eq!(output_shape("alexnet", 1000, [3, 224, 224]), [2, 1000]);
    assert_eq!(output_shape("vgg11", 1000, [3, 224, 224]), [2, 1000]);
}

#[test]
fn alexnet_paper_at_227() {
    assert_eq!(
        output_shape("alexnet_paper", 1000, [3, 227, 227]),
        [2, 1000]
    );
}

#[test]
fn resnets_at_224() {
    assert_eq!(output_shape("resnet18", 1000, [3, 224, 224]), [2, 1000]);
    assert_eq!(output_shape("resnet50", 1000, [3, 224, 224]), [2, 1000]);
}

#[test]
fn googlenet_at_224() {
    assert_eq!(output_shape("googlenet", 1000, [3, 224, 224]), [2, 1000]);
}

#[test]
fn cifar_networks_at_32() {
    for name in [
        "resnet20",
        "resnet32",
        "resnet44",
        "resnet56",
        "resnet110",
        "vgg11_cifar",
    ] {
        assert_eq!(output_shape(name, 10, [3, 32, 32]), [2, 10], "{name}");
    }
}

#[test]
fn lenets_and_fully_connected_at_28() {
    assert_eq!(output_shape("lenet5", 10, [1, 28, 28]), [2, 10]);
    assert_eq!(output_shape("lenet5_paper", 10, [1, 28, 28]), [2, 10]);
    assert_eq!(output_shape("lenet5_paper", 10, [1, 32, 32]), [2, 10]);
    assert_eq!(output_shape("mlp", 10, [1, 28, 28]), [2, 10]);
    assert_eq!(output_shape("linear", 10, [1, 28, 28]), [2, 10]);
}

#[test]
fn googlenet_aux_heads_on_request() {
    use ventral_models::{AuxLogits, GoogLeNet};
    let model = GoogLeNet::new(10, AuxLogits::With, 0).unwrap();
    // 96x96 keeps this cheap: 14x14 at the heads becomes 6x6, which the 4x4 adaptive pool takes.
    let x = Tensor::rand_normal(vec![2, 3, 96, 96], 0.0, 1.0, 3).unwrap();
    let (y, aux) = no_grad(|| model.forward_with_aux(&x)).unwrap();
    let (a1, a2) = aux.unwrap();
    assert_eq!(
        (y.dims(), a1.dims(), a2.dims()),
        (&[2, 10][..], &[2, 10][..], &[2, 10][..])
    );
}

#[test]
fn errors_name_the_layer_path() {
    let model = build("resnet18", 1000, 0).unwrap();
    let err = no_grad(|| model.forward(&Tensor::zeros(vec![1, 1, 64, 64]).unwrap()))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("conv1") && err.contains("[1, 1, 64, 64]"),
        "{err}"
    );
    let vgg = build("vgg11_cifar", 10, 0).unwrap();
    let err = no_grad(|| {
        vgg.forward(
            &Tensor::zeros(vec![1, 3, 32, 32])
                .unwrap()
                .narrow(1, 0, 2)
                .unwrap(),
        )
    })
    .unwrap_err()
    .to_string();
    assert!(err.contains("features.0"), "{err}");
}
