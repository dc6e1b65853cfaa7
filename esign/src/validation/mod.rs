//! Signature validation for auditors (ETSI EN 319 102-1): whatever made the signature, the
//! validator says TOTAL-PASSED, TOTAL-FAILED or INDETERMINATE under a validation policy
//! from the policy files, and why.
//!
//! - [`report`]: indications, sub-indications and the report.
//! - [`cms`]: the signature core of CAdES and PAdES: one CMS signer, validated.
//! - [`document`]: a whole document: what it is, every signature and timestamp in it.
//! - [`xml`]: the report as ETSI TS 119 102-2 XML.
//! - [`html`]: the report for people, printable, in Arabic or English.

pub mod cms;
pub mod document;
pub mod html;
pub mod report;
pub mod xml;

pub use cms::{Fetch, OwnHierarchy, Trust};
pub use document::{Validation, validate, validate_source};
