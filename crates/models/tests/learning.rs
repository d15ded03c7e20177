//! A short end-to-end learning run per family on tiny data: the loss must fall. Inputs are
//! random tensors with random labels (memorisation), small enough to run in about a second.

mod common;

use common::{assert_falls, train};
use ventral_models::{
    AlexNet, AuxLogits, Block, CifarResNet, GoogLeNet, LeNet5Paper, LinearClassifier, Mlp, ResNet,
    Vgg,
};
use ventral_nn::data::{Split, load};
use ventral_nn::optim::{Sgd, SgdConfig};
use ventral_nn::{Mode, Module, Optimizer, Tensor, no_grad};

fn batch(n: usize, shape: [usize; 3], seed: u64) -> (Tensor, Vec<usize>) {
    let x = Tensor::rand_normal(vec![n, shape[0], shape[1], shape[2]], 0.0, 1.0, seed).unwrap();
    let labels = (0..n).map(|i| (i * 7 + 3) % 10).collect();
    (x, labels)
}

#[test]
fn mlp_learns() {
    let (x, y) = batch(16, [1, 8, 8], 1);
    let mut net = Mlp::three_layer(64, (32, 32), 10, 0).unwrap();
    assert_falls(&train(&mut net, &x, &y, 0.05, 40), 0.3);
}

#[test]
fn linear_svm_learns_the_digits() {
    // The lecture's linear classifier: hinge loss + λ‖W‖², full-batch gradient descent.
    let data = load(
        "digits",
        std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/digits")),
        Split::Train,
    )
    .unwrap();
    let pixels = data.to_f32();
    let n = data.labels().len();
    let x = Tensor::from_vec(pixels, [n, 64]).unwrap();
    let (train_x, test_x) = (
        x.narrow(0, 0, 1500).unwrap(),
        x.narrow(0, 1500, n - 1500).unwrap(),
    );
    let (train_y, test_y) = data.labels().split_at(1500);
    let mut model = LinearClassifier::new(64, 10, 0).unwrap();
    let mut opt = Sgd::new(SgdConfig {
        momentum: 0.9,
        ..SgdConfig::new(0.1)
    })
    .unwrap();
    let mut losses = Vec::new();
    for _ in 0..200 {
        let loss = model.svm_loss(&train_x, train_y, 1e-3).unwrap();
        losses.push(loss.item().unwrap());
        let grads = loss.backward().unwrap();
        opt.step(&mut model, &grads).unwrap();
    }
    assert_falls(&losses, 0.2);
    let scores = no_grad(|| model.forward(&test_x)).unwrap();
    let pred = scores.argmax(1).unwrap();
    let acc = pred.iter().zip(test_y).filter(|(p, y)| p == y).count() as f32 / test_y.len() as f32;
    assert!(acc > 0.9, "linear SVM on held-out digits: {acc}");
}

#[test]
fn lenet5_paper_learns() {
    let (x, y) = batch(8, [1, 32, 32], 2);
    let mut net = LeNet5Paper::new(10, 0).unwrap();
    assert_falls(&train(&mut net, &x, &y, 0.01, 30), 0.5);
}

#[test]
fn alexnet_learns() {
    // 64x64 inputs: the adaptive pool brings any size to 6x6. Eval mode turns dropout off so
    // the losses of the fixed batch are comparable. Only 5 steps: with 58 M parameters in
    // the classifier a step costs about two seconds (backward and optimizer), so this checks
    // the direction, not the depth, of the fall.
    let (x, y) = batch(4, [3, 64, 64], 3);
    let mut net = AlexNet::new(10, 0).unwrap();
    net.set_mode(Mode::Eval);
    let losses = train(&mut net, &x, &y, 0.05, 5);
    assert!(losses.windows(2).all(|w| w[1] < w[0]), "{losses:?}");
    assert!(losses[4] < 0.95 * losses[0], "{losses:?}");
}

#[test]
fn vgg_learns() {
    let (x, y) = batch(4, [3, 32, 32], 4);
    let mut net = Vgg::cifar11(10, 0).unwrap();
    assert_falls(&train(&mut net, &x, &y, 0.01, 12), 0.5);
}

#[test]
fn resnets_learn() {
    let (x, y) = batch(4, [3, 16, 16], 5);
    let mut cifar = CifarResNet::new(20, 10, 0).unwrap();
    assert_falls(&train(&mut cifar, &x, &y, 0.05, 15), 0.5);

    let (x, y) = batch(4, [3, 32, 32], 6);
    let mut basic = ResNet::with_blocks(Block::Basic, [1, 1, 1, 1], 10, 0).unwrap();
    assert_falls(&train(&mut basic, &x, &y, 0.05, 15), 0.5);
    let mut bottleneck = ResNet::with_blocks(Block::Bottleneck, [1, 1, 1, 1], 10, 0).unwrap();
    assert_falls(&train(&mut bottleneck, &x, &y, 0.05, 15), 0.5);
}

#[test]
fn googlenet_learns() {
    // 64x64: the stem and pools take it to 2x2 before the global pool. Dropout is on (train
    // mode, for the batch norms), so compare the tail's mean.
    let (x, y) = batch(4, [3, 64, 64], 7);
    let mut net = GoogLeNet::new(10, AuxLogits::Without, 0).unwrap();
    assert_falls(&train(&mut net, &x, &y, 0.05, 15), 0.5);
}
