//! The CMS validation core: `esign::validation::validate` on a CAdES signature, detached
//! over the seeds' document and enveloping (when the input's first byte is odd).
#![no_main]

use libfuzzer_sys::fuzz_target;

mod common;

fuzz_target!(|data: &[u8]| {
    let setup = common::setup();
    let validation = common::validation(setup);
    let detached = if data.first().is_some_and(|b| b & 1 == 1) { None } else { Some(common::DOCUMENT) };
    let report = esign::validation::validate(data, "signature.p7s", detached, &validation);
    let _ = report.exit_code();
});
