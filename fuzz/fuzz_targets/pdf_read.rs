//! The PDF reader on hostile input: every signature found, its byte range, what later updates
//! changed, and the document security store. Any panic, hang or runaway allocation is a bug.
#![no_main]

use esign::pdf::read;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = read::ends_complete(data);
    let _ = read::security_store(data);
    let Ok(signatures) = read::signatures(data) else { return };
    let certification = signatures.iter().find_map(|s| s.certification);
    for signature in signatures.iter().take(16) {
        let _ = read::signed_parts(data, signature);
        let _ = read::changes_after(data, signature, certification);
    }
});
