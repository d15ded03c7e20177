//! `summary()`: a per-layer table — path, layer, output shape, parameters, multiply-accumulates
//! — and totals, for a model at any input size.
//!
//! # How it works
//! [`Module`] has no hooks, so the zoo's models run every child through [`forward_child`]
//! (and chains through [`Chain`]) instead of calling `forward` directly. Outside a summary
//! that is exactly [`ventral_nn::forward_named`]; inside one it also records the child's path,
//! description and output shape. [`summary`] switches recording on, runs one real forward
//! pass on a zero tensor of batch 1 in evaluation mode without a graph, and then:
//!
//! - keeps the **leaf** calls (those that made no recorded call of their own) as rows;
//! - gives each row the parameters whose state-dict names start with its path (the paths
//!   are the state-dict prefixes by construction); totals come from the whole state dict, and
//!   parameters no row owns are shown on an `(other)` row, so the table always adds up;
//! - counts multiply-accumulates for layers with a `weight` of rank ≥ 2 (convolutions,
//!   fully connected layers) as output elements × `weight elements / weight.dims[0]`
//!   (`OH·OW·O · C/groups·KH·KW` for a convolution, `out · in` for a linear layer). Other
//!   layers count 0 unless they report their own with [`record_macs`]: their cost is linear in the activations, and torchvision's published
//!   operation counts leave them out too.
//!
//! Parameter-free functional ops written inline (`x.relu()`) produce no row; models in this
//! crate route through modules wherever a row helps the reader. A module from outside the zoo
//! that calls its children with plain `forward_named` shows as a single row.

use std::cell::RefCell;
use std::fmt;

use ventral_nn::layers::Sequential;
use ventral_nn::layers::fused::without_fusion;
use ventral_nn::{
    Mode, Module, Result, Slot, Tensor, forward_named, join, no_grad, parameter_count,
};

/// One recorded call.
struct Call {
    path: String,
    layer: String,
    output: Vec<usize>,
    leaf: bool,
    macs: Option<u64>,
}

#[derive(Default)]
struct Recorder {
    /// The names of the calls in progress and the multiply-accumulates each reported.
    stack: Vec<(String, Option<u64>)>,
    calls: Vec<Call>,
    /// A child's dotted path whose output to keep, and the output once it ran.
    capture: Option<(String, Option<Tensor>)>,
}

thread_local! {
    static RECORDER: RefCell<Option<Recorder>> = const { RefCell::new(None) };
}

/// Runs `child` named `name` — [`forward_named`], plus a row in [`summary`]'s table when a
/// summary is being taken on this thread. Use it in a model's `forward` for each child.
///
/// # Errors
/// The child's error, naming `name`.
pub fn forward_child(child: &dyn Module, name: &str, x: &Tensor) -> Result<Tensor> {
    let started = RECORDER.with(|r| {
        r.borrow_mut().as_mut().map(|rec| {
            rec.stack.push((name.to_string(), None));
            rec.calls.len()
        })
    });
    let y = forward_named(child, name, x);
    if let Some(first_inner) = started {
        RECORDER.with(|r| {
            if let Some(rec) = r.borrow_mut().as_mut() {
                let path = rec
                    .stack
                    .iter()
                    .fold(String::new(), |acc, (part, _)| join(&acc, part));
                let macs = rec.stack.pop().and_then(|(_, m)| m);
                if let Ok(y) = &y {
                    if let Some((wanted, slot)) = &mut rec.capture
                        && *wanted == path
                    {
                        *slot = Some(y.clone());
                    }
                    let leaf = rec.calls.len() == first_inner;
                    rec.calls.push(Call {
                        path,
                        layer: child.describe(),
                        output: y.dims().to_vec(),
                        leaf,
                        macs,
                    });
                }
            }
        });
    }
    y
}

/// Runs `model` on `x` in eval mode without recording a graph and returns the output of the
/// child at `path` (a dotted name as in [`summary`]'s table, e.g. `conv2` or `layer1.0.conv1`),
/// or `None` if no child of that name ran. For looking inside a model (activation maps).
///
/// # Errors
/// The forward pass's error.
pub fn capture_output(model: &mut dyn Module, x: &Tensor, path: &str) -> Result<Option<Tensor>> {
    model.set_mode(Mode::Eval);
    RECORDER.with(|r| {
        *r.borrow_mut() = Some(Recorder {
            capture: Some((path.to_string(), None)),
            ..Recorder::default()
        })
    });
    // Unfused, so that every layer's own output exists to be captured.
    let result = without_fusion(|| no_grad(|| forward_child(&*model, "", x)));
    let recorder = RECORDER.with(|r| r.borrow_mut().take());
    result?;
    Ok(recorder.and_then(|r| r.capture).and_then(|(_, y)| y))
}

/// Reports the multiply-accumulates *per sample* of the layer whose `forward` is running,
/// for layers the weight-shape rule of [`summary`] does not describe (a partially connected
/// convolution, an RBF layer). Does nothing outside a summary.
pub fn record_macs(macs: u64) {
    RECORDER.with(|r| {
        if let Some((_, m)) = r.borrow_mut().as_mut().and_then(|rec| rec.stack.last_mut()) {
            *m = Some(macs);
        }
    });
}

/// A [`Sequential`] whose children run through [`forward_child`], so [`summary`] sees each
/// of them: what the zoo's models chain their layers with.
pub type Chain = Sequential;

/// An empty [`Chain`].
pub fn chain() -> Chain {
    Sequential::new().forwarding_through(forward_child)
}

/// One row of a [`Summary`]: a leaf layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerRow {
    /// Dotted path, the state-dict prefix (`layer1.0.conv1`).
    pub path: String,
    /// The layer's description (`Conv2d(64→64, 3x3, padding (1, 1))`).
    pub layer: String,
    /// Output shape for one sample (no batch dimension).
    pub output: Vec<usize>,
    /// Trainable parameter values owned by the layer.
    pub parameters: usize,
    /// Multiply-accumulates for one sample (see the module docs for what is counted).
    pub macs: u64,
}

/// A model's per-layer table and totals, for one input size. `Display` prints the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// The model's description.
    pub model: String,
    /// Input shape for one sample.
    pub input: Vec<usize>,
    /// Output shape for one sample.
    pub output: Vec<usize>,
    /// The leaf layers in the order they ran.
    pub rows: Vec<LayerRow>,
    /// All trainable parameter values (equals `parameter_count`).
    pub parameters: usize,
    /// Sum of the rows' multiply-accumulates, for one sample.
    pub macs: u64,
}

/// Takes `model`'s summary for one sample of shape `input` (`[C, H, W]`, or `[features]`).
/// The model is left in [`Mode::Eval`].
///
/// # Errors
/// The forward pass's error if the model does not accept `input`.
pub fn summary(model: &mut dyn Module, input: &[usize]) -> Result<Summary> {
    model.set_mode(Mode::Eval);
    let mut dims = vec![1];
    dims.extend_from_slice(input);
    let x = Tensor::zeros(dims)?;
    RECORDER.with(|r| *r.borrow_mut() = Some(Recorder::default()));
    // Unfused, so that every layer gets its row.
    let y = without_fusion(|| no_grad(|| forward_child(&*model, "", &x)));
    let recorder = RECORDER.with(|r| r.borrow_mut().take()).unwrap_or_default();
    let y = y?;

    let mut params: Vec<(String, Vec<usize>)> = Vec::new();
    model.visit("", &mut |name, slot| {
        if let Slot::Parameter(t) = slot {
            params.push((name.to_string(), t.dims().to_vec()));
        }
    });
    let owned = |path: &str, name: &str| path.is_empty() || name.starts_with(&format!("{path}."));
    let mut rows: Vec<LayerRow> = recorder
        .calls
        .into_iter()
        .filter(|c| c.leaf)
        .map(|c| {
            let per_sample: Vec<usize> = c.output[1..].to_vec();
            let out_elems: u64 = per_sample.iter().product::<usize>() as u64;
            let parameters = params
                .iter()
                .filter(|(n, _)| owned(&c.path, n))
                .map(|(_, s)| s.iter().product::<usize>())
                .sum();
            let macs = c.macs.unwrap_or_else(|| {
                params
                    .iter()
                    .find(|(n, s)| *n == join(&c.path, "weight") && s.len() >= 2)
                    .map_or(0, |(_, s)| {
                        out_elems * (s.iter().product::<usize>() / s[0]) as u64
                    })
            });
            LayerRow {
                path: c.path,
                layer: c.layer,
                output: per_sample,
                parameters,
                macs,
            }
        })
        .collect();
    let total = parameter_count(model);
    let in_rows: usize = rows.iter().map(|r| r.parameters).sum();
    if in_rows < total {
        rows.push(LayerRow {
            path: "(other)".into(),
            layer: "parameters used outside a recorded layer".into(),
            output: vec![],
            parameters: total - in_rows,
            macs: 0,
        });
    }
    Ok(Summary {
        model: model.describe(),
        input: input.to_vec(),
        output: y.dims()[1..].to_vec(),
        macs: rows.iter().map(|r| r.macs).sum(),
        rows,
        parameters: total,
    })
}

/// `1234567` as `1,234,567`.
fn grouped(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

fn shape(dims: &[usize]) -> String {
    let inner: Vec<String> = dims.iter().map(ToString::to_string).collect();
    format!("[N, {}]", inner.join(", "))
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cells: Vec<[String; 5]> = self
            .rows
            .iter()
            .map(|r| {
                [
                    r.path.clone(),
                    r.layer.clone(),
                    if r.output.is_empty() {
                        String::new()
                    } else {
                        shape(&r.output)
                    },
                    grouped(r.parameters as u64),
                    grouped(r.macs),
                ]
            })
            .collect();
        let header = ["layer", "type", "output", "parameters", "MACs"];
        let mut width = header.map(str::len);
        for row in &cells {
            for (w, c) in width.iter_mut().zip(row) {
                *w = (*w).max(c.chars().count());
            }
        }
        let line = |f: &mut fmt::Formatter<'_>, c: &[String; 5]| {
            writeln!(
                f,
                "{:<w0$}  {:<w1$}  {:<w2$}  {:>w3$}  {:>w4$}",
                c[0],
                c[1],
                c[2],
                c[3],
                c[4],
                w0 = width[0],
                w1 = width[1],
                w2 = width[2],
                w3 = width[3],
                w4 = width[4]
            )
        };
        writeln!(
            f,
            "{}: input {} → output {}",
            self.model,
            shape(&self.input),
            shape(&self.output)
        )?;
        line(f, &header.map(String::from))?;
        let rule = "-".repeat(width.iter().sum::<usize>() + 8);
        writeln!(f, "{rule}")?;
        for row in &cells {
            line(f, row)?;
        }
        writeln!(f, "{rule}")?;
        writeln!(f, "parameters: {}", grouped(self.parameters as u64))?;
        write!(
            f,
            "multiply-accumulates per sample: {} ({:.3} G)",
            grouped(self.macs),
            self.macs as f64 / 1e9
        )
    }
}

#[cfg(test)]
mod tests {
    use super::grouped;

    #[test]
    fn groups_thousands() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1,000");
        assert_eq!(grouped(61_100_840), "61,100,840");
    }
}
