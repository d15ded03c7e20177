//! A `Frozen` model in the `Trainer`: ResNet-20 with its stem and first stage frozen keeps
//! them bit for bit (weights, batch-norm statistics and counters) through training steps,
//! evaluation and inference, under SGD with momentum and weight decay; the rest trains.

use ventral_nn::optim::{Sgd, SgdConfig};
use ventral_nn::{Frozen, Mode, Tensor, modes, state_dict, under_prefix};
use ventral_train::{StepData, Trainer};

#[test]
fn the_trainer_never_moves_frozen_parameters_or_statistics() {
    let prefixes = ["conv1", "bn1", "layer1"];
    let model = Frozen::new(ventral_models::build("resnet20", 10, 0).unwrap(), &prefixes).unwrap();
    let sgd = Sgd::new(SgdConfig {
        momentum: 0.9,
        weight_decay: 5e-4,
        ..SgdConfig::new(0.1)
    })
    .unwrap();
    let mut trainer = Trainer::new(Box::new(model), Box::new(sgd), 10);
    trainer.set_total_steps(3);
    let before = state_dict(trainer.model());
    let x = Tensor::rand_normal([4, 3, 32, 32], 0.0, 1.0, 5).unwrap();
    let labels = [1, 2, 3, 4];
    for _ in 0..3 {
        trainer.model().set_mode(Mode::Train);
        trainer.step(StepData::new(&x, &labels)).unwrap();
        trainer.infer(&x).unwrap();
    }
    let after = state_dict(trainer.model());
    let frozen = |k: &str| prefixes.iter().any(|p| under_prefix(k, p));
    let (mut kept, mut moved) = (0, 0);
    for (key, record) in before.iter() {
        if frozen(key) {
            assert_eq!(after.get(key), Some(record), "{key} moved");
            kept += 1;
        } else if key.ends_with("weight") {
            assert_ne!(after.get(key), Some(record), "{key} did not train");
            moved += 1;
        }
    }
    // conv1, bn1 (5 entries), layer1's three blocks of conv, bn, conv, bn.
    assert_eq!(kept, 1 + 5 + 3 * (1 + 5 + 1 + 5));
    assert!(moved > 10, "{moved}");
    // Back in training mode, the frozen batch norms are still in eval mode, the others not.
    trainer.model().set_mode(Mode::Train);
    for (path, mode) in modes(trainer.model(), "") {
        let want = if frozen(&path) {
            Mode::Eval
        } else {
            Mode::Train
        };
        assert_eq!(mode, want, "{path}");
    }
}
