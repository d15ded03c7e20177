//! Every network against the reference state dicts: exact parameter counts (the table
//! and tests/data/torchvision_state_dicts.json, generated from PyTorch by zoo_defs.py) and
//! every key with its shape, in order. Layout only: no forward pass (see tests/forward.rs).

mod common;

use common::{layout, reference};
use ventral_models::build;
use ventral_nn::parameter_count;

/// Builds `name` with the reference's class count and checks count, keys and shapes.
fn check(name: &str, published: usize) {
    let (count, keys) = reference(name);
    assert_eq!(
        count, published,
        "{name}: the JSON disagrees with the issue's table"
    );
    let classes = if name.contains("cifar")
        || name == "lenet5"
        || name.starts_with("resnet") && count < 2_000_000
    {
        10
    } else {
        1000
    };
    // Layouts and counts depend on shapes only: skip drawing ~1.1e9 random weights.
    let mut model = ventral_nn::init::shapes_only(|| build(name, classes, 0)).unwrap();
    assert_eq!(
        parameter_count(model.as_mut()),
        count,
        "{name}: parameter count"
    );
    let got = layout(model.as_mut());
    for (i, (g, r)) in got.iter().zip(&keys).enumerate() {
        assert_eq!(g, r, "{name}: entry {i} differs");
    }
    assert_eq!(
        got.len(),
        keys.len(),
        "{name}: number of state-dict entries"
    );
}

#[test]
fn small_networks_match_the_reference() {
    check("lenet5", 61_706);
    check("googlenet", 6_624_904);
    check("vgg11_cifar", 9_231_114);
}

#[test]
fn alexnets_match_the_reference() {
    check("alexnet", 61_100_840);
    check("alexnet_paper", 60_965_224);
}

#[test]
fn vggs_match_the_reference() {
    check("vgg11", 132_863_336);
    check("vgg13", 133_047_848);
    check("vgg16", 138_357_544);
    check("vgg19", 143_667_240);
}

#[test]
fn vggs_with_batch_norm_match_the_reference() {
    check("vgg11_bn", 132_868_840);
    check("vgg13_bn", 133_053_736);
    check("vgg16_bn", 138_365_992);
    check("vgg19_bn", 143_678_248);
}

#[test]
fn imagenet_resnets_match_the_reference() {
    check("resnet18", 11_689_512);
    check("resnet34", 21_797_672);
    check("resnet50", 25_557_032);
    check("resnet101", 44_549_160);
    check("resnet152", 60_192_808);
}

#[test]
fn cifar_resnets_match_the_reference() {
    // The issue's ≈ 0.27 M / 0.46 M / 0.66 M / 0.85 M / 1.7 M, exactly as PyTorch counts them.
    check("resnet20", 269_722);
    check("resnet32", 464_154);
    check("resnet44", 658_586);
    check("resnet56", 853_018);
    check("resnet110", 1_727_962);
}

#[test]
fn lenet5_paper_has_sixty_thousand_trainable_parameters() {
    // C1 6·26 + S2 6·2 + C3 (60·25 + 16) + S4 16·2 + C5 120·401 + F6 84·121 = 60,000
    // (LeCun et al. 1998 §II.B); the RBF codes are a fixed buffer, not counted.
    let mut model = build("lenet5_paper", 10, 0).unwrap();
    assert_eq!(
        parameter_count(model.as_mut()),
        156 + 12 + 1516 + 32 + 48_120 + 10_164
    );
    assert_eq!(parameter_count(model.as_mut()), 60_000);
    let keys: Vec<String> = layout(model.as_mut()).into_iter().map(|(k, _)| k).collect();
    assert_eq!(
        keys,
        [
            "c1.weight",
            "c1.bias",
            "s2.weight",
            "s2.bias",
            "c3.weight",
            "c3.bias",
            "s4.weight",
            "s4.bias",
            "c5.weight",
            "c5.bias",
            "f6.weight",
            "f6.bias",
            "output.weight"
        ]
    );
}

#[test]
fn googlenet_aux_heads_add_torchvisions_keys() {
    use ventral_models::{AuxLogits, GoogLeNet};
    let mut model = GoogLeNet::new(1000, AuxLogits::With, 0).unwrap();
    let keys: Vec<String> = layout(&mut model).into_iter().map(|(k, _)| k).collect();
    assert!(keys.contains(&"aux1.conv.conv.weight".to_string()));
    assert!(keys.contains(&"aux2.fc2.bias".to_string()));
    // Each head: BasicConv2d(in, 128) + Linear(2048, 1024) + Linear(1024, 1000).
    let head = |cin: usize| cin * 128 + 2 * 128 + 2048 * 1024 + 1024 + 1024 * 1000 + 1000;
    assert_eq!(
        parameter_count(&mut model),
        6_624_904 + head(512) + head(528)
    );
}

#[test]
fn mlp_and_linear_counts() {
    // 784 → 100 → 10: 784·100 + 100 + 100·10 + 10.
    let mut mlp = build("mlp", 10, 0).unwrap();
    assert_eq!(parameter_count(mlp.as_mut()), 79_510);
    let mut three = ventral_models::Mlp::three_layer(784, (300, 100), 10, 0).unwrap();
    assert_eq!(
        parameter_count(&mut three),
        784 * 300 + 300 + 300 * 100 + 100 + 100 * 10 + 10
    );
    let mut linear = build("linear", 10, 0).unwrap();
    assert_eq!(parameter_count(linear.as_mut()), 7_850);
    assert_eq!(
        layout(linear.as_mut()),
        [("weight".into(), vec![10, 784]), ("bias".into(), vec![10])]
    );
}
