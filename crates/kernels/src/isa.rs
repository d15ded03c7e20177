//! Which instruction set the kernels run on: detected once, cached, overridable.

use std::sync::OnceLock;

use crate::error::{KernelError, Result};

/// An instruction-set path the kernels can take.
///
/// [`Isa::detect`] picks the fastest one this CPU supports at run time, so a plain
/// `cargo build --release` reaches full speed without `RUSTFLAGS`. The environment variable
/// `VENTRAL_ISA=portable` forces the portable path (read once per process); tests run every
/// available path explicitly through the `*_on` entry points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Isa {
    /// x86-64 with AVX-512F: `core::arch` micro-kernels on 512-bit registers. On CPUs that
    /// split 512-bit operations in two (AMD Zen 4) the FMA rate equals AVX2's, but 32 registers
    /// allow a larger register tile and fewer loads per FMA.
    Avx512,
    /// x86-64 with AVX2 and FMA: hand-written `core::arch` micro-kernels.
    Avx2Fma,
    /// Any CPU: micro-kernels written with the `wide` crate (its width is chosen at compile time).
    Portable,
}

impl Isa {
    /// The instruction set the kernels use by default in this process.
    ///
    /// Detected on first call and cached. `VENTRAL_ISA=portable` forces [`Isa::Portable`];
    /// `VENTRAL_ISA=avx2` caps the choice at AVX2+FMA (falling back to portable if the CPU
    /// lacks it).
    pub fn detect() -> Isa {
        static CHOICE: OnceLock<Isa> = OnceLock::new();
        *CHOICE.get_or_init(|| {
            let forced = std::env::var("VENTRAL_ISA").unwrap_or_default();
            match forced.trim().to_ascii_lowercase().as_str() {
                "portable" | "scalar" | "generic" => Isa::Portable,
                "avx2" if Isa::Avx2Fma.is_supported() => Isa::Avx2Fma,
                "avx2" => Isa::Portable,
                _ => Isa::best_available(),
            }
        })
    }

    /// The fastest instruction set this CPU supports, ignoring `VENTRAL_ISA`.
    pub fn best_available() -> Isa {
        Isa::available()[0]
    }

    /// Every instruction set this CPU can run, best first; tests iterate over it.
    pub fn available() -> Vec<Isa> {
        [Isa::Avx512, Isa::Avx2Fma, Isa::Portable]
            .into_iter()
            .filter(|isa| isa.is_supported())
            .collect()
    }

    /// Whether this CPU can run the path.
    pub fn is_supported(self) -> bool {
        match self {
            Isa::Portable => true,
            Isa::Avx2Fma => avx2_fma_supported(),
            Isa::Avx512 => avx512_supported(),
        }
    }

    /// A short lowercase name, as accepted by `VENTRAL_ISA`.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Avx512 => "avx512",
            Isa::Avx2Fma => "avx2",
            Isa::Portable => "portable",
        }
    }

    /// `Ok(self)` if the CPU supports this path, else [`KernelError::UnsupportedIsa`].
    pub fn check(self) -> Result<Isa> {
        if self.is_supported() {
            Ok(self)
        } else {
            Err(KernelError::UnsupportedIsa {
                requested: self.name(),
            })
        }
    }
}

#[cfg(target_arch = "x86_64")]
fn avx2_fma_supported() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

#[cfg(not(target_arch = "x86_64"))]
fn avx2_fma_supported() -> bool {
    false
}

#[cfg(target_arch = "x86_64")]
fn avx512_supported() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
}

#[cfg(not(target_arch = "x86_64"))]
fn avx512_supported() -> bool {
    false
}
