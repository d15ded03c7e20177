//! Stochastic gradient descent, with momentum, Nesterov momentum and weight decay.

use ventral_autograd::Gradients;

use super::{
    Optimizer, buffers_from_state, buffers_to_state, check_non_negative, check_state,
    for_each_parameter, step_to_state,
};
use crate::checkpoint::StateDict;
use crate::error::{Error, Result};
use crate::module::Module;

/// Hyper-parameters of [`Sgd`], PyTorch's defaults apart from the learning rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SgdConfig {
    /// Step size.
    pub lr: f32,
    /// Momentum factor μ (0 is vanilla gradient descent).
    pub momentum: f32,
    /// Dampening τ of the momentum buffer.
    pub dampening: f32,
    /// L2 penalty λ added to the gradient.
    pub weight_decay: f32,
    /// Nesterov momentum.
    pub nesterov: bool,
}

impl SgdConfig {
    /// Vanilla gradient descent at `lr`: the lecture's `weights += -step_size * weights_grad`.
    pub fn new(lr: f32) -> Self {
        Self {
            lr,
            momentum: 0.0,
            dampening: 0.0,
            weight_decay: 0.0,
            nesterov: false,
        }
    }
}

/// PyTorch's `torch.optim.SGD`. For each parameter `p` with gradient `g`, at step `t`:
///
/// ```text
/// g ← g + λ p                                   (weight decay)
/// b ← g                      if t = 1           (momentum buffer)
/// b ← μ b + (1 − τ) g        otherwise
/// g ← g + μ b  if Nesterov,  else  g ← b        (when μ ≠ 0)
/// p ← p − lr · g
/// ```
#[derive(Debug, Clone)]
pub struct Sgd {
    config: SgdConfig,
    buffers: Vec<Option<Vec<f32>>>,
    step: u64,
}

impl Sgd {
    /// An optimizer with `config`.
    ///
    /// # Errors
    /// [`Error::Config`] for a negative or non-finite setting, or Nesterov without momentum or
    /// with dampening (as PyTorch refuses).
    pub fn new(config: SgdConfig) -> Result<Self> {
        check_non_negative("learning rate", config.lr)?;
        check_non_negative("momentum", config.momentum)?;
        check_non_negative("dampening", config.dampening)?;
        check_non_negative("weight decay", config.weight_decay)?;
        if config.nesterov && (config.momentum == 0.0 || config.dampening != 0.0) {
            return Err(Error::config(
                "SGD",
                "Nesterov momentum requires a momentum and zero dampening",
            ));
        }
        Ok(Self {
            config,
            buffers: Vec::new(),
            step: 0,
        })
    }
}

impl Optimizer for Sgd {
    fn step(&mut self, module: &mut dyn Module, grads: &Gradients) -> Result<()> {
        let c = self.config;
        self.step += 1;
        let buffers = &mut self.buffers;
        for_each_parameter(module, grads, |i, p, g| {
            if buffers.len() <= i {
                buffers.resize(i + 1, None);
            }
            let mut d: Vec<f32> = g.to_vec();
            if c.weight_decay != 0.0 {
                let values = p.to_vec();
                for (d, w) in d.iter_mut().zip(&values) {
                    *d += c.weight_decay * w;
                }
            }
            if c.momentum != 0.0 {
                let buf = match &mut buffers[i] {
                    Some(b) => {
                        for (b, g) in b.iter_mut().zip(&d) {
                            *b = c.momentum * *b + (1.0 - c.dampening) * g;
                        }
                        b
                    }
                    slot @ None => slot.insert(d.clone()),
                };
                if c.nesterov {
                    for (d, b) in d.iter_mut().zip(buf.iter()) {
                        *d += c.momentum * b;
                    }
                } else {
                    d.copy_from_slice(buf);
                }
            }
            p.update(|w| {
                for (w, d) in w.iter_mut().zip(&d) {
                    *w -= c.lr * d;
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
        buffers_to_state(&mut state, "momentum_buffer", &self.buffers);
        state
    }

    fn load_state_dict(&mut self, module: &mut dyn Module, state: &StateDict) -> Result<()> {
        let buffers: &[&str] = if self.config.momentum != 0.0 {
            &["momentum_buffer"]
        } else {
            &[]
        };
        self.step = check_state(state, module, buffers)?;
        self.buffers = buffers_from_state(state, "momentum_buffer")?;
        Ok(())
    }
}
