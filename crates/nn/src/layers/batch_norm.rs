//! Batch normalisation: `BatchNorm1d` and `BatchNorm2d` (Ioffe & Szegedy 2015).
//!
//! The running statistics are updated by `forward(&self)` in training mode, so they sit
//! behind a [`Mutex`] (a `Module` is `Send`, and the lock is uncontended: one forward at a
//! time per layer).

use std::sync::{Mutex, PoisonError};

use ventral_autograd::{BatchNormOptions, RunningStats, Tensor, ValuesStamp};

use super::Conv2d;
use super::{py_bool, py_float};
use crate::error::{Error, Result};
use crate::module::{Mode, Module, Slot, join};

/// What [`BatchNorm::run`] applies after normalising.
#[derive(Debug, Clone, Copy)]
enum Then {
    /// Nothing: [`Module::forward`].
    Identity,
    /// ReLU: [`BatchNorm::forward_relu`].
    Relu,
}

/// Hyper-parameters of a batch norm; `Default` is PyTorch's (`eps = 1e-5`,
/// `momentum = 0.1`, `affine = true`, `track_running_stats = true`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchNormConfig {
    /// Added to the variance before the square root.
    pub eps: f32,
    /// Weight of the current batch in the running statistics' update
    /// `running ← (1 − momentum) · running + momentum · batch`. `None` is PyTorch's
    /// `momentum=None`: a cumulative average, momentum `1 / num_batches_tracked`.
    pub momentum: Option<f32>,
    /// Learn a per-channel scale `weight` (γ, initialised to 1) and shift `bias` (β, 0).
    pub affine: bool,
    /// Keep running mean and variance (used in eval mode). Without them, eval mode
    /// normalises with the batch's own statistics, as PyTorch does.
    pub track_running_stats: bool,
}

impl Default for BatchNormConfig {
    fn default() -> Self {
        Self {
            eps: 1e-5,
            momentum: Some(0.1),
            affine: true,
            track_running_stats: true,
        }
    }
}

/// The buffers a batch norm updates in training.
#[derive(Debug, Clone)]
struct Running {
    mean: Tensor,
    var: Tensor,
    num_batches_tracked: i64,
}

/// Batch normalisation over the channels (dimension 1) of `[N, C, *]`:
/// `y = (x − E[x]) / √(Var[x] + ε) · γ + β`, PyTorch's `nn.BatchNorm{D}d`. Use the aliases
/// [`BatchNorm1d`] (`D = 1`) and [`BatchNorm2d`] (`D = 2`).
///
/// In [`Mode::Train`] (the default) it normalises with the batch's mean and biased variance
/// and, when tracking, updates `running_mean` and `running_var` (with the *unbiased* batch
/// variance, as PyTorch) and counts `num_batches_tracked`. In [`Mode::Eval`] it uses the
/// running statistics.
///
/// State-dict entries, in order and named as PyTorch: `weight`, `bias` (parameters, if
/// affine), `running_mean`, `running_var` (buffers) and `num_batches_tracked` (an int64
/// counter), the last three if tracking.
///
/// # Shapes
/// - `BatchNorm1d`: input `[N, C]` or `[N, C, L]`
/// - `BatchNorm2d`: input `[N, C, H, W]`
/// - output: the input's shape
///
/// ```
/// use ventral_nn::{Mode, Module, Tensor, layers::BatchNorm1d};
///
/// let mut bn = BatchNorm1d::new(1)?;
/// let x = Tensor::from_vec(vec![1.0, 3.0], [2, 1])?; // one channel: mean 2, variance 1
/// let y = bn.forward(&x)?.to_vec();
/// assert!((y[0] + 1.0).abs() < 1e-4 && (y[1] - 1.0).abs() < 1e-4);
/// // running_mean = 0.9 · 0 + 0.1 · 2; running_var = 0.9 · 1 + 0.1 · 2 (unbiased variance).
/// assert_eq!(bn.running_mean().map(|t| t.to_vec()), Some(vec![0.2]));
/// assert_eq!(bn.running_var().map(|t| t.to_vec()), Some(vec![1.1]));
/// assert_eq!(bn.num_batches_tracked(), 1);
/// bn.set_mode(Mode::Eval); // now (x − 0.2) / √(1.1 + 1e-5)
/// assert!((bn.forward(&x)?.to_vec()[0] - 0.8 / 1.1f32.sqrt()).abs() < 1e-4);
/// # Ok::<(), ventral_nn::Error>(())
/// ```
#[derive(Debug)]
pub struct BatchNorm<const D: usize> {
    num_features: usize,
    config: BatchNormConfig,
    weight: Option<Tensor>,
    bias: Option<Tensor>,
    running: Option<Mutex<Running>>,
    mode: Mode,
    /// The last convolution this layer was folded into for inference (`fused.rs`).
    folded: Mutex<Option<Folded>>,
}

/// A convolution's weight and bias with an eval-mode batch norm folded in, and stamps of the
/// six tensors they were computed from: valid while every stamp still matches.
#[derive(Debug)]
struct Folded {
    sources: Vec<ValuesStamp>,
    weight: Tensor,
    bias: Tensor,
}

/// Batch normalisation of `[N, C]` or `[N, C, L]` (PyTorch's `nn.BatchNorm1d`); see
/// [`BatchNorm`].
pub type BatchNorm1d = BatchNorm<1>;

/// Batch normalisation of `[N, C, H, W]` (PyTorch's `nn.BatchNorm2d`); see [`BatchNorm`].
pub type BatchNorm2d = BatchNorm<2>;

impl<const D: usize> BatchNorm<D> {
    /// A batch norm over `num_features` channels with PyTorch's defaults.
    ///
    /// # Errors
    /// [`Error::Config`] if `num_features` is 0.
    pub fn new(num_features: usize) -> Result<Self> {
        Self::with_config(num_features, BatchNormConfig::default())
    }

    /// A batch norm with explicit hyper-parameters.
    ///
    /// # Errors
    /// [`Error::Config`] if `num_features` is 0, `eps` is negative or not finite, or the
    /// momentum is outside `[0, 1]`.
    pub fn with_config(num_features: usize, config: BatchNormConfig) -> Result<Self> {
        let what = if D == 1 { "BatchNorm1d" } else { "BatchNorm2d" };
        if num_features == 0 {
            return Err(Error::config(what, "num_features must be positive"));
        }
        if !(config.eps.is_finite() && config.eps >= 0.0) {
            return Err(Error::config(
                what,
                format!("eps must be >= 0, got {}", config.eps),
            ));
        }
        if let Some(m) = config.momentum
            && !(0.0..=1.0).contains(&m)
        {
            return Err(Error::config(
                what,
                format!("momentum must be in [0, 1], got {m}"),
            ));
        }
        let c = [num_features];
        let (weight, bias) = if config.affine {
            (
                Some(Tensor::ones(c)?.with_grad()),
                Some(Tensor::zeros(c)?.with_grad()),
            )
        } else {
            (None, None)
        };
        let running = if config.track_running_stats {
            Some(Mutex::new(Running {
                mean: Tensor::zeros(c)?,
                var: Tensor::ones(c)?,
                num_batches_tracked: 0,
            }))
        } else {
            None
        };
        Ok(Self {
            num_features,
            config,
            weight,
            bias,
            running,
            mode: Mode::Train,
            folded: Mutex::new(None),
        })
    }

    /// The number of channels `C`.
    pub fn num_features(&self) -> usize {
        self.num_features
    }

    /// The hyper-parameters.
    pub fn config(&self) -> BatchNormConfig {
        self.config
    }

    /// The scale γ `[C]`, if affine.
    pub fn weight(&self) -> Option<&Tensor> {
        self.weight.as_ref()
    }

    /// The shift β `[C]`, if affine.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    /// A copy of the running mean `[C]`, if tracked (a cheap shared-storage clone).
    pub fn running_mean(&self) -> Option<Tensor> {
        self.running.as_ref().map(|r| lock(r).mean.clone())
    }

    /// A copy of the running (unbiased) variance `[C]`, if tracked.
    pub fn running_var(&self) -> Option<Tensor> {
        self.running.as_ref().map(|r| lock(r).var.clone())
    }

    /// How many training batches have updated the running statistics (0 if not tracked).
    pub fn num_batches_tracked(&self) -> i64 {
        self.running
            .as_ref()
            .map_or(0, |r| lock(r).num_batches_tracked)
    }

    /// The current mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    fn expected_input(&self) -> String {
        let c = self.num_features;
        match D {
            1 => format!("[N, {c}] or [N, {c}, L]"),
            2 => format!("[N, {c}, H, W]"),
            _ => format!("[N, {c}, …] of rank {}", D + 2),
        }
    }

    fn accepts(&self, x: &Tensor) -> bool {
        let rank_ok = x.rank() == D + 2 || (D == 1 && x.rank() == 2);
        rank_ok && x.dims()[1] == self.num_features
    }

    /// `relu(self.forward(x))` as one op ([`Tensor::batch_norm_relu`]): in training a
    /// single pass over memory each way, with the same bits, running statistics and
    /// `num_batches_tracked` as the batch norm followed by a [`super::ReLU`]. Containers call
    /// it where a `BatchNorm → ReLU` pair runs (see [`super::fused`]).
    ///
    /// ```
    /// use ventral_nn::layers::{BatchNorm2d, ReLU};
    /// use ventral_nn::{Module, Tensor};
    ///
    /// let bn = BatchNorm2d::new(3)?;
    /// let x = Tensor::rand_uniform([2, 3, 4, 4], -1.0, 1.0, 7)?;
    /// let fused = bn.forward_relu(&x)?;
    /// let apart = ReLU.forward(&BatchNorm2d::new(3)?.forward(&x)?)?;
    /// assert_eq!(fused.to_vec(), apart.to_vec());
    /// # Ok::<(), ventral_nn::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`Module::forward`]: an input of the wrong rank or channel count.
    pub fn forward_relu(&self, x: &Tensor) -> Result<Tensor> {
        if !self.accepts(x) {
            return Err(Error::BadInput {
                expected: self.expected_input(),
                got: x.dims().to_vec(),
            }
            .in_layer("", &self.describe()));
        }
        self.run(x, Then::Relu)
            .map_err(|e| e.in_layer("", &self.describe()))
    }

    fn run(&self, x: &Tensor, then: Then) -> Result<Tensor> {
        let norm = match then {
            Then::Identity => Tensor::batch_norm,
            Then::Relu => Tensor::batch_norm_relu,
        };
        let (w, b) = (self.weight.as_ref(), self.bias.as_ref());
        let Some(running) = &self.running else {
            // No running statistics: batch statistics in both modes.
            let options = BatchNormOptions {
                eps: self.config.eps,
                momentum: 0.0,
            };
            return Ok(norm(x, w, b, None, Mode::Train, options)?);
        };
        let mut guard = lock(running);
        let r = &mut *guard;
        let tracked = r.num_batches_tracked + 1;
        let momentum = match (self.mode, self.config.momentum) {
            (Mode::Eval, _) => 0.0,
            (Mode::Train, Some(m)) => m,
            (Mode::Train, None) => 1.0 / tracked as f32,
        };
        let stats = RunningStats {
            mean: &mut r.mean,
            var: &mut r.var,
        };
        let options = BatchNormOptions {
            eps: self.config.eps,
            momentum,
        };
        let y = norm(x, w, b, Some(stats), self.mode, options)?;
        // Counted only once the statistics were really updated (a failed batch changes
        // nothing).
        if self.mode == Mode::Train {
            r.num_batches_tracked = tracked;
        }
        Ok(y)
    }
}

impl BatchNorm<2> {
    /// `conv`'s weight and bias with this eval-mode batch norm folded in:
    /// `W'[o] = W[o] · s[o]` and `b'[o] = (b[o] − mean[o]) · s[o] + β[o]` with
    /// `s = γ / √(running_var + ε)` (computed in f64, rounded once), so that
    /// `conv(x, W') + b'` is `bn(conv(x))` up to rounding. `None` unless the layer is in eval
    /// mode with running statistics and `conv` has as many output channels as it has
    /// features. Cached: computed again only when one of the six source tensors changed
    /// (the cache holds one folded copy and only weak links to the sources, so it keeps no
    /// old values alive), never written back into the parameters.
    ///
    /// # Errors
    /// If the folded tensors cannot be built (not for a layer built by its constructors).
    pub fn folded_into(&self, conv: &Conv2d) -> Result<Option<(Tensor, Tensor)>> {
        let Some(running) = &self.running else {
            return Ok(None);
        };
        if self.mode != Mode::Eval || conv.weight.dims()[0] != self.num_features {
            return Ok(None);
        }
        let (mean, var) = {
            let r = lock(running);
            (r.mean.clone(), r.var.clone())
        };
        let mut sources: Vec<&Tensor> = vec![&conv.weight, &mean, &var];
        sources.extend(conv.bias.as_ref());
        sources.extend(self.weight.as_ref());
        sources.extend(self.bias.as_ref());
        let mut cache = self.folded.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(f) = cache.as_ref()
            && f.sources.len() == sources.len()
            && f.sources.iter().zip(&sources).all(|(s, t)| s.matches(t))
        {
            return Ok(Some((f.weight.clone(), f.bias.clone())));
        }
        let (weight, bias) = self.fold(conv, &mean, &var)?;
        *cache = Some(Folded {
            sources: sources.iter().map(|t| t.values_stamp()).collect(),
            weight: weight.clone(),
            bias: bias.clone(),
        });
        Ok(Some((weight, bias)))
    }

    /// The arithmetic of [`BatchNorm::folded_into`], uncached.
    fn fold(&self, conv: &Conv2d, mean: &Tensor, var: &Tensor) -> Result<(Tensor, Tensor)> {
        let channels = self.num_features;
        let (mean, var) = (mean.to_vec(), var.to_vec());
        let gamma = self.weight.as_ref().map(Tensor::to_vec);
        let beta = self.bias.as_ref().map(Tensor::to_vec);
        let conv_bias = conv.bias.as_ref().map(Tensor::to_vec);
        let eps = f64::from(self.config.eps);
        let mut weight = conv.weight.to_vec();
        let per_channel = weight.len() / channels;
        let mut bias = vec![0.0f32; channels];
        for (o, taps) in weight.chunks_exact_mut(per_channel).enumerate() {
            let gamma = gamma.as_ref().map_or(1.0, |g| f64::from(g[o]));
            let scale = gamma / (f64::from(var[o]) + eps).sqrt();
            for w in taps {
                *w = (f64::from(*w) * scale) as f32;
            }
            let b = conv_bias.as_ref().map_or(0.0, |b| f64::from(b[o]));
            let shift = beta.as_ref().map_or(0.0, |b| f64::from(b[o]));
            bias[o] = ((b - f64::from(mean[o])) * scale + shift) as f32;
        }
        Ok((
            Tensor::from_vec(weight, conv.weight.dims())?,
            Tensor::from_vec(bias, [channels])?,
        ))
    }
}

/// Locks the running statistics; a poisoned lock (a panic elsewhere mid-forward) still
/// holds consistent tensors, since they are replaced only after a successful kernel call.
fn lock(m: &Mutex<Running>) -> std::sync::MutexGuard<'_, Running> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<const D: usize> Clone for BatchNorm<D> {
    fn clone(&self) -> Self {
        Self {
            num_features: self.num_features,
            config: self.config,
            weight: self.weight.clone(),
            bias: self.bias.clone(),
            running: self.running.as_ref().map(|r| Mutex::new(lock(r).clone())),
            mode: self.mode,
            folded: Mutex::new(None),
        }
    }
}

impl<const D: usize> Module for BatchNorm<D> {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if !self.accepts(x) {
            return Err(Error::BadInput {
                expected: self.expected_input(),
                got: x.dims().to_vec(),
            }
            .in_layer("", &self.describe()));
        }
        self.run(x, Then::Identity)
            .map_err(|e| e.in_layer("", &self.describe()))
    }

    fn visit(&mut self, prefix: &str, f: &mut dyn FnMut(&str, Slot<'_>)) {
        if let Some(w) = &mut self.weight {
            f(&join(prefix, "weight"), Slot::Parameter(w));
        }
        if let Some(b) = &mut self.bias {
            f(&join(prefix, "bias"), Slot::Parameter(b));
        }
        if let Some(running) = &mut self.running {
            let r = running.get_mut().unwrap_or_else(PoisonError::into_inner);
            f(&join(prefix, "running_mean"), Slot::Buffer(&mut r.mean));
            f(&join(prefix, "running_var"), Slot::Buffer(&mut r.var));
            f(
                &join(prefix, "num_batches_tracked"),
                Slot::Counter(&mut r.num_batches_tracked),
            );
        }
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }

    fn set_mode(&mut self, mode: Mode) {
        // A folded copy survives the switch: its stamps tell whether training has changed
        // what it was made from (so `Trainer::infer`, which switches to eval and back on
        // every call, folds once while the weights stay put).
        self.mode = mode;
    }

    fn mode(&self) -> Option<Mode> {
        Some(self.mode)
    }

    fn describe(&self) -> String {
        let c = self.config;
        let momentum = c.momentum.map_or_else(|| "None".to_string(), py_float);
        format!(
            "BatchNorm{D}d({}, eps={}, momentum={momentum}, affine={}, track_running_stats={})",
            self.num_features,
            py_float(c.eps),
            py_bool(c.affine),
            py_bool(c.track_running_stats)
        )
    }
}
