//! Subject identifiers: pairwise per sector (OIDC Core 8.1) unless a service's policy allows
//! the public one.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;

use crate::clients::Client;
use crate::provider::{Provider, sha256};

impl Provider {
    /// The subject identifier a client sees: pairwise per sector unless its policy allows
    /// the public one.
    pub fn subject(&self, client: &Client, citizen_id: &str) -> String {
        if client.service.public_subject {
            return citizen_id.to_owned();
        }
        let mut input = Vec::new();
        for part in [client.sector.as_bytes(), citizen_id.as_bytes(), self.settings.secret.as_slice()] {
            input.extend_from_slice(&(part.len() as u32).to_be_bytes());
            input.extend_from_slice(part);
        }
        B64.encode(sha256(&input))
    }
}
