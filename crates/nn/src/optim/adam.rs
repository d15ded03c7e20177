//! Adam and AdamW.

use ventral_autograd::Gradients;

use super::{
    Optimizer, buffers_from_state, buffers_to_state, check_non_negative, check_state,
    for_each_parameter, step_to_state,
};
use crate::checkpoint::StateDict;
use crate::error::{Error, Result};
use crate::module::Module;

/// Hyper-parameters of [`Adam`], PyTorch's defaults apart from the learning rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamConfig {
    /// Step size.
    pub lr: f32,
    /// Decay rates (β₁, β₂) of the first and second moment estimates.
    pub betas: (f32, f32),
    /// Added to the denominator for stability.
    pub eps: f32,
    /// Weight decay λ: an L2 term in the gradient (Adam) or decoupled (AdamW).
    pub weight_decay: f32,
    /// Decoupled weight decay: `p ← p − lr λ p` before the Adam step (AdamW).
    pub decoupled: bool,
}

impl AdamConfig {
    /// Adam at `lr` with β = (0.9, 0.999), ε = 1e-8, no weight decay.
    pub fn adam(lr: f32) -> Self {
        Self {
            lr,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled: false,
        }
    }

    /// AdamW at `lr` with PyTorch's default weight decay 0.01.
    pub fn adamw(lr: f32) -> Self {
        Self {
            weight_decay: 0.01,
            decoupled: true,
            ..Self::adam(lr)
        }
    }
}

/// PyTorch's `torch.optim.Adam` / `AdamW`. For each parameter `p` with gradient `g`, at step `t`:
///
/// ```text
/// p ← p (1 − lr λ)        (AdamW)     or     g ← g + λ p      (Adam)
/// m ← β₁ m + (1 − β₁) g
/// v ← β₂ v + (1 − β₂) g²
/// m̂ ← m / (1 − β₁ᵗ),   v̂ ← v / (1 − β₂ᵗ)
/// p ← p − lr · m̂ / (√v̂ + ε)
/// ```
#[derive(Debug, Clone)]
pub struct Adam {
    config: AdamConfig,
    m: Vec<Option<Vec<f32>>>,
    v: Vec<Option<Vec<f32>>>,
    step: u64,
}

/// AdamW (Loshchilov & Hutter 2019): [`Adam`] with decoupled weight decay. Build one with
/// [`Adam::adamw`] or `AdamW::new(AdamConfig::adamw(lr))` (PyTorch's defaults, weight decay
/// 0.01); `AdamConfig { decoupled: true, .. }` is what makes it AdamW.
///
/// ```
/// use ventral_nn::optim::{AdamConfig, AdamW, Optimizer};
///
/// let opt = AdamW::new(AdamConfig { weight_decay: 0.05, ..AdamConfig::adamw(1e-3) })?;
/// assert_eq!(opt.learning_rate(), 1e-3);
/// # Ok::<(), ventral_nn::Error>(())
/// ```
pub type AdamW = Adam;

impl Adam {
    /// Adam at `lr` with PyTorch's defaults (β = (0.9, 0.999), ε = 1e-8, no weight decay).
    ///
    /// # Errors
    /// [`Error::Config`] for a negative or non-finite `lr`.
    pub fn with_lr(lr: f32) -> Result<Self> {
        Self::new(AdamConfig::adam(lr))
    }

    /// AdamW at `lr` with PyTorch's defaults (weight decay 0.01, decoupled).
    ///
    /// # Errors
    /// [`Error::Config`] for a negative or non-finite `lr`.
    pub fn adamw(lr: f32) -> Result<Self> {
        Self::new(AdamConfig::adamw(lr))
    }

    /// The hyper-parameters (the learning rate as last set).
    pub fn config(&self) -> AdamConfig {
        self.config
    }

    /// An optimizer with `config`.
    ///
    /// # Errors
    /// [`Error::Config`] for a negative or non-finite setting or betas outside `[0, 1)`.
    pub fn new(config: AdamConfig) -> Result<Self> {
        check_non_negative("learning rate", config.lr)?;
        check_non_negative("eps", config.eps)?;
        check_non_negative("weight decay", config.weight_decay)?;
        let (b1, b2) = config.betas;
        if !(0.0..1.0).contains(&b1) || !(0.0..1.0).contains(&b2) {
            return Err(Error::config(
                "Adam",
                format!("betas must be in [0, 1), got ({b1}, {b2})"),
            ));
        }
        Ok(Self {
            config,
            m: Vec::new(),
            v: Vec::new(),
            step: 0,
        })
    }
}

impl Optimizer for Adam {
    fn step(&mut self, module: &mut dyn Module, grads: &Gradients) -> Result<()> {
        let c = self.config;
        self.step += 1;
        let t = self.step as i32;
        let (b1, b2) = c.betas;
        let bias1 = 1.0 - b1.powi(t);
        let bias2 = 1.0 - b2.powi(t);
        let (ms, vs) = (&mut self.m, &mut self.v);
        for_each_parameter(module, grads, |i, p, g| {
            if ms.len() <= i {
                ms.resize(i + 1, None);
                vs.resize(i + 1, None);
            }
            let m = ms[i].get_or_insert_with(|| vec![0.0; g.len()]);
            let v = vs[i].get_or_insert_with(|| vec![0.0; g.len()]);
            let values = if c.weight_decay != 0.0 && !c.decoupled {
                Some(p.to_vec())
            } else {
                None
            };
            p.update(|w| {
                for (k, w) in w.iter_mut().enumerate() {
                    let mut gk = g[k];
                    if let Some(values) = &values {
                        gk += c.weight_decay * values[k];
                    }
                    if c.decoupled && c.weight_decay != 0.0 {
                        *w *= 1.0 - c.lr * c.weight_decay;
                    }
                    m[k] = b1 * m[k] + (1.0 - b1) * gk;
                    v[k] = b2 * v[k] + (1.0 - b2) * gk * gk;
                    let m_hat = m[k] / bias1;
                    let v_hat = v[k] / bias2;
                    *w -= c.lr * m_hat / (v_hat.sqrt() + c.eps);
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
        buffers_to_state(&mut state, "exp_avg", &self.m);
        buffers_to_state(&mut state, "exp_avg_sq", &self.v);
        state
    }

    fn load_state_dict(&mut self, module: &mut dyn Module, state: &StateDict) -> Result<()> {
        self.step = check_state(state, module, &["exp_avg", "exp_avg_sq"])?;
        self.m = buffers_from_state(state, "exp_avg")?;
        self.v = buffers_from_state(state, "exp_avg_sq")?;
        Ok(())
    }
}
