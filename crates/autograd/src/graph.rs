//! The recorded graph: nodes, the closures that compute their gradients, and the thread-local
//! switches that control recording (`no_grad`), checking (anomaly mode) and naming (scopes).

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::error::Result;
use crate::shape::Shape;
use crate::tensor::{Tensor, TensorId};

/// What an op's backward receives: the gradient of its output and which inputs need one.
#[derive(Debug)]
pub struct GradContext<'a> {
    grad: &'a [f32],
    needs: &'a [bool],
}

impl<'a> GradContext<'a> {
    pub(crate) fn new(grad: &'a [f32], needs: &'a [bool]) -> Self {
        Self { grad, needs }
    }

    /// The gradient of the loss with respect to the op's output, row-major over its shape.
    pub fn grad(&self) -> &'a [f32] {
        self.grad
    }

    /// Whether input `i` needs a gradient; a backward may skip (return `None` for) the others.
    pub fn needs(&self, i: usize) -> bool {
        self.needs.get(i).copied().unwrap_or(false)
    }
}

/// The gradients an op's backward returns: one entry per input, row-major over that input's
/// shape, `None` where the input needs none.
pub type InputGrads = Vec<Option<Vec<f32>>>;

/// An op's backward: turns the output gradient into input gradients.
pub type BackwardFn = Box<dyn Fn(&GradContext<'_>) -> Result<InputGrads> + Send + Sync>;

/// Number of graph nodes alive in the process.
static LIVE_NODES: AtomicUsize = AtomicUsize::new(0);

/// The number of graph nodes currently alive in this process.
///
/// A node is created for each op that records a backward and is freed when `backward` has
/// used it (unless the graph is retained) or when every tensor that reaches it is dropped.
/// A training loop whose count grows from step to step is leaking graphs.
pub fn live_nodes() -> usize {
    LIVE_NODES.load(Ordering::Relaxed)
}

/// An op's input as the graph remembers it: identity, shape and the node that made it.
///
/// An edge to an op result does not hold the result's values: an activation stays in memory
/// only while some op saved it for its backward (a convolution its input, a ReLU its output),
/// not merely because a later op read it. A batch-norm output consumed by a ReLU is freed as
/// soon as the ReLU has run. Edges to leaves keep the leaf (parameters and inputs outlive the
/// graph anyway, and the DOT export shows their values).
#[derive(Clone)]
pub(crate) struct Edge {
    pub(crate) id: TensorId,
    pub(crate) shape: Shape,
    pub(crate) requires_grad: bool,
    pub(crate) node: Option<Arc<Node>>,
    pub(crate) leaf: Option<Tensor>,
}

impl Edge {
    /// The edge from `t` into the op that reads it.
    pub(crate) fn to(t: &Tensor) -> Self {
        let node = t.node().cloned();
        Edge {
            id: t.id(),
            shape: t.shape().clone(),
            requires_grad: t.requires_grad(),
            leaf: node.is_none().then(|| t.clone()),
            node,
        }
    }

    /// This edge's node, if the edge was its last reference (used to drop long graphs
    /// without recursion).
    fn into_unique_node(self) -> Option<Arc<Node>> {
        let node = self.node?;
        (Arc::strong_count(&node) == 1).then_some(node)
    }
}

/// The inputs and backward of a node, dropped after `backward` to free the graph.
pub(crate) struct NodeBody {
    pub(crate) inputs: Vec<Edge>,
    pub(crate) backward: BackwardFn,
}

/// One recorded op application.
pub(crate) struct Node {
    pub(crate) op: &'static str,
    pub(crate) path: Option<Arc<str>>,
    pub(crate) body: Mutex<Option<NodeBody>>,
}

impl Node {
    pub(crate) fn new(op: &'static str, inputs: Vec<Edge>, backward: BackwardFn) -> Self {
        LIVE_NODES.fetch_add(1, Ordering::Relaxed);
        Node {
            op,
            path: current_path(),
            body: Mutex::new(Some(NodeBody { inputs, backward })),
        }
    }

    /// Locks the body (a poisoned lock still holds valid data: bodies are only swapped whole).
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, Option<NodeBody>> {
        self.body.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The node's inputs, or `None` if its graph was freed.
    pub(crate) fn inputs(&self) -> Option<Vec<Edge>> {
        self.lock().as_ref().map(|b| b.inputs.clone())
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        LIVE_NODES.fetch_sub(1, Ordering::Relaxed);
        // Drop long input chains iteratively, so a 100 000-op graph cannot overflow the stack
        // through nested drops.
        let mut stack: Vec<Edge> = self
            .body
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .map(|b| b.inputs)
            .unwrap_or_default();
        while let Some(edge) = stack.pop() {
            if let Some(node) = edge.into_unique_node()
                && let Some(body) = node.lock().take()
            {
                stack.extend(body.inputs);
            }
        }
    }
}

thread_local! {
    static GRAD_ENABLED: Cell<bool> = const { Cell::new(true) };
    static ANOMALY: Cell<bool> = const { Cell::new(false) };
    static SCOPES: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
    static PATH: RefCell<Option<Arc<str>>> = const { RefCell::new(None) };
}

/// Whether ops on this thread record a graph (false inside [`no_grad`]).
pub fn is_grad_enabled() -> bool {
    GRAD_ENABLED.with(Cell::get)
}

/// Runs `f` without recording a graph: results of ops inside do not require a gradient.
/// For evaluation and optimizer updates.
///
/// ```
/// use ventral_autograd::{no_grad, Tensor};
///
/// let w = Tensor::ones([2])?.with_grad();
/// let y = no_grad(|| w.mul_scalar(3.0))?;
/// assert!(!y.requires_grad() && y.is_leaf());
/// # Ok::<(), ventral_autograd::Error>(())
/// ```
pub fn no_grad<R>(f: impl FnOnce() -> R) -> R {
    let _guard = NoGradGuard::new();
    f()
}

/// Disables graph recording on this thread until dropped (restoring the previous setting).
#[derive(Debug)]
pub struct NoGradGuard {
    previous: bool,
}

impl NoGradGuard {
    /// Turns recording off until the guard is dropped.
    pub fn new() -> Self {
        let previous = GRAD_ENABLED.with(|g| g.replace(false));
        NoGradGuard { previous }
    }
}

impl Default for NoGradGuard {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for NoGradGuard {
    fn drop(&mut self) {
        GRAD_ENABLED.with(|g| g.set(self.previous));
    }
}

/// Anomaly mode: while a guard is alive, the first op (on this thread) whose forward output
/// or backward gradient holds NaN or ±inf fails with [`crate::Error::Anomaly`] naming it.
///
/// Costs one pass over every op's output, so it is off by default.
///
/// ```
/// use ventral_autograd::{AnomalyMode, Error, Tensor};
///
/// let _on = AnomalyMode::enable();
/// let x = Tensor::from_vec(vec![-1.0], [1])?;
/// let err = x.log().unwrap_err(); // log(-1) = NaN
/// assert!(matches!(err, Error::Anomaly { op: "log", .. }));
/// # Ok::<(), ventral_autograd::Error>(())
/// ```
#[derive(Debug)]
pub struct AnomalyMode {
    previous: bool,
}

impl AnomalyMode {
    /// Turns anomaly checking on until the returned guard is dropped.
    pub fn enable() -> Self {
        AnomalyMode {
            previous: ANOMALY.with(|a| a.replace(true)),
        }
    }

    /// Whether anomaly checking is on for this thread.
    pub fn is_enabled() -> bool {
        ANOMALY.with(Cell::get)
    }
}

impl Drop for AnomalyMode {
    fn drop(&mut self) {
        ANOMALY.with(|a| a.set(self.previous));
    }
}

/// A named scope (e.g. a layer path such as `features.3`): ops recorded while the guard
/// lives carry the dotted path of all open scopes, which anomaly errors and the DOT export
/// show.
#[derive(Debug)]
pub struct Scope {
    _private: (),
}

impl Scope {
    /// Opens scope `name` (nested inside any open ones) until the guard is dropped.
    pub fn enter(name: impl Into<String>) -> Self {
        SCOPES.with(|s| s.borrow_mut().push(name.into()));
        refresh_path();
        Scope { _private: () }
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        SCOPES.with(|s| s.borrow_mut().pop());
        refresh_path();
    }
}

fn refresh_path() {
    let path = SCOPES.with(|s| {
        let s = s.borrow();
        (!s.is_empty()).then(|| Arc::<str>::from(s.join(".")))
    });
    PATH.with(|p| *p.borrow_mut() = path);
}

/// The dotted path of the open scopes, if any.
pub(crate) fn current_path() -> Option<Arc<str>> {
    PATH.with(|p| p.borrow().clone())
}
