//! The list of every layer's gradient checks ([`gradcheck_cases`], also what `ventral gradcheck`
//! runs), run as it is, where every check must pass, and with every backward 5 % too large,
//! where every check must fail; and a test that fails when a layer of `src/layers` has no case.

use std::collections::{BTreeSet, HashSet};

use ventral_autograd::{GradcheckOptions, failing_cases, uncaught_mutations};
use ventral_nn::layers::gradcheck_cases;

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

/// Every layer this crate exports, read from its source: each type with an
/// `impl … Module for Type` in `src/layers/*.rs`, a generic one standing for its public
/// aliases (`BatchNorm<D>` for `BatchNorm1d` and `BatchNorm2d`). Reading the source rather
/// than a hand-kept list is the point: a layer added without a case fails
/// [`every_layer_has_a_case`].
fn exported_layers() -> BTreeSet<String> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/layers");
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut modules = BTreeSet::new();
    let mut aliases = Vec::new();
    for entry in std::fs::read_dir(dir).expect("src/layers") {
        let source = std::fs::read_to_string(entry.expect("an entry").path()).expect("a file");
        for line in source.lines() {
            if line.starts_with("impl")
                && let Some((_, ty)) = line.split_once(" Module for ")
            {
                modules.insert(ident(ty));
            }
            if let Some(rest) = line.strip_prefix("pub type ")
                && let Some((alias, target)) = rest.split_once('=')
            {
                aliases.push((ident(alias), ident(target)));
            }
        }
    }
    // A generic type with public aliases is covered through them.
    let mut generic = Vec::new();
    for (alias, target) in aliases {
        if modules.contains(&target) {
            modules.insert(alias);
            generic.push(target);
        }
    }
    for g in generic {
        modules.remove(&g);
    }
    modules
}

#[test]
fn every_layer_has_a_case() {
    let cases: BTreeSet<String> = gradcheck_cases()
        .iter()
        .map(|c| c.name.to_string())
        .collect();
    let layers = exported_layers();
    // The parser must see layers we know are there, or an empty list would pass.
    for known in [
        "Linear",
        "Conv2d",
        "BatchNorm1d",
        "BatchNorm2d",
        "Sequential",
    ] {
        assert!(layers.contains(known), "parser missed {known}: {layers:?}");
    }
    let missing: Vec<&String> = layers.difference(&cases).collect();
    assert!(
        missing.is_empty(),
        "layers without a case in src/layers/gradcheck_cases.rs: {missing:?}"
    );
    let stale: Vec<&String> = cases.difference(&layers).collect();
    assert!(stale.is_empty(), "cases for no layer: {stale:?}");
}
