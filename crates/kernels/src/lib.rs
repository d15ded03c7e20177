//! Ventral's compute kernels: hand-vectorised, multithreaded f32 routines on slices.
//!
//! This crate is the only home of `unsafe` SIMD in Ventral. Every routine has a safe,
//! slice-based API that validates its arguments once and returns [`KernelError`] on bad
//! input. The instruction set is detected at run time ([`Isa::detect`]): AVX2+FMA
//! micro-kernels on x86-64 CPUs that have them, portable `wide` code everywhere else, so a
//! plain `cargo build --release` runs at full speed.
//!
//! Threads come from the current rayon pool; below a work threshold a routine stays on the
//! calling thread. Results never depend on the thread count.
//!
//! # Test and benchmark tools
//! `alloc_count` (a counting global allocator), `peak` (the CPU's FMA peak) and `peer`
//! (matrixmultiply and a lowered convolution to compare against) are not part of the default
//! API: they exist only with the `bench-tools` feature, which benchmarks, `ventral bench` and
//! memory tests enable.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

#[cfg(feature = "bench-tools")]
pub mod alloc_count;
pub mod conv;
pub mod dropout;
pub mod elementwise;
mod error;
pub mod gemm;
mod isa;
pub mod norm;
#[cfg(feature = "bench-tools")]
pub mod peak;
#[cfg(feature = "bench-tools")]
pub mod peer;
pub mod pool;
pub mod reduce;
pub mod rng;
pub mod shape;
pub mod softmax;
mod spare;
#[cfg(test)]
mod test_data;
mod together;

pub use error::{KernelError, Result};
pub use isa::Isa;
