//! `predict`: inference in eval mode, without a graph, whatever mode the model was left in.

use ventral_nn::layers::{Dropout, Linear, Sequential};
use ventral_nn::{Init, Mode, Module, Tensor, modes, no_grad};
use ventral_train::predict;

#[test]
fn predict_switches_dropout_off_and_records_no_graph() {
    let mut init = Init::new(3);
    let mut model = Sequential::new()
        .push(Dropout::new(0.5, 11).unwrap())
        .push(Linear::new(8, 4, true, &mut init).unwrap());
    let x = Tensor::from_vec((0..16).map(|i| i as f32 / 7.0 - 1.0).collect(), [2, 8]).unwrap();

    // Left in training mode, as after a training step: a plain forward drops inputs.
    model.set_mode(Mode::Train);
    let trained = model.forward(&x).unwrap().to_vec();

    let y = predict(&mut model, &x).unwrap();
    assert!(!y.requires_grad(), "predict recorded a graph");
    assert!(
        modes(&mut model, "").iter().all(|(_, m)| *m == Mode::Eval),
        "predict left a layer in training mode"
    );
    model.set_mode(Mode::Eval);
    let eval = no_grad(|| model.forward(&x)).unwrap().to_vec();
    assert_eq!(y.to_vec(), eval);
    assert_ne!(trained, eval, "dropout did nothing in training mode");
}
