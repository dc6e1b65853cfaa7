//! The OCSP responder (RFC 6960), signing with each issuing CA's delegated responder key.
//!
//! Every answer reflects the store at the moment of the request: the status is read each
//! time. Signed answers to nonce-less requests are cached and re-used while the status they
//! state is unchanged and they are fresh, so most requests cost a lookup, not a signature.
//! Requests with a nonce (RFC 8954, 1 to 32 octets) are always signed anew and echo it.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use aws_lc_rs::digest;
use bytes::Bytes;
use der::asn1::{GeneralizedTime, ObjectIdentifier, OctetString};
use der::{Decode, Encode};
use store::{CaStore, CertificateStatus, RevocationReason, Serial};
use x509_cert::Certificate;
use x509_cert::ext::pkix::CrlReason;
use x509_ocsp::builder::OcspResponseBuilder;
use x509_ocsp::ext::Nonce;
use x509_ocsp::{CertId, CertStatus, OcspGeneralizedTime, OcspRequest, OcspResponse, ResponderId, RevokedInfo, SingleResponse};

use crate::authority::Authority;
// Why a request got no signed answer.
use crate::metrics::{CaMetrics, OcspRefusal as Refusal};
use crate::{CaError, names};

const SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const NONCE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.2");

/// How long a response is valid (nextUpdate - thisUpdate).
const VALIDITY: i64 = 3600;
/// How long a cached response is served before it is signed again.
const REFRESH: i64 = 300;
/// At most this many certificates in one request.
const MAX_REQUESTS: usize = 16;
/// At most this many cached responses; the cache is emptied when it fills.
const CACHE_CAPACITY: usize = 200_000;

struct IssuingCa {
    name: String,
    sha1: (Vec<u8>, Vec<u8>),
    sha256: (Vec<u8>, Vec<u8>),
    responder_id: ResponderId,
    signer: hsm_shim::signer::StoredKeySigner,
    responder_certificate: Certificate,
}

struct Cached {
    status: CertificateStatus,
    this_update: i64,
    der: Bytes,
}

/// Answers OCSP requests for the issuing CAs.
pub struct OcspResponder {
    store: Arc<dyn CaStore>,
    metrics: Arc<CaMetrics>,
    cas: Vec<IssuingCa>,
    cache: RwLock<HashMap<Vec<u8>, Cached>>,
}

impl std::fmt::Debug for OcspResponder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OcspResponder").field("cas", &self.cas.iter().map(|c| &c.name).collect::<Vec<_>>()).finish_non_exhaustive()
    }
}

fn hash(alg: &'static digest::Algorithm, data: &[u8]) -> Vec<u8> {
    digest::digest(alg, data).as_ref().to_vec()
}

fn generalized(unix: i64) -> Result<OcspGeneralizedTime, der::Error> {
    Ok(OcspGeneralizedTime(GeneralizedTime::from_unix_duration(Duration::from_secs(unix.max(0) as u64))?))
}

impl OcspResponder {
    /// Prepares the responder of every issuing CA of `authority`.
    pub fn new(authority: &Authority) -> Result<Self, CaError> {
        let mut cas = Vec::new();
        // Every generation of every issuing CA: a renewed CA's old generation answers for
        // what it issued, with its own responder, until its last certificate has expired.
        for ca in authority.issuing_cas() {
            let name = ca.name.as_str();
            let responder = authority.member(&names::ocsp_responder(name))?;
            let subject = ca.parsed.tbs_certificate.subject.to_der()?;
            let key = ca.signer.public_key().subject_public_key();
            let responder_key_hash = hash(&digest::SHA1_FOR_LEGACY_USE_ONLY, responder.signer.public_key().subject_public_key());
            cas.push(IssuingCa {
                name: name.to_owned(),
                sha1: (hash(&digest::SHA1_FOR_LEGACY_USE_ONLY, &subject), hash(&digest::SHA1_FOR_LEGACY_USE_ONLY, key)),
                sha256: (hash(&digest::SHA256, &subject), hash(&digest::SHA256, key)),
                responder_id: ResponderId::ByKey(OctetString::new(responder_key_hash)?),
                signer: responder.signer.clone(),
                responder_certificate: responder.parsed.clone(),
            });
        }
        Ok(OcspResponder { store: authority.store().clone(), metrics: Arc::clone(authority.metrics()), cas, cache: RwLock::default() })
    }

    fn issuer_of(&self, id: &CertId) -> Option<&IssuingCa> {
        let (name, key) = (id.issuer_name_hash.as_bytes(), id.issuer_key_hash.as_bytes());
        self.cas.iter().find(|ca| match id.hash_algorithm.oid {
            SHA1 => ca.sha1.0 == name && ca.sha1.1 == key,
            SHA256 => ca.sha256.0 == name && ca.sha256.1 == key,
            _ => false,
        })
    }

    /// Answers one DER OCSPRequest with a DER OCSPResponse; never fails: problems become the
    /// RFC 6960 error statuses.
    pub async fn respond(&self, request: &[u8]) -> Bytes {
        self.answer(request).await.0
    }

    /// The DER OCSPResponse to `request` and, if it is an error status, which.
    pub(crate) async fn answer(&self, request: &[u8]) -> (Bytes, Option<Refusal>) {
        let start = std::time::Instant::now();
        let answer = match self.try_respond(request).await {
            Ok(der) => (der, None),
            Err(refusal) => {
                self.metrics.ocsp_refused(refusal);
                let response = match refusal {
                    Refusal::Malformed => OcspResponse::malformed_request(),
                    Refusal::Unauthorized => OcspResponse::unauthorized(),
                    Refusal::Internal => OcspResponse::internal_error(),
                    Refusal::TryLater => OcspResponse::try_later(),
                };
                (Bytes::from(response.to_der().unwrap_or_default()), Some(refusal))
            }
        };
        self.metrics.ocsp_latency(start);
        answer
    }

    async fn try_respond(&self, request: &[u8]) -> Result<Bytes, Refusal> {
        let request = OcspRequest::from_der(request).map_err(|_| Refusal::Malformed)?;
        let list = &request.tbs_request.request_list;
        if list.is_empty() || list.len() > MAX_REQUESTS {
            return Err(Refusal::Malformed);
        }
        let nonce = match request.tbs_request.request_extensions.as_ref().and_then(|exts| exts.iter().find(|e| e.extn_id == NONCE)) {
            None => None,
            Some(ext) => {
                let nonce = Nonce::from_der(ext.extn_value.as_bytes()).map_err(|_| Refusal::Malformed)?;
                if nonce.0.as_bytes().is_empty() || nonce.0.as_bytes().len() > 32 {
                    return Err(Refusal::Malformed);
                }
                Some(nonce)
            }
        };
        // One responder signs the whole answer: every certificate must be of the same CA.
        let ca = self.issuer_of(&list[0].req_cert).ok_or(Refusal::Unauthorized)?;
        if list.iter().any(|r| !self.issuer_of(&r.req_cert).is_some_and(|other| std::ptr::eq(other, ca))) {
            return Err(Refusal::Unauthorized);
        }
        let now = crate::now();
        let mut statuses = Vec::with_capacity(list.len());
        for r in list {
            let status = match Serial::new(r.req_cert.serial_number.as_bytes().to_vec()) {
                Ok(serial) => self.store.status(&ca.name, &serial).await.map_err(|e| {
                    if e.is_unreachable() {
                        // RFC 6960 4.2.1: "tryLater", never a status the store did not give.
                        tracing::warn!(error = %e, "OCSP status lookup failed: the store is unreachable");
                        Refusal::TryLater
                    } else {
                        tracing::error!(error = %e, "OCSP status lookup failed");
                        Refusal::Internal
                    }
                })?,
                Err(_) => None,
            };
            statuses.push(status);
        }
        let cache_key = match (&nonce, list.len()) {
            (None, 1) => Some(list[0].req_cert.to_der().map_err(|_| Refusal::Internal)?),
            _ => None,
        };
        if let (Some(key), [Some(status)]) = (&cache_key, statuses.as_slice())
            && let Ok(cache) = self.cache.read()
            && let Some(hit) = cache.get(key)
            && hit.status == *status
            && now - hit.this_update < REFRESH
        {
            self.metrics.ocsp_answered(&statuses);
            return Ok(hit.der.clone());
        }
        let der = self.sign(ca, list.iter().map(|r| &r.req_cert).zip(&statuses), nonce, now).map_err(|e| {
            tracing::error!(error = %e, "OCSP signing failed");
            Refusal::Internal
        })?;
        if let (Some(key), [Some(status)]) = (cache_key, statuses.as_slice())
            && let Ok(mut cache) = self.cache.write()
        {
            if cache.len() >= CACHE_CAPACITY {
                cache.clear();
            }
            cache.insert(key, Cached { status: *status, this_update: now, der: der.clone() });
        }
        self.metrics.ocsp_answered(&statuses);
        Ok(der)
    }

    fn sign<'a>(
        &self,
        ca: &IssuingCa,
        answers: impl Iterator<Item = (&'a CertId, &'a Option<CertificateStatus>)>,
        nonce: Option<Nonce>,
        now: i64,
    ) -> Result<Bytes, CaError> {
        let mut builder = OcspResponseBuilder::new(ca.responder_id.clone());
        for (id, status) in answers {
            let cert_status = match status {
                None => CertStatus::unknown(),
                Some(CertificateStatus::Good) => CertStatus::good(),
                Some(CertificateStatus::Revoked { reason, at }) => CertStatus::revoked(RevokedInfo {
                    revocation_time: generalized(*at)?,
                    revocation_reason: match reason {
                        RevocationReason::Unspecified => None,
                        r => Some(crl_reason(*r)),
                    },
                }),
            };
            builder = builder.with_single_response(SingleResponse {
                cert_id: id.clone(),
                cert_status,
                this_update: generalized(now)?,
                next_update: Some(generalized(now + VALIDITY)?),
                single_extensions: None,
            });
        }
        if let Some(nonce) = nonce {
            builder = builder.with_extension(nonce).map_err(|e| CaError::Encoding(e.to_string()))?;
        }
        let mut signer = ca.signer.clone();
        let response =
            builder.sign(&mut signer, Some(vec![ca.responder_certificate.clone()]), generalized(now)?).map_err(|e| CaError::Encoding(e.to_string()))?;
        Ok(Bytes::from(response.to_der()?))
    }
}

fn crl_reason(r: RevocationReason) -> CrlReason {
    match r {
        RevocationReason::Unspecified => CrlReason::Unspecified,
        RevocationReason::KeyCompromise => CrlReason::KeyCompromise,
        RevocationReason::CaCompromise => CrlReason::CaCompromise,
        RevocationReason::AffiliationChanged => CrlReason::AffiliationChanged,
        RevocationReason::Superseded => CrlReason::Superseded,
        RevocationReason::CessationOfOperation => CrlReason::CessationOfOperation,
        RevocationReason::CertificateHold => CrlReason::CertificateHold,
        RevocationReason::PrivilegeWithdrawn => CrlReason::PrivilegeWithdrawn,
        RevocationReason::AaCompromise => CrlReason::AaCompromise,
    }
}
