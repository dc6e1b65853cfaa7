//! Signature validation for auditors (ETSI EN 319 102-1): whatever made the signature, the
//! validator says TOTAL-PASSED, TOTAL-FAILED or INDETERMINATE under a validation policy
//! from the policy files, and why.
//!
//! - [`report`]: indications, sub-indications and the report.

pub mod report;
