//! `Trainer::with_clip_grad_norm`: a step moves the weights along the same direction as an
//! unclipped step, by plain SGD's learning rate times the bound.

use ventral_nn::layers::Linear;
use ventral_nn::optim::{Sgd, SgdConfig};
use ventral_nn::{Init, Tensor, named_parameters};
use ventral_train::{StepData, Trainer};

/// The change of every weight over one plain-SGD step (learning rate 0.1), clipped or not.
fn step_delta(clip: Option<f32>) -> Vec<f64> {
    let model = Linear::new(4, 3, true, &mut Init::new(9)).unwrap();
    let sgd = Sgd::new(SgdConfig::new(0.1)).unwrap();
    let mut trainer = Trainer::new(Box::new(model), Box::new(sgd), 3);
    if let Some(max_norm) = clip {
        trainer = trainer.with_clip_grad_norm(max_norm);
    }
    let weights = |t: &mut Trainer| -> Vec<f64> {
        named_parameters(t.model())
            .iter()
            .flat_map(|(_, p)| p.to_vec())
            .map(f64::from)
            .collect()
    };
    let before = weights(&mut trainer);
    let x = Tensor::from_vec((0..24).map(|i| (i % 7) as f32 - 3.0).collect(), [6, 4]).unwrap();
    let labels = [0, 1, 2, 0, 1, 2];
    trainer.step(StepData::new(&x, &labels)).unwrap();
    let after = weights(&mut trainer);
    before.iter().zip(&after).map(|(b, a)| a - b).collect()
}

fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

#[test]
fn a_clipped_step_keeps_the_direction_and_moves_lr_times_the_bound() {
    let free = step_delta(None);
    let clipped = step_delta(Some(1e-3));
    // The unclipped gradient's norm is well above the bound, so the clip acts.
    assert!(norm(&free) / 0.1 > 1e-2, "{}", norm(&free));
    assert!(
        (norm(&clipped) - 0.1 * 1e-3).abs() < 1e-6,
        "{}",
        norm(&clipped)
    );
    let ratio = norm(&clipped) / norm(&free);
    for (c, f) in clipped.iter().zip(&free) {
        assert!((c - f * ratio).abs() < 1e-7, "{c} vs {f} x {ratio}");
    }
    // A bound above the norm changes nothing.
    assert_eq!(step_delta(Some(1e6)), free);
}
