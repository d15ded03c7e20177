//! Which micro-kernel a GEMM runs: the candidates, the default choice per core, and the
//! `VENTRAL_GEMM_KERNEL` override.

use std::fmt;
use std::sync::OnceLock;

use super::blocking::{Blocking, CacheSizes, TileOrder};
use crate::error::{KernelError, Result};
use crate::isa::Isa;

/// A GEMM micro-kernel candidate: an instruction set and a register tile.
///
/// Every candidate sums each element of C over `k` in the same order and in the same KC-deep
/// blocks ([`Blocking::kc`] depends on the machine only), so on one machine all candidates
/// give bit-identical results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GemmKernel {
    /// AVX-512, 16 x 16 tile: one B vector and 16 broadcast A values a step (17 loads per 16
    /// FMAs). Suits cores that issue one 512-bit FMA per cycle (Zen 4).
    Avx512x16x16,
    /// AVX-512, 12 x 32 tile: two B vectors and 12 broadcasts a step (14 loads per 24 FMAs).
    /// For cores with two 512-bit FMA pipes, where the 16 x 16 tile runs out of load slots.
    /// Products of 9 to 16 rows run the 16 x 16 tile instead (12-row panels would pad 16
    /// rows to 24).
    Avx512x12x32,
    /// AVX-512, 8 x 48 tile: three B vectors and 8 broadcasts a step (11 loads per 24 FMAs);
    /// eight rows divide the channel counts of real layers.
    Avx512x8x48,
    /// AVX2 and FMA, 6 x 16 tile (12 of the 16 ymm registers accumulate).
    Avx2x6x16,
    /// AVX2 and FMA, 4 x 24 tile: 12 accumulators, 3 B vectors and 4 broadcasts a step (7
    /// loads per 12 FMAs, against 6 x 16's 8), every ymm register taken; its k loop is
    /// assembly.
    Avx2x4x24,
    /// The portable `wide` kernel, 6 x 8.
    Portable,
}

impl GemmKernel {
    /// Every candidate, in no particular order of speed.
    pub const ALL: [GemmKernel; 6] = [
        GemmKernel::Avx512x16x16,
        GemmKernel::Avx512x12x32,
        GemmKernel::Avx512x8x48,
        GemmKernel::Avx2x6x16,
        GemmKernel::Avx2x4x24,
        GemmKernel::Portable,
    ];

    /// The name `VENTRAL_GEMM_KERNEL` accepts: `avx512-16x16`, `avx512-12x32`, `avx512-8x48`,
    /// `avx2-6x16`, `avx2-4x24`, `portable`.
    pub fn name(self) -> &'static str {
        match self {
            GemmKernel::Avx512x16x16 => "avx512-16x16",
            GemmKernel::Avx512x12x32 => "avx512-12x32",
            GemmKernel::Avx512x8x48 => "avx512-8x48",
            GemmKernel::Avx2x6x16 => "avx2-6x16",
            GemmKernel::Avx2x4x24 => "avx2-4x24",
            GemmKernel::Portable => "portable",
        }
    }

    /// The candidate called `name` (as [`GemmKernel::name`] spells it, any case).
    pub fn from_name(name: &str) -> Option<GemmKernel> {
        let name = name.trim().to_ascii_lowercase();
        GemmKernel::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The instruction set the kernel needs.
    pub fn isa(self) -> Isa {
        match self {
            GemmKernel::Avx512x16x16 | GemmKernel::Avx512x12x32 | GemmKernel::Avx512x8x48 => {
                Isa::Avx512
            }
            GemmKernel::Avx2x6x16 | GemmKernel::Avx2x4x24 => Isa::Avx2Fma,
            GemmKernel::Portable => Isa::Portable,
        }
    }

    /// Rows and columns of the register tile (products of at most 8 rows run the AVX-512
    /// candidates on a 6 x 32 tile instead, and of 9 to 16 rows `avx512-12x32` on the 16 x 16
    /// one, with the same arithmetic).
    pub fn tile(self) -> (usize, usize) {
        match self {
            GemmKernel::Avx512x16x16 => (16, 16),
            GemmKernel::Avx512x12x32 => (12, 32),
            GemmKernel::Avx512x8x48 => (8, 48),
            GemmKernel::Avx2x6x16 => (6, 16),
            GemmKernel::Avx2x4x24 => (4, 24),
            GemmKernel::Portable => (6, 8),
        }
    }

    /// Whether this CPU can run the kernel.
    pub fn is_supported(self) -> bool {
        self.isa().is_supported()
    }

    /// `Ok(self)` if this CPU can run the kernel, else [`KernelError::UnsupportedIsa`].
    ///
    /// # Errors
    /// [`KernelError::UnsupportedIsa`] naming the kernel if the CPU lacks its instruction set.
    pub fn check(self) -> Result<GemmKernel> {
        if self.is_supported() {
            Ok(self)
        } else {
            Err(KernelError::UnsupportedIsa {
                requested: self.name(),
            })
        }
    }

    /// Every candidate this CPU can run; tests iterate over it.
    pub fn available() -> Vec<GemmKernel> {
        GemmKernel::ALL
            .into_iter()
            .filter(|k| k.is_supported())
            .collect()
    }

    /// The kernel [`crate::gemm::gemm`] uses in this process: the one `VENTRAL_GEMM_KERNEL`
    /// names if this CPU runs it, else [`GemmKernel::default_for`] this CPU on
    /// [`Isa::detect`].
    pub fn detect() -> GemmKernel {
        forced().unwrap_or_else(|| GemmKernel::for_isa(Isa::detect()))
    }

    /// The kernel a GEMM on `isa` uses: the forced one if it runs on `isa`, else the default
    /// for this CPU on `isa`.
    pub fn for_isa(isa: Isa) -> GemmKernel {
        match forced() {
            Some(kernel) if kernel.isa() == isa => kernel,
            _ => GemmKernel::default_for(CpuIdentity::detect(), isa).0,
        }
    }

    /// The kernel a convolution's implicit GEMM on `isa` uses: the forced one if it runs on
    /// `isa`, else [`GemmKernel::convolution_default_for`] this CPU.
    pub fn for_convolution(isa: Isa) -> GemmKernel {
        match forced() {
            Some(kernel) if kernel.isa() == isa => kernel,
            _ => GemmKernel::convolution_default_for(CpuIdentity::detect(), isa),
        }
    }

    /// The default kernel of a convolution's implicit GEMM on `isa` for a CPU: the product
    /// default, except where that is `avx512-8x48`: on Intel convolutions run `avx512-12x32`,
    /// on AMD `avx512-16x16`. A convolution's packed weights and one piece of lowered
    /// positions run in the BLIS order (see `MicroKernel::for_convolution`), where the B
    /// micro-panel stays in L1, and 8 x 48's (48 KiB at KC 256) fills a 48 KiB L1d and
    /// overflows a 32 KiB one.
    ///
    /// - On a Xeon with two FMA ports (family 6 model 0xa7), `ventral bench conv` at 1
    ///   thread, two runs each: VGG 128-channel 28x28 forward 15.2-15.3 ms against 16.2-17.1,
    ///   VGG-11 256-channel 8x8 19.3-21.3 against 23.1-24.0, ResNet-20 16-channel 2.6 against
    ///   2.7-2.8; 8 x 48 led on the 32-channel ResNet-20 layer (4.4-4.6 against 5.0-5.4) and
    ///   the ResNet-50 1x1 layer (14.3-15.0 against 15.7-16.0).
    /// - On an EPYC Zen 4 (family 0x19 model 0x11), `ventral bench conv` at 1 thread with
    ///   each tile forced: the Winograd weight gradients ran 0.91x (ResNet-20 32-channel) and
    ///   0.95x (VGG-11 256-channel) as fast on 8 x 48 as on 16 x 16, the ResNet-50 1x1 weight
    ///   gradient 0.88x, the rest level; 12 x 32 ran ResNet-20's 32-channel layer 0.88-0.89x.
    ///   The input gradients that run as products (col2im, pointwise) take the product
    ///   default and gain from 8 x 48 (1.10x on AlexNet's first layer, 1.09x on the 1x1).
    ///
    /// All AVX-512 tiles give the same bits.
    pub fn convolution_default_for(cpu: CpuIdentity, isa: Isa) -> GemmKernel {
        match (GemmKernel::default_for(cpu, isa).0, cpu.vendor) {
            (GemmKernel::Avx512x8x48, Vendor::Amd) => GemmKernel::Avx512x16x16,
            (GemmKernel::Avx512x8x48, _) => GemmKernel::Avx512x12x32,
            (kernel, _) => kernel,
        }
    }

    /// The default kernel on `isa` for a CPU, and why. Deterministic: the same CPU identity
    /// always gives the same kernel.
    ///
    /// - **AMD with AVX-512 (Zen 4, Zen 5)**: `avx512-8x48`, B panel in L1. On an EPYC Zen 4
    ///   (family 0x19 model 0x11, 32 KiB L1d, 1 MiB L2), `ventral bench gemm --candidates`
    ///   ran it fastest on every shape at 1 and 2 threads: 1024^3 and 2048^3 at 108.6-109.4
    ///   GFLOP/s on 1 thread (93-97 % of peak) against 16 x 16's 98.8-99.1, 12 x 32's
    ///   100.8-102.5 and AVX2 6 x 16's 107.6; 16x144x65536 97.7 against 75.0. Alone on
    ///   panels in cache the tiles were closer (8 x 48 96-98 % of peak, 16 x 16 93-95 %):
    ///   most of 16 x 16's loss is in products, where its A panels stream from L2 at one
    ///   broadcast per FMA, 8 x 48's at one per three. Its 48 KiB B micro-panel
    ///   overflows the 32 KiB L1d, yet the A-panel-in-L1 order ran 1024^3 at 106 against
    ///   108.6, so AMD keeps the BLIS order. Convolutions keep 16 x 16
    ///   ([`GemmKernel::convolution_default_for`]). Zen 5 has two full 512-bit FMA pipes,
    ///   where fewer loads per FMA matter more: 12 x 32 (14 loads per 24 FMAs) ran large
    ///   products 10-17 % faster than 16 x 16 there, and whole networks ran slower only
    ///   while it also ran every convolution (VGG-11 trained at 81 against 101 img/s on 1
    ///   thread, EPYC family 0x1A), which here stay on 16 x 16; 8 x 48 was not measured
    ///   on Zen 5.
    /// - **Intel with AVX-512**: `avx512-8x48`. Server cores (Skylake-SP
    ///   Gold/Platinum to Sapphire Rapids) have two 512-bit FMA ports and two load ports, which
    ///   the 16 x 16 tile's broadcasts saturate (the 64 % of peak of issue 14). Interleaved in
    ///   one process on a Xeon with two FMA ports (family 6 model 0xa7), 8 x 48 ran 1.01-1.13x
    ///   as fast as 12 x 32 on 1 thread and 1.02-1.14x on 2 over 1024^3, 2048^3, 64x576x3136,
    ///   128x1152x784, 16x144x65536 and 128x4096x4096 (one 0.99 at 16 rows, where 12 x 32
    ///   runs the 16 x 16 tile): fewer loads per FMA, and 8 rows divide 16, 64 and 128 where
    ///   12 pad 64 to 72. On one-port parts the wider tiles cost nothing, as they need fewer
    ///   loads for the same FMAs. It needs the A panel in L1 ([`GemmKernel::tile_order`]):
    ///   in the BLIS order its 48 KiB B micro-panel would fill the L1d.
    /// - **Any other vendor with AVX-512**: `avx512-12x32`, fewer loads per FMA than 16 x 16,
    ///   in the BLIS order.
    /// - **AVX2 and FMA only** (Haswell to Alder Lake clients, Zen 1-3): `avx2-6x16`. Its
    ///   12 accumulators cover two FMA pipes of 4-5 cycles' latency, and its 8 loads per 12
    ///   FMAs fit the two vector loads a cycle these cores issue, so the 4 x 24 tile's 7 buy
    ///   nothing there, while its 24 KiB B micro-panel (KC 256) crowds a 32 KiB L1d beside
    ///   the A panels streaming past it. Interleaved in one process on an AMD EPYC Zen 3
    ///   (seven shapes from 16x144x65536 to 2048^3, each order twice), 4 x 24 ran 0.94-1.02x
    ///   as fast as 6 x 16 on 1 thread, about 0.98 typically and never ahead beyond the
    ///   noise, and 0.89-1.00x on 2 (its 24-column edges split n less evenly).
    ///   `ventral bench gemm --candidates` times them side by side on any machine.
    /// - **Anything else**: `portable`.
    pub fn default_for(cpu: CpuIdentity, isa: Isa) -> (GemmKernel, &'static str) {
        match isa {
            Isa::Avx512 => match cpu.vendor {
                Vendor::Amd => (
                    GemmKernel::Avx512x8x48,
                    "AMD AVX-512 (Zen 4, Zen 5): fewest loads per FMA, fastest measured on Zen 4",
                ),
                Vendor::Intel => (
                    GemmKernel::Avx512x8x48,
                    "Intel AVX-512: two 512-bit FMA ports, fewest loads per FMA",
                ),
                Vendor::Other => (
                    GemmKernel::Avx512x12x32,
                    "AVX-512 on an unknown vendor: fewer loads per FMA",
                ),
            },
            Isa::Avx2Fma => (GemmKernel::Avx2x6x16, "AVX2 and FMA, no AVX-512"),
            Isa::Portable => (
                GemmKernel::Portable,
                "no AVX2+FMA (or VENTRAL_ISA=portable)",
            ),
        }
    }

    /// The order of the innermost loops for kernels of `isa` on a CPU.
    ///
    /// - **Intel with AVX-512**: [`TileOrder::APanelInL1`]. On a Xeon with two 512-bit FMA
    ///   ports (48 KiB L1d, 2 MiB L2) the 12 x 32 kernel alone, with its panels streaming as
    ///   in a 1024^3 product, ran at 173 GFLOP/s in the BLIS order and 194 with the A panel
    ///   in L1 (the 16 x 16 kernel 142 and 168): the 12 rows of a tile, 4 KiB apart in C,
    ///   share two L1 sets, and down a column every tile's rows do.
    /// - **Everything else**: [`TileOrder::BPanelInL1`], the order the AVX-512 kernels were
    ///   tuned in on Zen 4 and the AVX2 ones on Zen 3 (their L2 of 1 MiB or 512 KiB would
    ///   hold a B block of only 512 or 256 columns).
    pub fn tile_order(isa: Isa, cpu: CpuIdentity) -> TileOrder {
        match (isa, cpu.vendor) {
            (Isa::Avx512, Vendor::Intel) => TileOrder::APanelInL1,
            _ => TileOrder::BPanelInL1,
        }
    }

    /// The cache blocking this kernel uses on this machine.
    pub fn blocking(self) -> Blocking {
        let (mr, nr) = self.tile();
        let order = GemmKernel::tile_order(self.isa(), CpuIdentity::detect());
        Blocking::derive(CacheSizes::detect(), mr, nr, order)
    }

    /// One line saying which kernel [`crate::gemm::gemm`] runs, why, and its blocking, and
    /// which one convolutions run, for benchmarks to print.
    pub fn describe_choice() -> String {
        let kernel = GemmKernel::detect();
        let cpu = CpuIdentity::detect();
        let why = match std::env::var("VENTRAL_GEMM_KERNEL") {
            _ if forced() == Some(kernel) => "forced by VENTRAL_GEMM_KERNEL".to_string(),
            Ok(name) => format!(
                "VENTRAL_GEMM_KERNEL={name} ignored: unknown or not supported here; {}",
                GemmKernel::default_for(cpu, kernel.isa()).1
            ),
            Err(_) => GemmKernel::default_for(cpu, kernel.isa()).1.to_string(),
        };
        let caches = CacheSizes::detect();
        let Blocking {
            kc,
            mc,
            nc,
            order,
            prefetch_next_b,
        } = kernel.blocking();
        let prefetch = if prefetch_next_b { "on" } else { "off" };
        let order = match order {
            TileOrder::BPanelInL1 => "B panel in L1",
            TileOrder::APanelInL1 => "A panel in L1",
        };
        let conv = GemmKernel::for_convolution(kernel.isa());
        format!(
            "gemm kernel {kernel} ({why}; {cpu}); KC {kc}, MC {mc}, NC {nc}, {order}, next-B \
             prefetch {prefetch}, from L1d {} KiB, L2 {} KiB, L3 share {} KiB; convolutions \
             run {conv}, B panel in L1",
            caches.l1d >> 10,
            caches.l2 >> 10,
            caches.l3 >> 10
        )
    }
}

impl fmt::Display for GemmKernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The kernel `VENTRAL_GEMM_KERNEL` names, read once; `None` if unset, unknown or not
/// supported by this CPU.
fn forced() -> Option<GemmKernel> {
    static FORCED: OnceLock<Option<GemmKernel>> = OnceLock::new();
    *FORCED.get_or_init(|| {
        let name = std::env::var("VENTRAL_GEMM_KERNEL").ok()?;
        GemmKernel::from_name(&name).filter(|k| k.is_supported())
    })
}

/// A CPU's maker, from CPUID leaf 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vendor {
    /// `GenuineIntel`.
    Intel,
    /// `AuthenticAMD` (or `HygonGenuine`, a Zen derivative).
    Amd,
    /// Any other vendor, or a CPU without CPUID.
    Other,
}

/// What the default kernel choice looks at: the vendor and the display family and model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuIdentity {
    /// The CPU's maker.
    pub vendor: Vendor,
    /// Display family (base family plus extended family).
    pub family: u32,
    /// Display model (with the extended model for families 6 and 15).
    pub model: u32,
}

impl CpuIdentity {
    /// This CPU, from CPUID leaves 0 and 1 (vendor `Other`, family 0 off x86-64), read once
    /// per process: every GEMM asks, and under a hypervisor each CPUID is a VM exit.
    pub fn detect() -> CpuIdentity {
        static IDENTITY: OnceLock<CpuIdentity> = OnceLock::new();
        *IDENTITY.get_or_init(CpuIdentity::read)
    }

    /// CPUID leaves 0 and 1, decoded.
    fn read() -> CpuIdentity {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::__cpuid;
            let leaf0 = __cpuid(0);
            let mut name = [0u8; 12];
            name[..4].copy_from_slice(&leaf0.ebx.to_le_bytes());
            name[4..8].copy_from_slice(&leaf0.edx.to_le_bytes());
            name[8..].copy_from_slice(&leaf0.ecx.to_le_bytes());
            let vendor = match &name {
                b"GenuineIntel" => Vendor::Intel,
                b"AuthenticAMD" | b"HygonGenuine" => Vendor::Amd,
                _ => Vendor::Other,
            };
            let eax = if leaf0.eax >= 1 { __cpuid(1).eax } else { 0 };
            let base_family = (eax >> 8) & 0xF;
            let family = if base_family == 0xF {
                base_family + ((eax >> 20) & 0xFF)
            } else {
                base_family
            };
            let mut model = (eax >> 4) & 0xF;
            if base_family == 0x6 || base_family == 0xF {
                model |= ((eax >> 16) & 0xF) << 4;
            }
            CpuIdentity {
                vendor,
                family,
                model,
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            CpuIdentity {
                vendor: Vendor::Other,
                family: 0,
                model: 0,
            }
        }
    }
}

impl fmt::Display for CpuIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} family {:#x} model {:#x}",
            self.vendor, self.family, self.model
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cpu(vendor: Vendor, family: u32, model: u32) -> CpuIdentity {
        CpuIdentity {
            vendor,
            family,
            model,
        }
    }

    #[test]
    fn default_choice_per_core() {
        let pick = |c: CpuIdentity, isa: Isa| GemmKernel::default_for(c, isa).0;
        // Zen 4 (family 0x19 model 0x11, EPYC 9004), Zen 5 (0x1A model 0x02, EPYC 9005),
        // Sapphire Rapids (6, 0x8F), Emerald Rapids (6, 0xCF).
        assert_eq!(
            pick(cpu(Vendor::Amd, 0x19, 0x11), Isa::Avx512),
            GemmKernel::Avx512x8x48
        );
        assert_eq!(
            pick(cpu(Vendor::Amd, 0x1A, 0x02), Isa::Avx512),
            GemmKernel::Avx512x8x48
        );
        assert_eq!(
            pick(cpu(Vendor::Other, 0, 0), Isa::Avx512),
            GemmKernel::Avx512x12x32
        );
        assert_eq!(
            pick(cpu(Vendor::Intel, 6, 0x8F), Isa::Avx512),
            GemmKernel::Avx512x8x48
        );
        assert_eq!(
            pick(cpu(Vendor::Intel, 6, 0xCF), Isa::Avx512),
            GemmKernel::Avx512x8x48
        );
        // Without AVX-512 the instruction set decides.
        assert_eq!(
            pick(cpu(Vendor::Amd, 0x17, 0x31), Isa::Avx2Fma),
            GemmKernel::Avx2x6x16
        );
        assert_eq!(
            pick(cpu(Vendor::Other, 0, 0), Isa::Portable),
            GemmKernel::Portable
        );
        // Every default runs on the instruction set it was chosen for.
        for isa in [Isa::Avx512, Isa::Avx2Fma, Isa::Portable] {
            for c in [
                cpu(Vendor::Amd, 0x19, 0x11),
                cpu(Vendor::Amd, 0x1A, 0x02),
                cpu(Vendor::Intel, 6, 0x8F),
                cpu(Vendor::Other, 0, 0),
            ] {
                assert_eq!(pick(c, isa).isa(), isa, "{c} on {isa:?}");
            }
        }
    }

    #[test]
    fn convolutions_leave_8x48_to_products() {
        let intel = cpu(Vendor::Intel, 6, 0x8F);
        assert_eq!(
            GemmKernel::convolution_default_for(intel, Isa::Avx512),
            GemmKernel::Avx512x12x32
        );
        for c in [intel, cpu(Vendor::Amd, 0x19, 0x11)] {
            for isa in [Isa::Avx2Fma, Isa::Portable] {
                assert_eq!(
                    GemmKernel::convolution_default_for(c, isa),
                    GemmKernel::default_for(c, isa).0
                );
            }
        }
        // Intel's convolutions run 12 x 32, AMD's (Zen 4 and Zen 5) 16 x 16.
        for amd in [cpu(Vendor::Amd, 0x19, 0x11), cpu(Vendor::Amd, 0x1A, 0x02)] {
            assert_eq!(
                GemmKernel::convolution_default_for(amd, Isa::Avx512),
                GemmKernel::Avx512x16x16
            );
        }
        assert_eq!(
            GemmKernel::convolution_default_for(cpu(Vendor::Other, 0, 0), Isa::Avx512),
            GemmKernel::Avx512x12x32
        );
    }

    #[test]
    fn only_intel_avx512_keeps_the_a_panel_in_l1() {
        let order = |c: CpuIdentity, isa: Isa| GemmKernel::tile_order(isa, c);
        assert_eq!(
            order(cpu(Vendor::Intel, 6, 0x8F), Isa::Avx512),
            TileOrder::APanelInL1
        );
        assert_eq!(
            order(cpu(Vendor::Intel, 6, 0x8F), Isa::Avx2Fma),
            TileOrder::BPanelInL1
        );
        assert_eq!(
            order(cpu(Vendor::Amd, 0x19, 0x11), Isa::Avx512),
            TileOrder::BPanelInL1
        );
    }

    #[test]
    fn names_round_trip() {
        for kernel in GemmKernel::ALL {
            assert_eq!(GemmKernel::from_name(kernel.name()), Some(kernel));
        }
        assert_eq!(
            GemmKernel::from_name(" AVX512-12x32 "),
            Some(GemmKernel::Avx512x12x32)
        );
        assert_eq!(GemmKernel::from_name("avx512"), None);
    }
}
