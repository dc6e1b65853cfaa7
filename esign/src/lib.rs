//! Electronic signatures for citizens.
//!
//! A citizen's signature is made decoupled, like the smart-ID login: this crate builds what
//! is to be signed (the signed attributes over the document's digest), the citizen's device
//! signs it with the smart-ID signing key after PIN2, and this crate then assembles the
//! signature at level B-LT from the signature value, a timestamp over it and the revocation
//! evidence of the signing certificate: detached CAdES (`.p7s`) for any file, PAdES (an
//! incremental update of the PDF) for PDFs.
//!
//! It knows nothing of the CA, the provider or HTTP: the timestamp authority, the OCSP
//! responder and the devices are reached through what `hawiya` wires in.
//!
//! - [`cades`] prepares the signed attributes, checks the device's signature and the
//!   evidence (timestamp, OCSP) and assembles the CMS: a `.p7s`, or a PDF signature's
//!   `/Contents`.
//! - [`pdf`] appends to a PDF, never changing its bytes: the signature field and dictionary
//!   with its reserved `/Contents`, the `/DSS` of B-LT, and document timestamps of B-LTA.
//! - [`signature`] is the whole of one signature, document to B-LT file, with the timestamp
//!   authority and the OCSP responder behind [`signature::Evidence`].
//! - [`validation`] validates signed documents for auditors (EN 319 102-1), whoever made them.
//! - [`source`]: what the validator reads from, by offset (bytes in memory, or a file), so a
//!   large PDF is validated without being held in memory.

pub mod cades;
pub mod pdf;
pub mod signature;
pub mod source;
pub mod validation;
