//! Workspace-level integration tests for morph86 (see the `[[test]]` targets).
//!
//! Helpers shared by the tests live here.

use std::path::PathBuf;

/// The `tests-data` directory: `$MORPH86_TESTDATA`, else `../shared/tests-data`
/// beside the checkout. Panics with a clear message when it is missing,
/// because the conformance sample cannot run without it.
pub fn testdata() -> PathBuf {
    match morph86_difftest::moo::testdata_dir() {
        Some(d) => d,
        None => panic!(
            "real-hardware test data not found: set MORPH86_TESTDATA to the tests-data \
             directory, or place the shared folder beside the checkout (../shared/tests-data)"
        ),
    }
}
