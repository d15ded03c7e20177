//! The list of every op's gradient checks ([`gradcheck_cases`], also what `ventral gradcheck`
//! runs), run twice at its own shapes: as it is, where every check must pass, and with every
//! backward 5 % too large ([`GradcheckOptions::backward_scale`]), where every check must fail.
//! An op added to the list is mutation-tested without further work.

use std::collections::HashSet;

use ventral_autograd::{GradcheckOptions, failing_cases, gradcheck_cases, uncaught_mutations};

#[test]
fn every_case_passes() {
    let failed = failing_cases(&gradcheck_cases(), &GradcheckOptions::default());
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

#[test]
fn a_backward_five_percent_off_fails_for_every_case() {
    let missed = uncaught_mutations(&gradcheck_cases(), &GradcheckOptions::default(), 1.05);
    assert!(
        missed.is_empty(),
        "a backward 5 % off passed:\n{}",
        missed.join("\n")
    );
}

#[test]
fn names_are_unique() {
    let cases = gradcheck_cases();
    let names: HashSet<&str> = cases.iter().map(|c| c.name).collect();
    assert_eq!(names.len(), cases.len());
}

/// Public functions of `src/ops` that are not differentiable, so have no gradient check.
const NOT_DIFFERENTIABLE: &[(&str, &str)] = &[("argmax", "returns indices, not a function of x")];

/// Every op this crate exports, read from its source: each `pub fn` of an `impl Tensor` block
/// and each free `pub fn` in `src/ops/*.rs` (the methods of parameter structs such as
/// `Conv2dParams` are not ops). Reading the source rather than a hand-kept list is the point:
/// an op added to `src/ops` without a case fails [`every_exported_op_has_a_case`].
fn exported_ops() -> Vec<(String, String)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/ops");
    let mut ops = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("src/ops")
        .map(|e| e.expect("a directory entry").path())
        .collect();
    files.sort();
    for path in files {
        let source = std::fs::read_to_string(&path).expect("a source file");
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        // The `impl` block a line is in: set by an `impl` at column 0, cleared by a `}` there.
        let mut in_impl_of: Option<&str> = None;
        for line in source.lines() {
            if let Some(header) = line.strip_prefix("impl") {
                in_impl_of = header.split_whitespace().find(|w| !w.starts_with('<'));
                continue;
            }
            if line.starts_with('}') {
                in_impl_of = None;
                continue;
            }
            let (method, rest) = match line.strip_prefix("    pub fn ") {
                Some(rest) => (true, rest),
                None => match line.strip_prefix("pub fn ") {
                    Some(rest) => (false, rest),
                    None => continue,
                },
            };
            if method && in_impl_of != Some("Tensor") {
                continue;
            }
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            ops.push((file.clone(), name));
        }
    }
    ops
}

#[test]
fn every_exported_op_has_a_case() {
    let cases: HashSet<&str> = gradcheck_cases().iter().map(|c| c.name).collect();
    let ops = exported_ops();
    // The parser must see the ops we know are there, or an empty list would pass.
    for known in [
        "add",
        "conv2d",
        "concat",
        "cross_entropy",
        "shortcut_option_a",
    ] {
        assert!(ops.iter().any(|(_, n)| n == known), "parser missed {known}");
    }
    let missing: Vec<String> = ops
        .iter()
        .filter(|(_, n)| !cases.contains(n.as_str()))
        .filter(|(_, n)| !NOT_DIFFERENTIABLE.iter().any(|(x, _)| x == n))
        .map(|(file, n)| format!("{n} (src/ops/{file})"))
        .collect();
    assert!(
        missing.is_empty(),
        "exported ops without a case in src/gradcheck/cases.rs: {}",
        missing.join(", ")
    );
    // And no case names an op that is not exported (a renamed or removed op).
    let names: HashSet<&str> = ops.iter().map(|(_, n)| n.as_str()).collect();
    let stale: Vec<&str> = cases
        .iter()
        .copied()
        .filter(|c| !names.contains(c))
        .collect();
    assert!(stale.is_empty(), "cases for no exported op: {stale:?}");
}
