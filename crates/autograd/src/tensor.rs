//! [`Tensor`]: shared f32 storage, a shape (and strides, for views), and the graph node that
//! made it.

use std::borrow::Cow;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use crate::error::{Error, Phase, Result};
use crate::graph::{
    AnomalyMode, Edge, GradContext, InputGrads, Node, current_path, is_grad_enabled,
};
use crate::rng::Xoshiro256PlusPlus;
use crate::shape::{Shape, gather_strided};

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A tensor's identity, the key of its gradient in [`crate::Gradients`]. Clones of a tensor
/// share it; every op result and every constructor gets a new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TensorId(u64);

impl TensorId {
    /// The identity as a number (unique within the process), e.g. for labels.
    pub fn as_u64(self) -> u64 {
        self.0
    }

    fn fresh() -> Self {
        TensorId(NEXT_ID.fetch_add(1, Ordering::Relaxed))
    }
}

/// An n-dimensional array of f32 that remembers how it was computed.
///
/// Cloning is cheap (a reference count): clones share storage, identity and graph node.
/// Storage is never mutated behind a tensor's back; [`Tensor::update`] copies on write.
/// Results of ops are contiguous row-major, except views (`permute`, `transpose`,
/// `broadcast_to`, `narrow`), which carry strides and an offset into the shared storage
/// instead of copying; ops that need contiguous data copy a view once when they read it.
///
/// A tensor *requires grad* if it is a leaf marked with [`Tensor::with_grad`] or the result of
/// an op (recorded outside [`crate::no_grad`]) with such an input. Such results hold the node
/// of the op that made them, and through it the whole graph back to the leaves.
///
/// The lecture's example, `f(x, y, z) = (x + y) · z` at `x = -2, y = 5, z = -4`:
/// `q = x + y = 3`, `f = q · z = -12`; `∂f/∂z = q = 3`, `∂f/∂q = z = -4`, and the add routes
/// that gradient unchanged to both inputs, `∂f/∂x = ∂f/∂y = -4`.
///
/// ```
/// use ventral_autograd::Tensor;
///
/// let x = Tensor::scalar(-2.0).with_grad();
/// let y = Tensor::scalar(5.0).with_grad();
/// let z = Tensor::scalar(-4.0).with_grad();
/// let f = x.add(&y)?.mul(&z)?;
/// assert_eq!(f.item()?, -12.0);
/// let grads = f.backward()?;
/// assert_eq!(grads.get(&x).unwrap().item()?, -4.0);
/// assert_eq!(grads.get(&y).unwrap().item()?, -4.0);
/// assert_eq!(grads.get(&z).unwrap().item()?, 3.0);
/// # Ok::<(), ventral_autograd::Error>(())
/// ```
#[derive(Clone)]
pub struct Tensor {
    inner: Arc<Inner>,
}

#[derive(Clone)]
struct Inner {
    id: TensorId,
    storage: Arc<Vec<f32>>,
    shape: Shape,
    strides: Vec<usize>,
    offset: usize,
    requires_grad: bool,
    node: Option<Arc<Node>>,
}

/// What [`Tensor::values_stamp`] returns: which storage, and which view of it, a tensor
/// showed. Storage is never written while shared and [`Tensor::update`] writes only storage
/// it holds alone, which cuts this weak link first; so a tensor that still matches still
/// holds the same values.
#[derive(Debug, Clone)]
pub struct ValuesStamp {
    storage: Weak<Vec<f32>>,
    shape: Shape,
    strides: Vec<usize>,
    offset: usize,
}

impl ValuesStamp {
    /// Whether `tensor` shows the values this stamp was taken of: the same live storage,
    /// unchanged since, through the same view.
    pub fn matches(&self, tensor: &Tensor) -> bool {
        let inner = &tensor.inner;
        self.storage
            .upgrade()
            .is_some_and(|storage| Arc::ptr_eq(&storage, &inner.storage))
            && self.offset == inner.offset
            && self.strides == inner.strides
            && self.shape == inner.shape
    }

    /// Whether the values it was taken of still exist unchanged in some tensor (false once
    /// they are dropped or updated in place), so a cache can drop what it computed from them.
    pub fn is_live(&self) -> bool {
        self.storage.strong_count() > 0
    }
}

/// Checks that a shape's element count fits in `usize`.
fn checked_numel(op: &'static str, shape: &Shape) -> Result<usize> {
    Ok(ventral_kernels::shape::numel(op, shape.dims())?)
}

impl Tensor {
    fn leaf(storage: Arc<Vec<f32>>, shape: Shape) -> Self {
        let strides = shape.contiguous_strides();
        Tensor {
            inner: Arc::new(Inner {
                id: TensorId::fresh(),
                storage,
                shape,
                strides,
                offset: 0,
                requires_grad: false,
                node: None,
            }),
        }
    }

    /// A tensor of `shape` holding `data` in row-major order.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `data.len()` is not the shape's element count.
    pub fn from_vec(data: Vec<f32>, shape: impl Into<Shape>) -> Result<Self> {
        let shape = shape.into();
        let n = checked_numel("from_vec", &shape)?;
        if data.len() != n {
            return Err(Error::invalid(
                "from_vec",
                format!(
                    "{} values do not fill shape {shape} ({n} elements)",
                    data.len()
                ),
            ));
        }
        Ok(Self::leaf(Arc::new(data), shape))
    }

    /// A tensor of `shape` copied from `data`.
    ///
    /// # Errors
    /// As [`Tensor::from_vec`].
    pub fn from_slice(data: &[f32], shape: impl Into<Shape>) -> Result<Self> {
        Self::from_vec(data.to_vec(), shape)
    }

    /// A rank-0 tensor holding `value`.
    pub fn scalar(value: f32) -> Self {
        Self::leaf(Arc::new(vec![value]), Shape::scalar())
    }

    /// A tensor of `shape` with every element `value`.
    ///
    /// # Errors
    /// [`Error::Kernel`] if the element count overflows `usize`.
    pub fn full(shape: impl Into<Shape>, value: f32) -> Result<Self> {
        let shape = shape.into();
        let n = checked_numel("full", &shape)?;
        Ok(Self::leaf(Arc::new(vec![value; n]), shape))
    }

    /// A tensor of zeros.
    ///
    /// # Errors
    /// As [`Tensor::full`].
    pub fn zeros(shape: impl Into<Shape>) -> Result<Self> {
        Self::full(shape, 0.0)
    }

    /// A tensor of ones.
    ///
    /// # Errors
    /// As [`Tensor::full`].
    pub fn ones(shape: impl Into<Shape>) -> Result<Self> {
        Self::full(shape, 1.0)
    }

    /// The 1-D tensor `[start, start + step, …]` of values below `end` (above, for a negative
    /// step), as `torch.arange`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `step` is zero or any argument is not finite.
    pub fn arange(start: f32, end: f32, step: f32) -> Result<Self> {
        if step == 0.0 || !(start.is_finite() && end.is_finite() && step.is_finite()) {
            return Err(Error::invalid(
                "arange",
                format!("needs finite bounds and a non-zero step, got {start}..{end} by {step}"),
            ));
        }
        let n = ((f64::from(end) - f64::from(start)) / f64::from(step))
            .ceil()
            .max(0.0) as usize;
        let data: Vec<f32> = (0..n)
            .map(|i| (f64::from(start) + i as f64 * f64::from(step)) as f32)
            .collect();
        Ok(Self::leaf(Arc::new(data), Shape::new([n])))
    }

    /// Values drawn uniformly from `[low, high)` by a generator seeded with `seed`
    /// ([`crate::rng::Xoshiro256PlusPlus`]): same seed, same bits.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] unless `low < high`, both finite.
    pub fn rand_uniform(shape: impl Into<Shape>, low: f32, high: f32, seed: u64) -> Result<Self> {
        let shape = shape.into();
        if !(low < high && low.is_finite() && high.is_finite()) {
            return Err(Error::invalid(
                "rand_uniform",
                format!("needs finite low < high, got [{low}, {high})"),
            ));
        }
        let n = checked_numel("rand_uniform", &shape)?;
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let data = (0..n)
            .map(|_| {
                let u = rng.next_f64();
                let v = (f64::from(low) + u * (f64::from(high) - f64::from(low))) as f32;
                // Rounding to f32 can land on `high`; keep the interval half-open.
                if v >= high { low } else { v }
            })
            .collect();
        Ok(Self::leaf(Arc::new(data), shape))
    }

    /// Values drawn from a normal distribution `N(mean, std²)` (Box–Muller in f64) by a
    /// generator seeded with `seed`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] unless `std >= 0` and both arguments are finite.
    pub fn rand_normal(shape: impl Into<Shape>, mean: f32, std: f32, seed: u64) -> Result<Self> {
        let shape = shape.into();
        if !(std >= 0.0 && std.is_finite() && mean.is_finite()) {
            return Err(Error::invalid(
                "rand_normal",
                format!("needs finite mean and std >= 0, got mean {mean}, std {std}"),
            ));
        }
        let n = checked_numel("rand_normal", &shape)?;
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let mut data = Vec::with_capacity(n + 1);
        while data.len() < n {
            // u1 in (0, 1] so ln(u1) is finite.
            let u1 = 1.0 - rng.next_f64();
            let u2 = rng.next_f64();
            let r = (-2.0 * u1.ln()).sqrt();
            let t = std::f64::consts::TAU * u2;
            data.push((f64::from(mean) + f64::from(std) * r * t.cos()) as f32);
            data.push((f64::from(mean) + f64::from(std) * r * t.sin()) as f32);
        }
        data.truncate(n);
        Ok(Self::leaf(Arc::new(data), shape))
    }

    /// A custom differentiable op: `data` (row-major over `shape`) computed from `inputs`,
    /// with `backward` turning the output gradient into one gradient per input (row-major
    /// over that input's shape, `None` where [`GradContext::needs`] is false).
    ///
    /// This is how every op in this crate records itself; it is public so users can add ops
    /// (and so tests can build a deliberately wrong one for [`crate::gradcheck`]). Nothing is
    /// recorded inside [`crate::no_grad`] or when no input requires a gradient.
    ///
    /// ```
    /// use ventral_autograd::Tensor;
    ///
    /// // cube(x) = x³, d/dx = 3x².
    /// let x = Tensor::from_vec(vec![2.0], [1])?.with_grad();
    /// let xs = x.to_vec();
    /// let y = Tensor::from_op("cube", vec![8.0], [1], &[&x], move |ctx| {
    ///     Ok(vec![Some(vec![ctx.grad()[0] * 3.0 * xs[0] * xs[0]])])
    /// })?;
    /// assert_eq!(y.sum_all()?.backward()?.get(&x).unwrap().to_vec(), [12.0]);
    /// # Ok::<(), ventral_autograd::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `data` does not fill `shape`; [`Error::Anomaly`] in
    /// anomaly mode if `data` holds NaN or ±inf.
    pub fn from_op<F>(
        op: &'static str,
        data: Vec<f32>,
        shape: impl Into<Shape>,
        inputs: &[&Tensor],
        backward: F,
    ) -> Result<Tensor>
    where
        F: Fn(&GradContext<'_>) -> Result<InputGrads> + Send + Sync + 'static,
    {
        Self::record(op, Arc::new(data), shape.into(), inputs, backward)
    }

    /// Records an op whose contiguous result is `storage` (see [`Tensor::from_op`]).
    pub(crate) fn record<F>(
        op: &'static str,
        storage: Arc<Vec<f32>>,
        shape: Shape,
        inputs: &[&Tensor],
        backward: F,
    ) -> Result<Tensor>
    where
        F: Fn(&GradContext<'_>) -> Result<InputGrads> + Send + Sync + 'static,
    {
        let n = checked_numel(op, &shape)?;
        if storage.len() != n {
            return Err(Error::invalid(
                op,
                format!(
                    "produced {} values for shape {shape} ({n} elements)",
                    storage.len()
                ),
            ));
        }
        check_finite(op, Phase::Forward, &storage)?;
        let strides = shape.contiguous_strides();
        Ok(Self::with_node(
            op, storage, shape, strides, 0, inputs, backward,
        ))
    }

    /// Records a view of `base`'s storage (no values are created, so no anomaly check).
    pub(crate) fn record_view<F>(
        op: &'static str,
        base: &Tensor,
        shape: Shape,
        strides: Vec<usize>,
        offset: usize,
        backward: F,
    ) -> Tensor
    where
        F: Fn(&GradContext<'_>) -> Result<InputGrads> + Send + Sync + 'static,
    {
        let storage = base.inner.storage.clone();
        Self::with_node(op, storage, shape, strides, offset, &[base], backward)
    }

    fn with_node<F>(
        op: &'static str,
        storage: Arc<Vec<f32>>,
        shape: Shape,
        strides: Vec<usize>,
        offset: usize,
        inputs: &[&Tensor],
        backward: F,
    ) -> Tensor
    where
        F: Fn(&GradContext<'_>) -> Result<InputGrads> + Send + Sync + 'static,
    {
        crate::profile::forward_lap(op);
        let track = is_grad_enabled() && inputs.iter().any(|t| t.requires_grad());
        let node = track.then(|| {
            Arc::new(Node::new(
                op,
                inputs.iter().map(|&t| Edge::to(t)).collect(),
                Box::new(backward),
            ))
        });
        Tensor {
            inner: Arc::new(Inner {
                id: TensorId::fresh(),
                storage,
                shape,
                strides,
                offset,
                requires_grad: track,
                node,
            }),
        }
    }

    /// This tensor marked as a leaf that needs a gradient (a parameter or an input to
    /// differentiate by). Results of ops already track gradients; for them this is a no-op.
    #[must_use]
    pub fn with_grad(self) -> Tensor {
        if self.inner.requires_grad {
            return self;
        }
        let mut inner = (*self.inner).clone();
        inner.id = TensorId::fresh();
        inner.requires_grad = true;
        Tensor {
            inner: Arc::new(inner),
        }
    }

    /// The same values, cut from the graph: a leaf that does not require a gradient.
    /// Shares storage, so it costs no copy.
    pub fn detach(&self) -> Tensor {
        let mut inner = (*self.inner).clone();
        inner.id = TensorId::fresh();
        inner.requires_grad = false;
        inner.node = None;
        Tensor {
            inner: Arc::new(inner),
        }
    }

    /// Changes a leaf's values in place, e.g. an optimizer step on a parameter. Copies the
    /// storage first if anything else shares it (a clone, a view, a saved graph), so those
    /// keep the old values; the tensor keeps its identity, and so its gradient slot.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if the tensor is the result of a recorded op (changing it
    /// would make its graph's gradients wrong).
    pub fn update(&mut self, f: impl FnOnce(&mut [f32])) -> Result<()> {
        if self.inner.node.is_some() {
            return Err(Error::invalid(
                "update",
                format!(
                    "cannot change the values of a non-leaf tensor of shape {} in place; detach it first",
                    self.shape()
                ),
            ));
        }
        let contiguous_whole = self.is_contiguous()
            && self.inner.offset == 0
            && self.inner.storage.len() == self.numel();
        let fresh = (!contiguous_whole).then(|| self.to_vec());
        let inner = Arc::make_mut(&mut self.inner);
        if let Some(data) = fresh {
            inner.storage = Arc::new(data);
            inner.strides = inner.shape.contiguous_strides();
            inner.offset = 0;
        }
        f(Arc::<Vec<f32>>::make_mut(&mut inner.storage).as_mut_slice());
        Ok(())
    }

    /// A stamp of this tensor's current values, for caches of things computed from them (a
    /// batch norm folded into a convolution): [`ValuesStamp::matches`] tells whether a
    /// tensor still shows exactly these values, without the stamp keeping them alive.
    pub fn values_stamp(&self) -> ValuesStamp {
        ValuesStamp {
            storage: Arc::downgrade(&self.inner.storage),
            shape: self.inner.shape.clone(),
            strides: self.inner.strides.clone(),
            offset: self.inner.offset,
        }
    }

    /// The identity under which [`crate::Gradients`] stores this tensor's gradient.
    pub fn id(&self) -> TensorId {
        self.inner.id
    }

    /// The shape.
    pub fn shape(&self) -> &Shape {
        &self.inner.shape
    }

    /// The dimensions (same as `shape().dims()`).
    pub fn dims(&self) -> &[usize] {
        self.inner.shape.dims()
    }

    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.inner.shape.rank()
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.inner.shape.numel()
    }

    /// Element strides of this view of the storage (row-major for ordinary tensors).
    pub fn strides(&self) -> &[usize] {
        &self.inner.strides
    }

    /// Whether the elements lie row-major and dense in storage (no copy needed to read them).
    pub fn is_contiguous(&self) -> bool {
        let mut expected = 1;
        for (&d, &s) in self.dims().iter().zip(&self.inner.strides).rev() {
            if d != 1 && s != expected {
                return false;
            }
            expected *= d;
        }
        true
    }

    /// Whether this tensor needs a gradient (a marked leaf or a recorded op's result).
    pub fn requires_grad(&self) -> bool {
        self.inner.requires_grad
    }

    /// Whether this tensor was not made by a recorded op.
    pub fn is_leaf(&self) -> bool {
        self.inner.node.is_none()
    }

    /// The name of the op that made this tensor, if it was recorded.
    pub fn op(&self) -> Option<&'static str> {
        self.inner.node.as_ref().map(|n| n.op)
    }

    /// The values, row-major, as a new vector.
    pub fn to_vec(&self) -> Vec<f32> {
        self.data().into_owned()
    }

    /// The value of a one-element tensor.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if the tensor has more or fewer than one element.
    pub fn item(&self) -> Result<f32> {
        if self.numel() != 1 {
            return Err(Error::invalid(
                "item",
                format!("needs exactly one element, got shape {}", self.shape()),
            ));
        }
        Ok(self.data()[0])
    }

    /// The values, row-major: borrowed when contiguous, gathered otherwise.
    /// The values in row-major order, borrowed when the tensor is contiguous (no copy) and
    /// gathered otherwise: for readers on a hot path, such as an optimizer step.
    pub fn values(&self) -> Cow<'_, [f32]> {
        self.data()
    }

    pub(crate) fn data(&self) -> Cow<'_, [f32]> {
        let i = &self.inner;
        if self.is_contiguous() {
            Cow::Borrowed(&i.storage[i.offset..i.offset + self.numel()])
        } else {
            Cow::Owned(gather_strided(
                &i.storage,
                i.shape.dims(),
                &i.strides,
                i.offset,
            ))
        }
    }

    /// The whole storage and this view's offset into it (for strided kernels).
    pub(crate) fn storage(&self) -> (&[f32], usize) {
        (&self.inner.storage, self.inner.offset)
    }

    /// The node that made this tensor.
    pub(crate) fn node(&self) -> Option<&Arc<Node>> {
        self.inner.node.as_ref()
    }

    /// A leaf holding a gradient (or any computed values) of `shape`.
    pub(crate) fn from_parts(data: Vec<f32>, shape: Shape) -> Tensor {
        Self::leaf(Arc::new(data), shape)
    }
}

/// In anomaly mode, fails if `values` hold NaN or ±inf.
pub(crate) fn check_finite(op: &'static str, phase: Phase, values: &[f32]) -> Result<()> {
    if !AnomalyMode::is_enabled() {
        return Ok(());
    }
    match values.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(index) => Err(Error::Anomaly {
            op,
            path: current_path().map(|p| p.to_string()),
            phase,
            index,
            value: values[index],
        }),
    }
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let data = self.data();
        let shown: Vec<f32> = data.iter().take(8).copied().collect();
        write!(f, "Tensor(shape={}, values={shown:?}", self.shape())?;
        if data.len() > 8 {
            write!(f, "…")?;
        }
        if let Some(op) = self.op() {
            write!(f, ", op={op}")?;
        } else if self.requires_grad() {
            write!(f, ", requires_grad")?;
        }
        write!(f, ")")
    }
}
