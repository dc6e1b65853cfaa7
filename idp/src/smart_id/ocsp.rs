//! The revocation source of the smart-ID login: where the provider learns whether a
//! certificate is revoked. [`OcspClient`] asks the responder over HTTP with the project's one
//! OCSP request ([`pkix::ocsp::request`]) and believes only answers that pass the one OCSP
//! check ([`pkix::ocsp::check`]: about this certificate, signed by the issuer or a responder
//! it authorised) and that are fresh by the login's own rule (`OCSP_MAX_AGE`, `SKEW`).

use std::time::{Duration, UNIX_EPOCH};

use der::Decode;
use der::asn1::ObjectIdentifier;
use pkix::ocsp::OcspStatus;
use pkix::path::AlgorithmPolicy;
use x509_cert::Certificate;
use x509_cert::ext::pkix::CrlReason;

const AIA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.1.1");

const AD_OCSP: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1");

/// An OCSP answer older than this is not believed (the responder re-signs every 5 minutes
/// and at once when a status changes).
pub(super) const OCSP_MAX_AGE: i64 = 15 * 60;

/// Clock skew allowed between the provider and the responder, in seconds.
pub(super) const SKEW: i64 = 60;

/// A certificate's status, as a revocation source states it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Good.
    Good,
    /// On hold (certificateHold).
    Suspended,
    /// Revoked for good.
    Revoked,
}

/// Where the provider learns whether a certificate is revoked.
#[async_trait::async_trait]
pub trait RevocationSource: Send + Sync {
    /// The status of `certificate`, issued by `issuer`.
    async fn status(&self, certificate: &Certificate, issuer: &Certificate, now: i64) -> Result<Status, String>;
}

/// Asks the OCSP responder named in the certificate (or a configured one) over HTTP, and
/// believes only answers signed by the issuer or by a responder it delegated, about this
/// certificate, and fresh.
pub struct OcspClient {
    http: reqwest::Client,
    url: Option<String>,
    algorithms: AlgorithmPolicy,
}

impl OcspClient {
    /// A client that asks `url`, or when `None` the responder in each certificate's AIA.
    pub fn new(http: reqwest::Client, url: Option<String>) -> Self {
        OcspClient { http, url, algorithms: AlgorithmPolicy::default() }
    }

    fn responder_url(&self, certificate: &Certificate) -> Result<String, String> {
        if let Some(url) = &self.url {
            return Ok(url.clone());
        }
        let none = || "the certificate names no OCSP responder".to_owned();
        let aia = certificate.tbs_certificate.extensions.iter().flatten().find(|e| e.extn_id == AIA).ok_or_else(none)?;
        let aia = x509_cert::ext::pkix::AuthorityInfoAccessSyntax::from_der(aia.extn_value.as_bytes()).map_err(|e| e.to_string())?;
        aia.0
            .iter()
            .filter(|d| d.access_method == AD_OCSP)
            .find_map(|d| match &d.access_location {
                x509_cert::ext::pkix::name::GeneralName::UniformResourceIdentifier(uri) => Some(uri.as_str().to_owned()),
                _ => None,
            })
            .ok_or_else(none)
    }
}

/// Seconds since 1970.
fn unix(time: std::time::SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH).map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)).unwrap_or(0)
}

#[async_trait::async_trait]
impl RevocationSource for OcspClient {
    async fn status(&self, certificate: &Certificate, issuer: &Certificate, now: i64) -> Result<Status, String> {
        let request = pkix::ocsp::request(certificate, issuer).map_err(|e| e.to_string())?;
        let url = self.responder_url(certificate)?;
        let response = self
            .http
            .post(&url)
            .header("content-type", "application/ocsp-request")
            .body(request)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .map_err(|e| format!("OCSP responder {url}: {e}"))?;
        let body = response.bytes().await.map_err(|e| format!("OCSP responder {url}: {e}"))?;
        let answer = pkix::ocsp::check(&body, certificate, issuer, &self.algorithms).map_err(|e| e.to_string())?;
        let this_update = unix(answer.this_update);
        if this_update > now + SKEW || now - this_update > OCSP_MAX_AGE || answer.next_update.is_some_and(|n| unix(n) + SKEW < now) {
            return Err("the OCSP answer is not fresh".into());
        }
        match answer.status {
            OcspStatus::Good => Ok(Status::Good),
            OcspStatus::Revoked { reason: Some(CrlReason::CertificateHold), .. } => Ok(Status::Suspended),
            OcspStatus::Revoked { .. } => Ok(Status::Revoked),
            OcspStatus::Unknown => Err("the OCSP responder does not know the certificate".into()),
        }
    }
}
