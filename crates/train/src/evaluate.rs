//! Accuracy and loss of a model over a dataset, without recording a graph.

use ventral_nn::data::{DataLoader, Dataset};
use ventral_nn::metrics::Confusion;
use ventral_nn::{Mode, Module, Tensor, no_grad};

use crate::error::Result;
use crate::loss::Loss;

/// Samples per evaluation batch: small enough that a batch's activations (LeNet-5's first
/// convolution makes 19 KB of them per image) stay far below the dataset's own memory.
pub const EVAL_BATCH: usize = 100;

/// What an evaluation pass measured.
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// Mean loss per sample.
    pub loss: f64,
    /// Fraction of samples whose highest logit is the label.
    pub accuracy: f64,
    /// `[true][predicted]` counts, sparse: memory grows with the classes, not their square.
    pub confusion: Confusion,
}

/// Index of the largest value of each row of a `[rows, cols]` buffer (first on ties).
pub fn argmax_rows(values: &[f32], cols: usize) -> Vec<usize> {
    values
        .chunks_exact(cols)
        .map(|row| {
            row.iter()
                .enumerate()
                .fold((0, f32::NEG_INFINITY), |best, (i, &v)| {
                    if v > best.1 { (i, v) } else { best }
                })
                .0
        })
        .collect()
}

/// The model's output for one batch `x`, in eval mode (dropout off, batch norm on its running
/// statistics) and without recording a graph: inference as `ventral forward` and `ventral
/// predict` run it. The model is left in eval mode.
///
/// # Errors
/// If the model rejects the input.
pub fn predict(model: &mut dyn Module, x: &Tensor) -> Result<Tensor> {
    model.set_mode(Mode::Eval);
    Ok(no_grad(|| model.forward(x))?)
}

/// Runs `model` in eval mode over every batch of `loader` (then back to training mode).
///
/// # Errors
/// If the model rejects the input.
pub fn evaluate<D: Dataset + Send + Sync + 'static>(
    model: &mut dyn Module,
    loader: &DataLoader<D>,
    loss: Loss,
    classes: usize,
) -> Result<Evaluation> {
    model.set_mode(Mode::Eval);
    let (mut total_loss, mut correct, mut seen) = (0.0f64, 0u64, 0u64);
    let mut confusion = Confusion::new(classes);
    let result = no_grad(|| -> Result<()> {
        for batch in loader.epoch(0) {
            let n = batch.labels.len();
            let x = Tensor::from_vec(batch.inputs, batch.shape).map_err(ventral_nn::Error::from)?;
            let logits = model.forward(&x)?;
            total_loss += loss
                .of(&logits, &batch.labels, classes)?
                .item()
                .map_err(ventral_nn::Error::from)? as f64
                * n as f64;
            for (&label, predicted) in batch
                .labels
                .iter()
                .zip(argmax_rows(&logits.to_vec(), classes))
            {
                correct += (label == predicted) as u64;
                confusion.add(label, predicted);
            }
            seen += n as u64;
        }
        Ok(())
    });
    model.set_mode(Mode::Train);
    result?;
    Ok(Evaluation {
        loss: total_loss / seen.max(1) as f64,
        accuracy: correct as f64 / seen.max(1) as f64,
        confusion,
    })
}
