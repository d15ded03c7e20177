//! Layers with PyTorch's names, semantics and defaults. Each is a plain struct, a
//! constructor and a [`crate::Module`] impl, one small file per family.

mod activation;
mod batch_norm;
mod conv;
mod dropout;
mod flatten;
pub mod fused;
mod gradcheck_cases;
mod linear;
mod lrn;
mod maxout;
mod pool;
mod sequential;

pub use activation::{ELU, LeakyReLU, PReLU, ReLU, Sigmoid, Tanh};
pub use batch_norm::{BatchNorm, BatchNorm1d, BatchNorm2d, BatchNormConfig};
pub use conv::Conv2d;
pub use dropout::Dropout;
pub use flatten::Flatten;
pub use gradcheck_cases::gradcheck_cases;
pub use linear::Linear;
pub use lrn::LocalResponseNorm;
pub use maxout::Maxout;
pub use pool::{AdaptiveAvgPool2d, AvgPool2d, MaxPool2d};
pub use sequential::{ChildForward, Sequential};

/// Formats a float as Python's `repr` does, for PyTorch-style descriptions: `1.0`, `0.1`,
/// `1e-05`.
pub(crate) fn py_float(x: f32) -> String {
    let a = x.abs();
    if a != 0.0 && a.is_finite() && !(1e-4..1e16).contains(&a) {
        // Rust gives `1e-5`; Python pads the exponent to two digits: `1e-05`.
        let s = format!("{x:e}");
        match s.split_once('e') {
            Some((m, e)) => {
                let (sign, digits) = e.strip_prefix('-').map_or(("+", e), |d| ("-", d));
                format!("{m}e{sign}{digits:0>2}")
            }
            None => s,
        }
    } else {
        let s = format!("{x}");
        if s.contains(['.', 'e', 'N', 'i']) {
            s
        } else {
            s + ".0"
        }
    }
}

/// Python's `True` / `False`.
pub(crate) fn py_bool(b: bool) -> &'static str {
    if b { "True" } else { "False" }
}

#[cfg(test)]
mod tests {
    use super::py_float;

    #[test]
    fn floats_print_like_python() {
        assert_eq!(py_float(1e-5), "1e-05");
        assert_eq!(py_float(0.1), "0.1");
        assert_eq!(py_float(1.0), "1.0");
        assert_eq!(py_float(0.0001), "0.0001");
        assert_eq!(py_float(2.0), "2.0");
    }
}
