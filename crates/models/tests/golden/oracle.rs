//! The formula both Ventral and `tests/data/golden/make_golden.py` compute weights, inputs and
//! labels from, the PyTorch fixtures that script wrote, and the comparisons against them.
//!
//! For seed `s`, state-dict entry number `t` and element `i`:
//! `u = (splitmix64(s ^ (t << 32) ^ i) >> 40) / 2^23 − 1`, in `[-1, 1)` and exact in f32; an
//! entry's values follow from `u` and its name ([`entry_values`]), computed in f64 and rounded
//! once to f32, so both languages produce the same bits.

use std::path::{Path, PathBuf};

use serde_json::Value;
use ventral_nn::checkpoint::{DType, StateDict, TensorData, TensorRecord};
use ventral_nn::{Module, Slot, Tensor, load_state_dict, state_dict_layout};

/// The entry number of the input tensor in the formula.
const INPUT_T: u64 = 0xFFFF;
/// The entry number of the labels in the formula.
const LABEL_T: u64 = 0xFFFE;

/// SplitMix64's output function (Steele, Lea & Flood 2014), wrapping arithmetic.
fn splitmix64(z: u64) -> u64 {
    let z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The hash of element `i` of entry `t`.
pub fn hash(seed: u64, t: u64, i: u64) -> u64 {
    splitmix64(seed ^ (t << 32) ^ i)
}

/// The top 24 bits of element `i` of entry `t`'s hash.
fn bits24(seed: u64, t: u64, i: u64) -> u64 {
    hash(seed, t, i) >> 40
}

/// `u` in `[-1, 1)`: a multiple of 2⁻²³, so exact in f32.
pub fn uniform(seed: u64, t: u64, i: u64) -> f64 {
    bits24(seed, t, i) as f64 / f64::from(1u32 << 23) - 1.0
}

/// The values of state-dict entry `t` called `name` with `shape` (see make_golden.py):
/// conv/linear weights `u·√(6/fan_in)`, rank-1 weights `1 + 0.1u`, biases and running means
/// `0.1u`, running variances `1 + 0.5|u|`.
fn entry_values(name: &str, shape: &[usize], seed: u64, t: u64) -> Vec<f32> {
    let n: usize = shape.iter().product();
    let value: Box<dyn Fn(f64) -> f64> = if name.ends_with("running_mean") || name.ends_with("bias")
    {
        Box::new(|u| 0.1 * u)
    } else if name.ends_with("running_var") {
        Box::new(|u| 1.0 + 0.5 * u.abs())
    } else if name.ends_with("weight") && shape.len() >= 2 {
        let fan_in: usize = shape[1..].iter().product();
        let bound = (6.0 / fan_in as f64).sqrt();
        Box::new(move |u| u * bound)
    } else if name.ends_with("weight") {
        Box::new(|u| 1.0 + 0.1 * u)
    } else {
        panic!("no formula for `{name}`")
    };
    (0..n as u64)
        .map(|i| value(uniform(seed, t, i)) as f32)
        .collect()
}

/// The formula's state dict for `model` (its own keys, in its order).
pub fn formula_state(model: &mut dyn Module, seed: u64) -> StateDict {
    let mut state = StateDict::new();
    for (t, (name, shape, dtype)) in state_dict_layout(model).into_iter().enumerate() {
        let data = match dtype {
            DType::I64 => TensorData::I64(vec![0; shape.iter().product()]),
            DType::F32 => TensorData::F32(entry_values(&name, &shape, seed, t as u64)),
        };
        let record = TensorRecord::new(&name, shape, data).unwrap();
        state.insert(name, record);
    }
    state
}

/// Loads the formula's weights into `model` and returns them.
pub fn load_formula(model: &mut dyn Module, seed: u64) -> StateDict {
    let state = formula_state(model, seed);
    load_state_dict(model, &state).unwrap();
    state
}

/// The formula's input of `shape`: `u` for entry [`INPUT_T`].
pub fn formula_input(seed: u64, shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    let values = (0..n as u64)
        .map(|i| uniform(seed, INPUT_T, i) as f32)
        .collect();
    Tensor::from_vec(values, shape.to_vec()).unwrap()
}

/// The formula's labels: `bits24 mod classes` for entry [`LABEL_T`].
pub fn formula_labels(seed: u64, n: usize, classes: usize) -> Vec<usize> {
    (0..n as u64)
        .map(|i| (bits24(seed, LABEL_T, i) % classes as u64) as usize)
        .collect()
}

/// Where the fixtures live.
pub fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/golden")
}

/// A fixture JSON file, parsed.
pub fn fixture(file: &str) -> Value {
    let path = fixture_dir().join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run make_golden.py)", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// A JSON array of unsigned integers.
pub fn usizes(v: &Value) -> Vec<usize> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect()
}

/// A JSON array of numbers, rounded to f32 (the fixtures hold f32 values printed exactly).
pub fn f32s(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_f64().unwrap() as f32)
        .collect()
}

/// Asserts `model`'s state-dict keys and shapes are the ones PyTorch's model had (`keys` as
/// `[[name, shape], …]`), so the formula gave both the same tensors.
pub fn assert_same_keys(model: &mut dyn Module, keys: &Value, what: &str) {
    let ours: Vec<(String, Vec<usize>)> = state_dict_layout(model)
        .into_iter()
        .map(|(k, s, _)| (k, s))
        .collect();
    let theirs: Vec<(String, Vec<usize>)> = keys
        .as_array()
        .unwrap()
        .iter()
        .map(|k| (k[0].as_str().unwrap().to_string(), usizes(&k[1])))
        .collect();
    assert_eq!(
        ours, theirs,
        "{what}: state-dict layout differs from PyTorch's"
    );
}

/// The largest `|actual − expected|` over `max |expected|`, and where it is.
pub fn relative_error(actual: &[f32], expected: &[f32]) -> (f32, usize) {
    assert_eq!(actual.len(), expected.len(), "lengths differ");
    let scale = expected.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let (at, err) = actual
        .iter()
        .zip(expected)
        .map(|(a, e)| (a - e).abs())
        .enumerate()
        .fold((0, 0.0f32), |(i, m), (j, d)| {
            // NaN compares false: keep it as the worst.
            if d > m || d.is_nan() { (j, d) } else { (i, m) }
        });
    (err / scale, at)
}

/// Asserts `actual` is within `tol · max |expected|` of `expected` everywhere.
pub fn assert_close(what: &str, actual: &[f32], expected: &[f32], tol: f32) {
    let (err, at) = relative_error(actual, expected);
    assert!(
        err <= tol,
        "{what}: max |Ventral − PyTorch| / max |PyTorch| = {err:.3e} > {tol:.0e} at index {at} \
         (Ventral {}, PyTorch {})",
        actual[at],
        expected[at]
    );
}

/// Names of the trainable parameters of `model` (the rest of its state are buffers and
/// counters).
pub fn parameter_names(model: &mut dyn Module) -> Vec<String> {
    let mut out = Vec::new();
    model.visit("", &mut |name, slot| {
        if let Slot::Parameter(_) = slot {
            out.push(name.to_string());
        }
    });
    out
}
