//! What every validation target validates against: the shipped policy files, their default
//! validation policy, and the seed corpus's root as a further trust anchor (so that valid
//! seeds reach path validation, revocation and timestamps, not only the parsers).

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use esign::validation::{Trust, Validation};

pub struct Setup {
    pub policies: policies::Policies,
    pub trust: Trust,
}

/// The document the detached seeds (`cms/cades-detached*.p7s`, `timestamp/document.tst`) are over.
pub const DOCUMENT: &[u8] = include_bytes!("../seeds/document.txt");

pub fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let Ok(policies) = policies::Policies::shipped() else { panic!("the shipped policies do not load") };
        let Ok((_, root)) = der::pem::decode_vec(include_bytes!("../seeds/root.pem")) else { panic!("seeds/root.pem is not PEM") };
        let Ok(trust) = Trust::new(policies.trust_list(), None, &[root]) else { panic!("the trust list does not load") };
        Setup { policies, trust }
    })
}

/// Validates at a fixed time (the seeds' certificates are valid then), so runs are repeatable.
pub fn validation(setup: &Setup) -> Validation<'_> {
    Validation {
        policy: setup.policies.default_validation_policy(),
        policies: &setup.policies,
        trust: &setup.trust,
        now: SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_000_000),
        online: None,
    }
}
