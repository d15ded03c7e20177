//! Gradient accumulation: the gradients of a step's micro-batches summed parameter by
//! parameter (see [`Trainer::step_accumulated`](crate::Trainer::step_accumulated)).

use ventral_nn::{Gradients, Module, Slot, Tensor};

/// `sum + more` for every parameter of `model` that has a gradient in either (a parameter
/// with a gradient in one only keeps that one), added element by element in f32.
///
/// # Errors
/// If a gradient's shape differs from its parameter's (never for gradients of `model`).
pub(crate) fn add_gradients(
    model: &mut dyn Module,
    mut sum: Gradients,
    more: &Gradients,
) -> ventral_nn::Result<Gradients> {
    let mut failure = None;
    model.visit("", &mut |_, slot| {
        let Slot::Parameter(p) = slot else {
            return;
        };
        let Some(extra) = more.get(p) else {
            return;
        };
        let total = match sum.get(p) {
            Some(acc) => {
                let mut values = acc.to_vec();
                for (v, e) in values.iter_mut().zip(extra.to_vec()) {
                    *v += e;
                }
                Tensor::from_vec(values, p.shape().clone())
            }
            None => Ok(extra.clone()),
        };
        if let Err(e) = total.and_then(|t| sum.insert(p, t)) {
            failure.get_or_insert(e);
        }
    });
    match failure {
        Some(e) => Err(e.into()),
        None => Ok(sum),
    }
}
