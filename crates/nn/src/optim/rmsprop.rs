//! RMSprop (Hinton's lecture 6e), with PyTorch's momentum, centring and weight decay.

use ventral_autograd::Gradients;

use super::{
    Optimizer, buffers_from_state, buffers_to_state, check_non_negative, check_state,
    for_each_parameter, step_to_state,
};
use crate::checkpoint::StateDict;
use crate::error::{Error, Result};
use crate::module::Module;

/// Hyper-parameters of [`RmsProp`], PyTorch's defaults apart from the learning rate
/// (`alpha = 0.99`, `eps = 1e-8`, no momentum, not centred, no weight decay).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RmsPropConfig {
    /// Step size.
    pub lr: f32,
    /// Smoothing constant α of the running average of squared gradients.
    pub alpha: f32,
    /// Added to the denominator for stability (after the square root, as PyTorch).
    pub eps: f32,
    /// L2 penalty λ added to the gradient.
    pub weight_decay: f32,
    /// Momentum factor μ (0 for none).
    pub momentum: f32,
    /// Normalise by the estimated variance `E[g²] − E[g]²` instead of `E[g²]`.
    pub centered: bool,
}

impl RmsPropConfig {
    /// RMSprop at `lr` with PyTorch's other defaults.
    pub fn new(lr: f32) -> Self {
        Self {
            lr,
            alpha: 0.99,
            eps: 1e-8,
            weight_decay: 0.0,
            momentum: 0.0,
            centered: false,
        }
    }
}

/// PyTorch's `torch.optim.RMSprop`. For each parameter `p` with gradient `g`:
///
/// ```text
/// g ← g + λ p                                  (weight decay)
/// v ← α v + (1 − α) g²                         (v starts at 0)
/// ṽ ← v − ḡ²,  with ḡ ← α ḡ + (1 − α) g       (centred; else ṽ = v)
/// b ← μ b + g / (√ṽ + ε),  p ← p − lr · b      (momentum; b starts at 0)
/// p ← p − lr · g / (√ṽ + ε)                    (no momentum)
/// ```
///
/// State-dict entries, per parameter index `i`: `square_avg.i`, `momentum_buffer.i` (with
/// momentum), `grad_avg.i` (centred), plus `step`.
///
/// ```
/// use ventral_nn::optim::{RmsProp, RmsPropConfig};
///
/// let opt = RmsProp::new(RmsPropConfig { momentum: 0.9, ..RmsPropConfig::new(0.01) })?;
/// # Ok::<(), ventral_nn::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct RmsProp {
    config: RmsPropConfig,
    square_avg: Vec<Option<Vec<f32>>>,
    momentum: Vec<Option<Vec<f32>>>,
    grad_avg: Vec<Option<Vec<f32>>>,
    step: u64,
}

impl RmsProp {
    /// An optimizer with `config`.
    ///
    /// # Errors
    /// [`Error::Config`] for a negative or non-finite setting or `alpha` outside `[0, 1]`.
    pub fn new(config: RmsPropConfig) -> Result<Self> {
        check_non_negative("learning rate", config.lr)?;
        check_non_negative("eps", config.eps)?;
        check_non_negative("weight decay", config.weight_decay)?;
        check_non_negative("momentum", config.momentum)?;
        if !(0.0..=1.0).contains(&config.alpha) {
            return Err(Error::config(
                "RMSprop",
                format!("alpha must be in [0, 1], got {}", config.alpha),
            ));
        }
        Ok(Self {
            config,
            square_avg: Vec::new(),
            momentum: Vec::new(),
            grad_avg: Vec::new(),
            step: 0,
        })
    }
}

/// The buffer at `i` (zeros of `len` on first use).
fn slot(buffers: &mut Vec<Option<Vec<f32>>>, i: usize, len: usize) -> &mut Vec<f32> {
    if buffers.len() <= i {
        buffers.resize(i + 1, None);
    }
    buffers[i].get_or_insert_with(|| vec![0.0; len])
}

impl Optimizer for RmsProp {
    fn step(&mut self, module: &mut dyn Module, grads: &Gradients) -> Result<()> {
        let c = self.config;
        self.step += 1;
        let (sq, mom, avg) = (&mut self.square_avg, &mut self.momentum, &mut self.grad_avg);
        for_each_parameter(module, grads, |i, p, g| {
            let mut g = g.to_vec();
            if c.weight_decay != 0.0 {
                for (g, w) in g.iter_mut().zip(p.to_vec()) {
                    *g += c.weight_decay * w;
                }
            }
            let v = slot(sq, i, g.len());
            for (v, g) in v.iter_mut().zip(&g) {
                *v = c.alpha * *v + (1.0 - c.alpha) * g * g;
            }
            // The denominator √ṽ + ε.
            let mut denom: Vec<f32> = v.clone();
            if c.centered {
                let a = slot(avg, i, g.len());
                for ((a, g), d) in a.iter_mut().zip(&g).zip(denom.iter_mut()) {
                    *a = c.alpha * *a + (1.0 - c.alpha) * g;
                    *d -= *a * *a;
                }
            }
            for d in &mut denom {
                *d = d.sqrt() + c.eps;
            }
            let step: Vec<f32> = if c.momentum > 0.0 {
                let b = slot(mom, i, g.len());
                for ((b, g), d) in b.iter_mut().zip(&g).zip(&denom) {
                    *b = c.momentum * *b + g / d;
                }
                b.clone()
            } else {
                g.iter().zip(&denom).map(|(g, d)| g / d).collect()
            };
            p.update(|w| {
                for (w, s) in w.iter_mut().zip(&step) {
                    *w -= c.lr * s;
                }
            })?;
            Ok(())
        })
    }

    fn learning_rate(&self) -> f32 {
        self.config.lr
    }

    fn set_learning_rate(&mut self, lr: f32) {
        self.config.lr = lr;
    }

    fn state_dict(&self) -> StateDict {
        let mut state = StateDict::new();
        step_to_state(&mut state, self.step);
        buffers_to_state(&mut state, "square_avg", &self.square_avg);
        buffers_to_state(&mut state, "momentum_buffer", &self.momentum);
        buffers_to_state(&mut state, "grad_avg", &self.grad_avg);
        state
    }

    fn load_state_dict(&mut self, module: &mut dyn Module, state: &StateDict) -> Result<()> {
        let mut buffers = vec!["square_avg"];
        if self.config.momentum != 0.0 {
            buffers.push("momentum_buffer");
        }
        if self.config.centered {
            buffers.push("grad_avg");
        }
        self.step = check_state(state, module, &buffers)?;
        self.square_avg = buffers_from_state(state, "square_avg")?;
        self.momentum = buffers_from_state(state, "momentum_buffer")?;
        self.grad_avg = buffers_from_state(state, "grad_avg")?;
        Ok(())
    }
}
