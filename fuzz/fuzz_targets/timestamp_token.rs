//! The RFC 3161 timestamp token parser and validation: a token over the seeds' document.
#![no_main]

use libfuzzer_sys::fuzz_target;

mod common;

fuzz_target!(|data: &[u8]| {
    let setup = common::setup();
    let validation = common::validation(setup);
    let report = esign::validation::validate(data, "document.tst", Some(common::DOCUMENT), &validation);
    let _ = report.exit_code();
});
