//! Reverse-mode differentiation: a topological sort of the recorded graph, then each node's
//! backward in reverse order, accumulating into a [`Gradients`] store kept outside the tensors.

use std::collections::{HashMap, HashSet};

use crate::error::{Error, Phase, Result};
use crate::graph::{Edge, GradContext};
use crate::profile::{self, Pass};
use crate::shape::Shape;
use crate::tensor::{Tensor, TensorId, check_finite};

/// Gradients by tensor identity, kept outside the tensors.
///
/// [`Tensor::backward_into`] adds into it, so the gradients of leaves accumulate across
/// calls until [`Gradients::clear`] (PyTorch's semantics, with `zero_grad` spelled `clear`).
#[derive(Debug, Clone, Default)]
pub struct Gradients {
    map: HashMap<TensorId, Tensor>,
}

impl Gradients {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The gradient of `t`, if one was computed (shape of `t`, contiguous, no graph).
    pub fn get(&self, t: &Tensor) -> Option<&Tensor> {
        self.map.get(&t.id())
    }

    /// The gradient stored under `id`.
    pub fn get_by_id(&self, id: TensorId) -> Option<&Tensor> {
        self.map.get(&id)
    }

    /// Removes and returns the gradient of `t`.
    pub fn remove(&mut self, t: &Tensor) -> Option<Tensor> {
        self.map.remove(&t.id())
    }

    /// Stores `grad` as the gradient of `t`, replacing any: how a data-parallel step puts
    /// back the gradients averaged over processes.
    ///
    /// # Errors
    /// [`Error::Backward`] if the shapes differ.
    pub fn insert(&mut self, t: &Tensor, grad: Tensor) -> Result<()> {
        if grad.shape() != t.shape() {
            return Err(Error::Backward {
                detail: format!(
                    "a gradient of shape {} for a tensor of shape {}",
                    grad.shape(),
                    t.shape()
                ),
            });
        }
        self.map.insert(t.id(), grad.detach());
        Ok(())
    }

    /// Forgets every gradient (PyTorch's `zero_grad`).
    pub fn clear(&mut self) {
        self.map.clear();
    }

    /// Number of stored gradients.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no gradient is stored.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The stored gradients, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (TensorId, &Tensor)> {
        self.map.iter().map(|(&id, t)| (id, t))
    }

    /// Adds `grad` (row-major over `shape`) to the gradient stored under `id`.
    fn accumulate(&mut self, id: TensorId, shape: &Shape, grad: Vec<f32>) {
        match self.map.get_mut(&id) {
            Some(existing) => {
                let mut sum = existing.to_vec();
                for (s, g) in sum.iter_mut().zip(&grad) {
                    *s += g;
                }
                *existing = Tensor::from_parts(sum, shape.clone());
            }
            None => {
                self.map.insert(id, Tensor::from_parts(grad, shape.clone()));
            }
        }
    }
}

/// How [`Tensor::backward_with`] treats the graph and intermediate gradients.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BackwardOptions {
    /// Keep the graph so `backward` can run on it again (and [`crate::to_dot`] can draw it);
    /// by default each node's inputs and saved values are freed once used.
    pub retain_graph: bool,
    /// Store the gradients of every tensor in the graph, not only of leaves.
    pub keep_intermediate: bool,
}

impl Tensor {
    /// Differentiates this one-element tensor (a loss) with respect to every leaf that
    /// requires a gradient, returning a fresh store. Frees the graph.
    ///
    /// # Errors
    /// [`Error::Backward`] if the tensor has more than one element, does not require a
    /// gradient, or its graph was freed by an earlier `backward`; any error of an op's
    /// backward ([`Error::Anomaly`] in anomaly mode).
    pub fn backward(&self) -> Result<Gradients> {
        let mut grads = Gradients::new();
        self.backward_with(&mut grads, BackwardOptions::default())?;
        Ok(grads)
    }

    /// As [`Tensor::backward`], adding into `grads` (leaf gradients accumulate).
    ///
    /// # Errors
    /// As [`Tensor::backward`].
    pub fn backward_into(&self, grads: &mut Gradients) -> Result<()> {
        self.backward_with(grads, BackwardOptions::default())
    }

    /// As [`Tensor::backward_into`], with explicit [`BackwardOptions`].
    ///
    /// ```
    /// use ventral_autograd::{BackwardOptions, Gradients, Tensor};
    ///
    /// // Twice through a retained graph: d(3x)/dx = 3 accumulates to 6.
    /// let x = Tensor::scalar(1.0).with_grad();
    /// let y = x.mul_scalar(3.0)?;
    /// let mut grads = Gradients::new();
    /// let keep = BackwardOptions { retain_graph: true, ..Default::default() };
    /// y.backward_with(&mut grads, keep)?;
    /// y.backward_with(&mut grads, keep)?;
    /// assert_eq!(grads.get(&x).unwrap().item()?, 6.0);
    /// # Ok::<(), ventral_autograd::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`Tensor::backward`].
    pub fn backward_with(&self, grads: &mut Gradients, options: BackwardOptions) -> Result<()> {
        self.backward_with_hook(grads, options, &mut |_, _| {})
    }

    /// As [`Tensor::backward_with`], calling `on_leaf(leaf, grads)` as soon as a leaf's
    /// gradient is complete, while the rest of the backward pass is still to run: a
    /// data-parallel step starts sending the last layers' gradients while the first layers'
    /// are computed. Leaves complete in the same order on every call over the same graph.
    ///
    /// ```
    /// use ventral_autograd::{BackwardOptions, Gradients, Tensor};
    ///
    /// let (a, b) = (Tensor::scalar(2.0).with_grad(), Tensor::scalar(3.0).with_grad());
    /// let y = a.mul(&b)?.mul(&b)?; // a·b², b used twice
    /// let mut done = Vec::new();
    /// let mut grads = Gradients::new();
    /// y.backward_with_hook(&mut grads, BackwardOptions::default(), &mut |leaf, g| {
    ///     done.push(g.get(leaf).unwrap().item().unwrap());
    /// })?;
    /// done.sort_by(f32::total_cmp);
    /// assert_eq!(done, [9.0, 12.0]); // dy/da = b², dy/db = 2ab, each reported once, whole
    /// # Ok::<(), ventral_autograd::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`Tensor::backward`].
    pub fn backward_with_hook(
        &self,
        grads: &mut Gradients,
        options: BackwardOptions,
        on_leaf: &mut dyn FnMut(&Tensor, &Gradients),
    ) -> Result<()> {
        if self.numel() != 1 {
            return Err(Error::Backward {
                detail: format!(
                    "the root must have exactly one element (a loss), got shape {}",
                    self.shape()
                ),
            });
        }
        if !self.requires_grad() {
            return Err(Error::Backward {
                detail: "the root does not require a gradient: no input was marked with \
                         with_grad, or it was computed under no_grad"
                    .into(),
            });
        }
        // Popped from the end, so each edge (and any leaf it holds) is dropped once used.
        let mut order = topological_order(self)?;
        let mut pending: HashMap<TensorId, Vec<f32>> = HashMap::new();
        pending.insert(self.id(), vec![1.0]);
        while let Some(t) = order.pop() {
            let Some(g) = pending.remove(&t.id) else {
                continue;
            };
            let Some(node) = &t.node else {
                // Every op that reads this leaf comes before it in this reverse topological
                // order: its gradient is complete.
                grads.accumulate(t.id, &t.shape, g);
                if let Some(leaf) = &t.leaf {
                    on_leaf(leaf, grads);
                }
                continue;
            };
            let mut body_slot = node.lock();
            let Some(body) = body_slot.as_ref() else {
                return Err(freed(node.op));
            };
            let needs: Vec<bool> = body.inputs.iter().map(|e| e.requires_grad).collect();
            let input_grads = profile::span(node.op, Pass::Backward, || {
                (body.backward)(&GradContext::new(&g, &needs))
            })?;
            if input_grads.len() != body.inputs.len() {
                return Err(Error::Backward {
                    detail: format!(
                        "{}'s backward returned {} gradients for {} inputs",
                        node.op,
                        input_grads.len(),
                        body.inputs.len()
                    ),
                });
            }
            for (input, grad) in body.inputs.iter().zip(input_grads) {
                let Some(grad) = grad else { continue };
                if !input.requires_grad {
                    continue;
                }
                if grad.len() != input.shape.numel() {
                    return Err(Error::Backward {
                        detail: format!(
                            "{}'s backward returned {} values for an input of shape {}",
                            node.op,
                            grad.len(),
                            input.shape
                        ),
                    });
                }
                check_finite(node.op, Phase::Backward, &grad).map_err(|e| match e {
                    Error::Anomaly {
                        op,
                        phase,
                        index,
                        value,
                        ..
                    } => Error::Anomaly {
                        op,
                        path: node.path.as_ref().map(|p| p.to_string()),
                        phase,
                        index,
                        value,
                    },
                    other => other,
                })?;
                match pending.get_mut(&input.id) {
                    Some(acc) => acc.iter_mut().zip(&grad).for_each(|(a, b)| *a += b),
                    None => {
                        pending.insert(input.id, grad);
                    }
                }
            }
            if options.keep_intermediate {
                grads.accumulate(t.id, &t.shape, g);
            }
            if !options.retain_graph {
                // Dropped after the lock is released, below.
                let body = body_slot.take();
                drop(body_slot);
                drop(body);
            }
        }
        Ok(())
    }
}

fn freed(op: &str) -> Error {
    Error::Backward {
        detail: format!(
            "the graph through {op} was already freed by an earlier backward; pass \
             BackwardOptions {{ retain_graph: true, .. }} to run backward twice"
        ),
    }
}

/// Every tensor reachable from `root` through inputs that require a gradient, each after all
/// of its inputs (iterative depth-first post-order, so deep graphs cannot overflow the stack).
pub(crate) fn topological_order(root: &Tensor) -> Result<Vec<Edge>> {
    let mut order = Vec::new();
    let mut visited = HashSet::new();
    let mut stack = vec![(Edge::to(root), false)];
    while let Some((t, expanded)) = stack.pop() {
        if expanded {
            order.push(t);
            continue;
        }
        if !visited.insert(t.id) {
            continue;
        }
        let inputs = match &t.node {
            Some(node) => node.inputs().ok_or_else(|| freed(node.op))?,
            None => Vec::new(),
        };
        stack.push((t, true));
        for input in inputs.into_iter().rev() {
            if input.requires_grad && !visited.contains(&input.id) {
                stack.push((input, false));
            }
        }
    }
    Ok(order)
}
