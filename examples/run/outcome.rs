//! The end of a run as reported: the outcome with a cut output counted, and the `--json`
//! line of the outcome (or of the error).

use sandbox_core::{Ending, Error, Outcome};

/// The outcome, marked as cut when `truncated`: its ending is then output_limit_exceeded,
/// unless the wall time ran out.
pub(crate) fn with_cut(outcome: Outcome, truncated: bool) -> Outcome {
    let mut outcome = outcome;
    if truncated {
        outcome.output_truncated = true;
        if outcome.ending != Ending::WallTimeExceeded {
            outcome.ending = Ending::OutputLimitExceeded;
        }
    }
    outcome
}

/// `--json`: the outcome as one JSON line on stderr.
pub(crate) fn print_json(outcome: &Outcome) {
    eprintln!(
        "{}",
        serde_json::to_string(outcome).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    );
}

/// `--json`: the error as one JSON line on stderr.
pub(crate) fn print_json_error(e: &Error) {
    eprintln!("{}", serde_json::json!({ "error": e.to_string() }));
}
