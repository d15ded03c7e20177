//! Scalar f32 transcendentals written so that LLVM can vectorise a loop that calls them.
//!
//! `std`'s `f32::exp` and friends are calls into libm, which stop autovectorisation. These
//! are branch-free: every path is computed and the answer picked with selects, and all bit
//! manipulation goes through `to_bits`/`from_bits`, which are free in SIMD registers.
//!
//! # Method and accuracy
//! `exp` and `ln` follow Cephes `expf`/`logf` (S. L. Moshier): Cody–Waite range reduction
//! with ln 2 split in two parts so that `x - n·ln2` is exact, and the Cephes minimax
//! polynomials on the reduced interval; `exp` rebuilds `2^n` in two halves so that results in
//! the subnormal range and up to `f32::MAX` are reached without overflow in between.
//! `expm1` uses a degree-8 Taylor polynomial for `|x| < 0.5` and `exp(x) - 1` elsewhere;
//! `sigmoid` and `tanh` are built from `exp` (plus the Cephes `tanhf` odd polynomial for
//! `|x| < 0.625`, where `1 - 2/(e^{2x}+1)` would cancel). Evaluation is in f32 without FMA,
//! so every instruction-set path produces identical bits.
//!
//! Measured maximum relative error against f64 `std` (dense sweeps in `tests/transcendental.rs`,
//! identical on every path): `exp` 8.1e-8 on [-87, 88]; `ln` 7.9e-8 on [1e-30, 1e30] plus
//! subnormals; `expm1` (through ELU) 9.0e-8 on [-20, 0]; `sigmoid` 1.9e-7 on [-87, 87]; `tanh`
//! 1.4e-7 on [-20, 20]. The bound the kernels document and the tests enforce is 1e-6.
//! Outside those ranges results are still correct IEEE limits (`exp` overflows to `inf` above
//! ~88.72, flows through subnormals to 0 below ~-87.3 with only absolute accuracy there).

// The polynomial coefficients are quoted digit for digit from Cephes so they can be checked
// against the source; the compiler rounds each to the nearest f32.
#![allow(clippy::excessive_precision)]

/// 1.5 · 2^23: adding it to a float of magnitude < 2^22 rounds it to an integer, which then
/// sits in the low mantissa bits.
const ROUND_MAGIC: f32 = 12_582_912.0;
/// Bit pattern of [`ROUND_MAGIC`].
const ROUND_MAGIC_BITS: i32 = 0x4B40_0000;
/// log2(e).
const LOG2_E: f32 = std::f32::consts::LOG2_E;
/// High part of ln 2: 355/512, exact in 9 bits, so `n * LN2_HI` is exact for |n| < 2^15.
const LN2_HI: f32 = 0.693_359_375;
/// ln 2 - LN2_HI.
const LN2_LO: f32 = -2.121_944_40e-4;
/// Inputs are clamped to this range before reduction; beyond it `exp` is `inf` or `0`.
const EXP_MIN: f32 = -104.0;
/// See [`EXP_MIN`]: ln(f32::MAX) ≈ 88.7228, so 89 already overflows.
const EXP_MAX: f32 = 89.0;

/// e^x, relative error ≤ 1e-6 (measured 8.1e-8) for results in the normal range.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    // max/min rather than clamp: NaN becomes a finite value, so the integer exponent below
    // stays in range; the NaN itself is restored at the end.
    #[allow(clippy::manual_clamp)]
    let xc = x.max(EXP_MIN).min(EXP_MAX);
    // n = round(x / ln 2), both as a float and as an integer.
    let t = xc * LOG2_E + ROUND_MAGIC;
    let n = t - ROUND_MAGIC;
    let ni = t.to_bits() as i32 - ROUND_MAGIC_BITS;
    // r = x - n ln 2 in [-ln2/2, ln2/2], with ln 2 in two pieces so the first product is exact.
    let r = xc - n * LN2_HI - n * LN2_LO;
    let r2 = r * r;
    let mut p = 1.987_569_150_0e-4;
    p = p * r + 1.398_199_950_7e-3;
    p = p * r + 8.333_451_907_3e-3;
    p = p * r + 4.166_579_589_4e-2;
    p = p * r + 1.666_666_545_9e-1;
    p = p * r + 5.000_000_120_1e-1;
    let er = p * r2 + r + 1.0;
    // 2^n as two normal factors: n in [-150, 129] splits into halves in [-75, 65].
    let n1 = ni >> 1;
    let n2 = ni - n1;
    let y = er * pow2i(n1) * pow2i(n2);
    if x.is_nan() { x } else { y }
}

/// 2^n for n in the normal exponent range [-126, 127].
#[inline(always)]
fn pow2i(n: i32) -> f32 {
    f32::from_bits(((n + 127) as u32) << 23)
}

/// e^x - 1, accurate for small |x| where `exp(x) - 1` would cancel.
#[inline(always)]
pub(crate) fn expm1(x: f32) -> f32 {
    // Taylor to x^8: the first omitted term is below 0.5^9/9! ≈ 5.4e-9 relative on |x| < 0.5.
    let mut p = 1.0 / 40_320.0;
    p = p * x + 1.0 / 5_040.0;
    p = p * x + 1.0 / 720.0;
    p = p * x + 1.0 / 120.0;
    p = p * x + 1.0 / 24.0;
    p = p * x + 1.0 / 6.0;
    p = p * x + 0.5;
    let small = p * x * x + x;
    // For |x| ≥ 0.5 the subtraction loses at most a factor 1.6 in relative accuracy.
    let large = exp(x) - 1.0;
    if x.abs() < 0.5 { small } else { large }
}

/// sqrt(1/2): the mantissa is reduced into [sqrt(1/2), sqrt(2)).
const SQRT_HALF: f32 = std::f32::consts::FRAC_1_SQRT_2;

/// ln x, relative error ≤ 1e-6 (measured 7.9e-8); `ln 0 = -inf`, `ln x = NaN` for x < 0,
/// `ln inf = inf`.
#[inline(always)]
pub(crate) fn ln(x: f32) -> f32 {
    // Subnormals are scaled into the normal range by 2^23 first.
    let subnormal = x < f32::MIN_POSITIVE;
    let xs = if subnormal { x * 8_388_608.0 } else { x };
    let bias = if subnormal { 23 } else { 0 };
    // x = m · 2^e with m in [0.5, 1).
    let bits = xs.to_bits();
    let mut e = ((bits >> 23) & 0xff) as i32 - 126 - bias;
    let m = f32::from_bits((bits & 0x007f_ffff) | 0x3f00_0000);
    // Move m into [sqrt(1/2), sqrt(2)) and take f = m - 1, which is exact (Sterbenz).
    let low = m < SQRT_HALF;
    e -= low as i32;
    let f = if low { m + m - 1.0 } else { m - 1.0 };
    let z = f * f;
    let mut p = 7.037_683_629_2e-2;
    p = p * f - 1.151_461_031_0e-1;
    p = p * f + 1.167_699_874_0e-1;
    p = p * f - 1.242_014_084_6e-1;
    p = p * f + 1.424_932_278_7e-1;
    p = p * f - 1.666_805_766_5e-1;
    p = p * f + 2.000_071_476_5e-1;
    p = p * f - 2.499_999_399_3e-1;
    p = p * f + 3.333_333_117_4e-1;
    let fe = e as f32;
    let mut y = p * f * z;
    y += fe * LN2_LO;
    y += -0.5 * z;
    let r = f + y + fe * LN2_HI;
    // IEEE special cases, in order of precedence.
    let r = if x == f32::INFINITY { x } else { r };
    let r = if x == 0.0 { f32::NEG_INFINITY } else { r };
    if x < 0.0 || x.is_nan() { f32::NAN } else { r }
}

/// The logistic function 1 / (1 + e^-x), relative error ≤ 1e-6 (measured 1.9e-7) while the
/// result is normal (x > -87.3). Computed from e^-|x| ≤ 1, so nothing overflows.
#[inline(always)]
pub(crate) fn sigmoid(x: f32) -> f32 {
    let z = exp(-x.abs());
    let s = 1.0 / (1.0 + z);
    // For x < 0: sigmoid(x) = e^x / (1 + e^x) = z · s.
    if x < 0.0 { z * s } else { s }
}

/// Where `tanh` switches from its odd polynomial to the exponential formula.
const TANH_POLY_MAX: f32 = 0.625;

/// tanh x, relative error ≤ 1e-6 (measured 1.4e-7) everywhere (it saturates to ±1 for
/// |x| ≳ 9).
#[inline(always)]
pub(crate) fn tanh(x: f32) -> f32 {
    // Both formulas work on |x|; tanh is odd, so the sign (also of ±0 and NaN) is copied back.
    let ax = x.abs();
    // Cephes tanhf: |x| + |x|^3 P(x^2) on |x| < 0.625.
    let z = ax * ax;
    let mut p = -5.704_988_727_45e-3;
    p = p * z + 2.063_908_879_54e-2;
    p = p * z - 5.373_971_555_31e-2;
    p = p * z + 1.333_144_220_36e-1;
    p = p * z - 3.333_328_194_22e-1;
    let small = p * z * ax + ax;
    // 1 - 2 / (e^{2|x|} + 1): the quotient is < 0.45 here, so the subtraction cannot cancel;
    // e^{2|x|} overflowing to inf gives exactly 1.
    let big = 1.0 - 2.0 / (exp(ax + ax) + 1.0);
    let r = if ax < TANH_POLY_MAX { small } else { big };
    r.copysign(x)
}

/// x^p for a scalar exponent, evaluated in f64 with `std` and rounded once to f32.
///
/// Computing `exp(p ln x)` in f32 cannot meet a 1e-6 bound: the absolute error of `p ln x`
/// (up to ~88 · 6e-8) becomes the relative error of the result. In f64 the only error left is
/// the final rounding (≤ 6e-8). libm's `pow` does not vectorise, so this path is scalar.
#[inline(always)]
pub(crate) fn powf(x: f32, p: f32) -> f32 {
    (f64::from(x)).powf(f64::from(p)) as f32
}
