//! A chain of modules, named `0`, `1`, … like PyTorch's `nn.Sequential`.

use ventral_autograd::Tensor;

use super::{BatchNorm2d, Conv2d, ReLU, fused};
use crate::error::Result;
use crate::module::{Module, forward_named};

/// How a container runs one child: `(child, name, input)`. [`forward_named`] by default; a
/// model zoo can put its own in (e.g. one that also records a row of a summary table).
pub type ChildForward = fn(&dyn Module, &str, &Tensor) -> Result<Tensor>;

/// Modules applied in order; child `i` is named `i` in state dicts and error paths.
///
/// # Shapes
/// The first child's input to the last child's output.
pub struct Sequential {
    children: Vec<Box<dyn Module>>,
    forward_child: ChildForward,
}

impl Default for Sequential {
    fn default() -> Self {
        Sequential {
            children: Vec::new(),
            forward_child: forward_named,
        }
    }
}

impl Sequential {
    /// An empty chain.
    pub fn new() -> Self {
        Self::default()
    }

    /// The chain running each child through `forward_child` instead of [`forward_named`].
    pub fn forwarding_through(mut self, forward_child: ChildForward) -> Self {
        self.forward_child = forward_child;
        self
    }

    /// The chain with `module` appended.
    pub fn push(mut self, module: impl Module + 'static) -> Self {
        self.children.push(Box::new(module));
        self
    }

    /// Appends a boxed module.
    pub fn push_boxed(&mut self, module: Box<dyn Module>) {
        self.children.push(module);
    }

    /// Number of children.
    pub fn len(&self) -> usize {
        self.children.len()
    }

    /// Whether there are no children.
    pub fn is_empty(&self) -> bool {
        self.children.is_empty()
    }

    /// The children, in order.
    pub fn children(&self) -> &[Box<dyn Module>] {
        &self.children
    }
}

impl Sequential {
    /// Children `i..` run as one fused convolution when they are `Conv2d → BatchNorm2d →
    /// ReLU`, `Conv2d → BatchNorm2d` or `Conv2d → ReLU` and [`fused::conv_bn_relu`] applies:
    /// the output and how many children it covers.
    fn fused_at(&self, i: usize, x: &Tensor) -> Result<Option<(Tensor, usize)>> {
        if !fused::fusion_enabled() {
            return Ok(None);
        }
        let child = |j: usize| self.children.get(j).and_then(|c| c.as_any());
        let Some(conv) = child(i).and_then(|c| c.downcast_ref::<Conv2d>()) else {
            return Ok(None);
        };
        let bn = child(i + 1).and_then(|c| c.downcast_ref::<BatchNorm2d>());
        let relu_at = i + 1 + usize::from(bn.is_some());
        let relu = child(relu_at).is_some_and(|c| c.is::<ReLU>());
        let fused = fused::conv_bn_relu(conv, bn, relu, x)
            .map_err(|e| e.in_layer(&i.to_string(), &conv.describe()))?;
        Ok(fused.map(|y| (y, relu_at - i + usize::from(relu))))
    }

    /// Children `i` and `i + 1` run as one op when they are `BatchNorm2d → ReLU` and
    /// [`fused::bn_relu`] applies (in training too: the same bits): the output.
    fn bn_relu_at(&self, i: usize, x: &Tensor) -> Result<Option<Tensor>> {
        let child = |j: usize| self.children.get(j).and_then(|c| c.as_any());
        let Some(bn) = child(i).and_then(|c| c.downcast_ref::<BatchNorm2d>()) else {
            return Ok(None);
        };
        if !child(i + 1).is_some_and(|c| c.is::<ReLU>()) {
            return Ok(None);
        }
        fused::bn_relu(bn, x).map_err(|e| e.in_layer(&i.to_string(), &bn.describe()))
    }
}

impl Module for Sequential {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut y = x.clone();
        let mut i = 0;
        while i < self.children.len() {
            if let Some((fused, used)) = self.fused_at(i, &y)? {
                y = fused;
                i += used;
                continue;
            }
            if let Some(fused) = self.bn_relu_at(i, &y)? {
                y = fused;
                i += 2;
                continue;
            }
            y = (self.forward_child)(self.children[i].as_ref(), &i.to_string(), &y)?;
            i += 1;
        }
        Ok(y)
    }

    fn for_each_child(&mut self, f: &mut dyn FnMut(&str, &mut dyn Module)) {
        for (i, child) in self.children.iter_mut().enumerate() {
            f(&i.to_string(), child.as_mut());
        }
    }

    fn describe(&self) -> String {
        format!("Sequential({} modules)", self.children.len())
    }
}
