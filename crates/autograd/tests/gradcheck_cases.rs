//! The list of every op's gradient checks ([`gradcheck_cases`], also what `ventral gradcheck`
//! runs), run twice at its own shapes: as it is, where every check must pass, and with every
//! backward 5 % too large ([`GradcheckOptions::backward_scale`]), where every check must fail.
//! An op added to the list is mutation-tested without further work.

use std::collections::HashSet;

use ventral_autograd::{GradcheckOptions, gradcheck_cases};

#[test]
fn every_case_passes() {
    let options = GradcheckOptions::default();
    let mut failed = Vec::new();
    for case in gradcheck_cases() {
        let report = (case.run)(&options).unwrap_or_else(|e| panic!("{}: {e}", case.name));
        if !report.passed() {
            failed.push(format!("{}:\n{report}", case.name));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

#[test]
fn a_backward_five_percent_off_fails_for_every_case() {
    let options = GradcheckOptions::default();
    let mutation = options.with_backward_scale(1.05);
    let mut missed = Vec::new();
    for case in gradcheck_cases() {
        let good = (case.run)(&options).unwrap_or_else(|e| panic!("{}: {e}", case.name));
        let bad = (case.run)(&mutation).unwrap_or_else(|e| panic!("{}: {e}", case.name));
        // Every case must fail as a whole, and at each input whose gradient is large enough
        // for a 5 % error to exceed twice the tolerance.
        let uncaught = good.uncaught(&bad, &mutation);
        if bad.passed() || !uncaught.is_empty() {
            missed.push(format!("{} (inputs {uncaught:?}):\n{bad}", case.name));
        }
    }
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
