//! DOT (Graphviz) export of a recorded graph: the lecture's picture of a computation, with
//! each node's op, shape and, after `backward`, gradient.

use std::collections::HashSet;
use std::fmt::Write;

use crate::backward::Gradients;
use crate::graph::Edge;
use crate::tensor::Tensor;

/// At most this many gradient values are printed per node.
const SHOWN: usize = 4;

fn values(v: &[f32]) -> String {
    let shown: Vec<String> = v.iter().take(SHOWN).map(|x| format!("{x:.4}")).collect();
    let more = if v.len() > SHOWN { ", …" } else { "" };
    format!("[{}{more}]", shown.join(", "))
}

/// The graph that produced `root` in Graphviz DOT: one box per op (name, scope path, output
/// shape), one ellipse per leaf, an edge from each input to its op, and, for every tensor
/// with a gradient in `grads`, its first values. Render with `dot -Tsvg`.
///
/// To see intermediate gradients, run backward with
/// [`crate::BackwardOptions`] `{ retain_graph: true, keep_intermediate: true }` first.
///
/// ```
/// use ventral_autograd::{to_dot, BackwardOptions, Gradients, Tensor};
///
/// let x = Tensor::scalar(-2.0).with_grad();
/// let y = Tensor::scalar(5.0).with_grad();
/// let z = Tensor::scalar(-4.0).with_grad();
/// let f = x.add(&y)?.mul(&z)?;
/// let mut grads = Gradients::new();
/// f.backward_with(&mut grads, BackwardOptions { retain_graph: true, keep_intermediate: true })?;
/// let dot = to_dot(&f, Some(&grads));
/// assert!(dot.starts_with("digraph"));
/// assert!(dot.contains("mul") && dot.contains("add") && dot.contains("grad [-4.0000]"));
/// # Ok::<(), ventral_autograd::Error>(())
/// ```
pub fn to_dot(root: &Tensor, grads: Option<&Gradients>) -> String {
    let mut out =
        String::from("digraph autograd {\n  rankdir=LR;\n  node [fontname=\"monospace\"];\n");
    let mut seen = HashSet::new();
    let mut stack = vec![Edge::to(root)];
    while let Some(t) = stack.pop() {
        if !seen.insert(t.id) {
            continue;
        }
        let id = t.id;
        let grad = grads
            .and_then(|g| g.get_by_id(id))
            .map(|g| format!("\\ngrad {}", values(&g.to_vec())))
            .unwrap_or_default();
        match (&t.node, &t.leaf) {
            (Some(node), _) => {
                let path = node
                    .path
                    .as_ref()
                    .map(|p| format!(" ({p})"))
                    .unwrap_or_default();
                let inputs = node.inputs();
                let freed = if inputs.is_none() { "\\n(freed)" } else { "" };
                let _ = writeln!(
                    out,
                    "  t{} [shape=box, label=\"{}{path}\\n{}{grad}{freed}\"];",
                    id_num(id),
                    node.op,
                    t.shape
                );
                for input in inputs.unwrap_or_default() {
                    let _ = writeln!(out, "  t{} -> t{};", id_num(input.id), id_num(id));
                    stack.push(input);
                }
            }
            (None, leaf) => {
                let kind = if t.requires_grad { "leaf" } else { "const" };
                let shown = leaf
                    .as_ref()
                    .map(|l| values(&l.to_vec()))
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "  t{} [shape=ellipse, label=\"{kind}\\n{}\\n{shown}{grad}\"];",
                    id_num(id),
                    t.shape,
                );
            }
        }
    }
    out.push_str("}\n");
    out
}

fn id_num(id: crate::tensor::TensorId) -> String {
    format!("{id:?}")
        .trim_start_matches("TensorId(")
        .trim_end_matches(')')
        .to_string()
}
