//! Cache blocking from the machine: the KC / MC / NC of the five BLIS loops, derived from the
//! cache sizes the OS reports, with all the arithmetic in [`Blocking::derive`].

use std::sync::OnceLock;

/// The data caches one core sees, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheSizes {
    /// Level-1 data cache of one core.
    pub l1d: usize,
    /// Level-2 cache of one core (its share, if the OS reports it shared).
    pub l2: usize,
    /// This core's share of the last-level cache (level 3, or level 2 if there is none).
    pub l3: usize,
}

impl CacheSizes {
    /// What the blocking assumed before it was derived: a 32 KiB L1d, 1 MiB L2 and 4 MiB of
    /// L3 per core (Zen 2–4, Skylake server); used where the OS reports nothing.
    pub const FALLBACK: CacheSizes = CacheSizes {
        l1d: 32 << 10,
        l2: 1 << 20,
        l3: 4 << 20,
    };

    /// This machine's caches, read once from `/sys/devices/system/cpu/cpu0/cache` (Linux),
    /// with [`CacheSizes::FALLBACK`] for any level the OS does not report.
    pub fn detect() -> CacheSizes {
        static SIZES: OnceLock<CacheSizes> = OnceLock::new();
        *SIZES.get_or_init(|| read_sysfs().unwrap_or(CacheSizes::FALLBACK))
    }
}

/// Reads cpu0's caches from sysfs; `None` if the directory is missing or has no L1d.
fn read_sysfs() -> Option<CacheSizes> {
    let mut sizes = CacheSizes {
        l1d: 0,
        l2: 0,
        l3: 0,
    };
    for index in 0..8 {
        let dir = format!("/sys/devices/system/cpu/cpu0/cache/index{index}");
        let read = |name: &str| std::fs::read_to_string(format!("{dir}/{name}")).ok();
        let Some(level) = read("level") else { break };
        let kind = read("type").unwrap_or_default();
        let Some(size) = read("size").as_deref().and_then(parse_size) else {
            continue;
        };
        let sharing = read("shared_cpu_list")
            .as_deref()
            .map_or(1, count_cpus)
            .max(1);
        match (level.trim(), kind.trim()) {
            ("1", "Data" | "Unified") => sizes.l1d = size,
            ("2", "Unified" | "Data") => sizes.l2 = size / sharing,
            ("3", "Unified" | "Data") => sizes.l3 = size / sharing,
            _ => {}
        }
    }
    if sizes.l1d == 0 {
        return None;
    }
    let fallback = CacheSizes::FALLBACK;
    if sizes.l2 == 0 {
        sizes.l2 = fallback.l2;
    }
    if sizes.l3 == 0 {
        sizes.l3 = sizes.l2.max(fallback.l3);
    }
    Some(sizes)
}

/// `"48K"`, `"2048K"`, `"32M"` or a plain byte count, in bytes.
fn parse_size(text: &str) -> Option<usize> {
    let text = text.trim();
    let (digits, scale) = match text.as_bytes().last()? {
        b'K' | b'k' => (&text[..text.len() - 1], 1 << 10),
        b'M' | b'm' => (&text[..text.len() - 1], 1 << 20),
        b'G' | b'g' => (&text[..text.len() - 1], 1 << 30),
        _ => (text, 1),
    };
    digits.parse::<usize>().ok().map(|v| v * scale)
}

/// The number of CPUs in a sysfs list such as `"0-3,8-11"`.
fn count_cpus(list: &str) -> usize {
    list.trim()
        .split(',')
        .filter(|part| !part.is_empty())
        .map(|part| match part.split_once('-') {
            Some((lo, hi)) => match (lo.parse::<usize>(), hi.parse::<usize>()) {
                (Ok(lo), Ok(hi)) if hi >= lo => hi - lo + 1,
                _ => 1,
            },
            None => 1,
        })
        .sum()
}

/// Which packed micro-panel stays in L1 while the micro-kernel sweeps a block of C: the
/// order of the two innermost loops. Either order computes every tile from the same panels,
/// so the choice never changes a bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TileOrder {
    /// For each B micro-panel (`KC x NR`, kept in L1), every A micro-panel of the packed A
    /// block, streaming from L2: the BLIS order. Consecutive tiles run down a column of C.
    BPanelInL1,
    /// For each A micro-panel (`MR x KC`, kept in L1), every B micro-panel of an L2-sized
    /// packed B block, streaming from L2. Consecutive tiles run along a row of C, so the rows
    /// of successive tiles do not all fall in the same L1 sets when C's row stride is a
    /// multiple of 4 KiB (1024, 2048 or 4096 columns), and the B stream is the one the
    /// core's prefetchers follow.
    APanelInL1,
}

/// The block sizes of the five loops for one micro-kernel tile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Blocking {
    /// Depth of one packed block (LOOP 4). A function of the machine only, never of the
    /// tile, so every candidate micro-kernel sums each element over the same blocks of `k`.
    pub kc: usize,
    /// Rows of one packed A block (LOOP 3); a multiple of the tile's rows.
    pub mc: usize,
    /// Columns of one packed B block (LOOP 5); a multiple of the tile's columns.
    pub nc: usize,
    /// The order of the two innermost loops.
    pub order: TileOrder,
    /// Whether, when a single block of rows uses each packed B block once (m <= MC), the
    /// micro-kernels prefetch the next block's rows into L2 while they compute (with the A
    /// panel in L1, only in products one KC block deep: see `driver::gemm_serial`).
    pub prefetch_next_b: bool,
}

/// Bytes in an f32.
const F32: usize = 4;

impl Blocking {
    /// The deepest KC: deeper blocks halve no more loads and stores of C than 256 already
    /// does (C is read and written once per 256 FMAs an element), while they lengthen the
    /// panels that must stay in L1.
    pub const KC_MAX: usize = 256;
    /// The shallowest KC, for very small L1 caches.
    pub const KC_MIN: usize = 64;
    /// The smallest L2 with which the micro-kernels prefetch the next packed B block (see
    /// [`Blocking::derive`]).
    pub const PREFETCH_L2_MIN: usize = 1 << 20;

    /// The blocking for an `mr x nr` tile on a core with `caches`:
    ///
    /// - **KC** (machine only): a 16-column B micro-panel (`KC x 16` floats, the AVX-512
    ///   16 x 16 tile's) fills at most half of L1d, leaving the other half to the A
    ///   micro-panel streaming past it and the C tile: `KC = L1d / (2 * 16 * 4 B)`, rounded
    ///   down to a multiple of 16 and clamped to `KC_MIN..=KC_MAX`. 32 KiB and 48 KiB both
    ///   give 256 (the depth the 16 x 16 tile was tuned with on Zen 4). A 32-column tile's
    ///   panel then fills 32 KiB: in a 48 KiB L1d beside a 12 KiB A panel. KC stays the same
    ///   for every tile so results stay bit-identical across tiles.
    /// - **MC**: the packed A block (`MC x KC`) fills at most half of L2, the other half
    ///   holding the B micro-panels streaming through and C; rounded down to a multiple of
    ///   `mr`, and at most 1024 rows.
    /// - **NC**: with [`TileOrder::BPanelInL1`], the packed B block (`KC x NC`) fills at most
    ///   half of this core's share of L3; rounded down to a multiple of `nr`, between 1024
    ///   and 8192 columns. With [`TileOrder::APanelInL1`] every A micro-panel sweeps the
    ///   whole block, which must then stay in L2: at most half of it, and at least `nr`.
    /// - **Prefetching the next B block** pays with an L2 of at least [`Self::PREFETCH_L2_MIN`].
    ///   On a Zen 4 (1 MiB L2) it took 16x144x65536 from 52 to 69 GFLOP/s at 1 thread. On a
    ///   Zen 3 (512 KiB L2), where the block in use (590-924 KiB) already overflows L2, the
    ///   prefetched lines only evict it: without them the single-row-block shapes
    ///   (16x144x65536 to 128x4096x4096) ran 1.01-1.14x as fast at 1 and 2 threads.
    pub fn derive(caches: CacheSizes, mr: usize, nr: usize, order: TileOrder) -> Blocking {
        let kc = (caches.l1d / (2 * 16 * F32) / 16 * 16).clamp(Self::KC_MIN, Self::KC_MAX);
        let mc = (caches.l2 / 2 / (kc * F32)).min(1024);
        let mc = (mc / mr * mr).max(mr);
        let nc = match order {
            TileOrder::BPanelInL1 => (caches.l3 / 2 / (kc * F32)).clamp(1024, 8192),
            TileOrder::APanelInL1 => caches.l2 / 2 / (kc * F32),
        };
        let nc = (nc / nr * nr).max(nr);
        Blocking {
            kc,
            mc,
            nc,
            order,
            prefetch_next_b: caches.l2 >= Self::PREFETCH_L2_MIN,
        }
    }
}

/// The depth of the blocks that cut a reduction of length `k` into equal blocks no deeper
/// than `kc`: 576 = 3 x 192 rather than 256 + 256 + 64, so no block is a sliver that loads
/// and stores its tiles of C for a few steps of work. A function of `k` and the machine's
/// KC only, so every candidate and thread count still sums over the same blocks.
pub(crate) fn even_depth(k: usize, kc: usize) -> usize {
    k.div_ceil(k.div_ceil(kc).max(1)).max(1)
}

/// The width of the blocks that cut `n` columns into equal blocks of about `nc`, rounded up
/// to `unit`: a block may be up to `nc / 16` wider than `nc`, so that a remainder of a few
/// columns joins the others instead of making a block of its own (1024 columns as one block
/// where NC is 1008, not 1008 + 16). Such a sliver costs as much packing of A as a full block
/// and runs narrow, inefficient tiles: on a Xeon (two 512-bit FMA ports) 1024^3 ran 1.03x
/// and 2048^3 1.02x as fast at 1 thread in one block per 1024 columns (interleaved in one
/// process). Where the rounding would take a block past that slack, the blocks are `nc`
/// wide as before. A choice of speed only: every element is summed the same way in any
/// block.
pub(crate) fn even_width(n: usize, nc: usize, unit: usize) -> usize {
    let nc = nc.max(1);
    let widest = nc + nc / 16;
    let width = n.div_ceil(n.div_ceil(widest).max(1)).div_ceil(unit.max(1)) * unit.max(1);
    if width <= widest { width } else { nc }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cache sizes from each vendor's published specifications (per core; the L3 shares are
    /// the slice per core of a fully populated part).
    const CPUS: [(&str, CacheSizes); 5] = [
        // AMD Zen 4 (EPYC 9004 / Ryzen 7000): 32 KiB L1d, 1 MiB L2, 32 MiB L3 per 8 cores.
        (
            "Zen 4",
            CacheSizes {
                l1d: 32 << 10,
                l2: 1 << 20,
                l3: 4 << 20,
            },
        ),
        // Intel Sapphire Rapids: 48 KiB L1d, 2 MiB L2, 1.875 MiB L3 per core.
        (
            "Sapphire Rapids",
            CacheSizes {
                l1d: 48 << 10,
                l2: 2 << 20,
                l3: 1920 << 10,
            },
        ),
        // Intel Skylake client (i7-6700): 32 KiB L1d, 256 KiB L2, 2 MiB L3 per core.
        (
            "Skylake client",
            CacheSizes {
                l1d: 32 << 10,
                l2: 256 << 10,
                l3: 2 << 20,
            },
        ),
        // Arm Neoverse N1 (Graviton 2): 64 KiB L1d, 1 MiB L2, 32 MiB SLC over 64 cores.
        (
            "Neoverse N1",
            CacheSizes {
                l1d: 64 << 10,
                l2: 1 << 20,
                l3: 512 << 10,
            },
        ),
        // AMD Zen 5 (EPYC 9005): 48 KiB L1d, 1 MiB L2, 32 MiB L3 per 8 cores.
        (
            "Zen 5",
            CacheSizes {
                l1d: 48 << 10,
                l2: 1 << 20,
                l3: 4 << 20,
            },
        ),
    ];

    #[test]
    fn blocks_fit_their_cache_level_and_the_tile() {
        for (cpu, caches) in CPUS {
            let mut kcs = Vec::new();
            // Every candidate's tile, and the 6 x 32 one AVX-512 products of few rows run.
            let tiles = crate::gemm::GemmKernel::ALL.map(|kernel| kernel.tile());
            for (mr, nr) in tiles.into_iter().chain([(6, 32)]) {
                for order in [TileOrder::BPanelInL1, TileOrder::APanelInL1] {
                    let Blocking { kc, mc, nc, .. } = Blocking::derive(caches, mr, nr, order);
                    let what =
                        format!("{cpu}, {mr}x{nr} tile, {order:?}: KC {kc}, MC {mc}, NC {nc}");
                    assert!(mc % mr == 0 && mc >= mr, "{what}: MC not a multiple of MR");
                    assert!(nc % nr == 0 && nc >= nr, "{what}: NC not a multiple of NR");
                    assert!(kc % 16 == 0 && kc >= Blocking::KC_MIN, "{what}");
                    // A 16-column B micro-panel and a 16-row A micro-panel fit L1d together.
                    assert!(
                        2 * 16 * kc * F32 <= caches.l1d,
                        "{what}: panels overflow L1d"
                    );
                    // The packed A block fits half of L2.
                    assert!(
                        mc * kc * F32 <= caches.l2 / 2,
                        "{what}: A block overflows L2"
                    );
                    match order {
                        // The packed B block fits this core's share of L3, or is the
                        // 1024-column floor.
                        TileOrder::BPanelInL1 => assert!(
                            kc * nc * F32 <= caches.l3 / 2 || nc <= 1024,
                            "{what}: B block overflows L3"
                        ),
                        // Every A panel sweeps the whole B block: it fits half of L2.
                        TileOrder::APanelInL1 => assert!(
                            kc * nc * F32 <= caches.l2 / 2 || nc == nr,
                            "{what}: B block overflows L2"
                        ),
                    }
                    kcs.push(kc);
                }
            }
            // KC depends on the machine only: every tile sums over the same blocks of k.
            assert!(kcs.windows(2).all(|w| w[0] == w[1]), "{cpu}: KC {kcs:?}");
        }
    }

    #[test]
    fn known_cpus_get_the_expected_depth() {
        // KC = L1d / 128 B rounded down to 16, clamped to 64..=256 (see `derive`).
        let kc = |caches: CacheSizes| Blocking::derive(caches, 16, 16, TileOrder::BPanelInL1).kc;
        assert_eq!(kc(CPUS[0].1), 256); // 32768 / 128 = 256
        assert_eq!(kc(CPUS[1].1), 256); // 49152 / 128 = 384 -> clamped
        assert_eq!(kc(CPUS[3].1), 256); // 65536 / 128 = 512 -> clamped
        let tiny = CacheSizes {
            l1d: 16 << 10,
            ..CPUS[2].1
        };
        assert_eq!(kc(tiny), 128); // 16384 / 128 = 128
    }

    #[test]
    fn only_cores_with_a_large_l2_prefetch_the_next_b_block() {
        let prefetch = |caches: CacheSizes| {
            Blocking::derive(caches, 6, 16, TileOrder::BPanelInL1).prefetch_next_b
        };
        let by_cpu: Vec<(&str, bool)> = CPUS.iter().map(|&(cpu, c)| (cpu, prefetch(c))).collect();
        assert_eq!(
            by_cpu,
            [
                ("Zen 4", true),
                ("Sapphire Rapids", true),
                ("Skylake client", false),
                ("Neoverse N1", true),
                ("Zen 5", true),
            ]
        );
        let zen3 = CacheSizes {
            l1d: 32 << 10,
            l2: 512 << 10,
            l3: 16 << 20,
        };
        assert!(!prefetch(zen3));
    }

    #[test]
    fn parses_sysfs_text() {
        assert_eq!(parse_size("48K\n"), Some(48 << 10));
        assert_eq!(parse_size("32M"), Some(32 << 20));
        assert_eq!(parse_size("1024"), Some(1024));
        assert_eq!(parse_size("big"), None);
        assert_eq!(count_cpus("0-1\n"), 2);
        assert_eq!(count_cpus("0-3,8-11"), 8);
        assert_eq!(count_cpus("5"), 1);
    }

    #[test]
    fn even_depth_cuts_a_reduction_into_equal_blocks() {
        assert_eq!(even_depth(576, 256), 192);
        assert_eq!(even_depth(512, 256), 256);
        assert_eq!(even_depth(1152, 256), 231);
        assert_eq!(even_depth(1, 256), 1);
        for k in 1..2000 {
            let depth = even_depth(k, 256);
            // As few blocks as KC allows, none deeper than KC, the last not a sliver.
            assert!(depth <= 256, "k {k}");
            assert_eq!(k.div_ceil(depth), k.div_ceil(256), "k {k}");
            assert!(k - (k.div_ceil(depth) - 1) * depth >= depth / 2, "k {k}");
        }
    }

    /// Blocks cover every column in as few blocks as the slack allows, each at most a
    /// sixteenth (plus the rounding) wider than NC and a multiple of the unit.
    #[test]
    fn column_blocks_absorb_small_remainders() {
        assert_eq!(even_width(1024, 1008, 16), 1024);
        assert_eq!(even_width(2048, 1008, 16), 1024);
        assert_eq!(even_width(3136, 1008, 16), 1056);
        assert_eq!(even_width(784, 1008, 16), 784);
        assert_eq!(even_width(7, 1008, 16), 16);
        for n in [1, 7, 17, 63, 65, 1000, 1071, 1072, 2100, 3136, 4096, 65536] {
            for (nc, unit) in [(1008, 16), (1024, 32), (96, 48), (1024, 6)] {
                let width = even_width(n, nc, unit);
                let what = format!("n {n}, NC {nc}, unit {unit}: width {width}");
                if width != nc {
                    assert!(width.is_multiple_of(unit) && width > 0, "{what}");
                    assert!(width <= nc + nc / 16, "{what}");
                    // As few blocks as the slack allows.
                    assert_eq!(n.div_ceil(width), n.div_ceil(nc + nc / 16), "{what}");
                }
                assert!(
                    n.div_ceil(width) <= n.div_ceil(nc),
                    "{what}: more blocks than NC gives"
                );
            }
        }
    }
}
