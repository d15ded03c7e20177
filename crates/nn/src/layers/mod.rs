//! Layers with PyTorch's names, semantics and defaults. Each is a plain struct, a
//! constructor and a [`crate::Module`] impl.

mod activation;
mod conv;
mod flatten;
mod linear;
mod pool;
mod sequential;

pub use activation::{ReLU, Sigmoid, Tanh};
pub use conv::Conv2d;
pub use flatten::Flatten;
pub use linear::Linear;
pub use pool::MaxPool2d;
pub use sequential::Sequential;
