//! The timestamp authority: RFC 3161 tokens with the ESSCertIDv2 of RFC 5816, signed by the
//! TSA key of the ceremony, under the TSA policy of the policy files (`tsa.toml`).
//!
//! Every request gets a TimeStampResp with the PKIStatus it deserves, never an HTTP error:
//! a request that is not DER is `badDataFormat`; one too large, or with a wrong message
//! imprint, is `badRequest` or `badDataFormat`; an algorithm outside the policy (SHA-1 among
//! them) is `badAlg`; another policy is `unacceptedPolicy`; any extension is
//! `unacceptedExtension` (none is supported); a store that cannot record the token is
//! `systemFailure`, and no token leaves.
//!
//! Every token is recorded in the durable store (serial, genTime, imprint, policy,
//! requester) before it is handed out. Concurrent requests share a commit: one task takes
//! the records that are waiting and writes them in one transaction, so recording costs a
//! fraction of a commit per token.

use std::sync::Arc;

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use der::asn1::{GeneralizedTime, Int, ObjectIdentifier};
use der::{Decode, Encode, Tagged};
use hsm_shim::SignatureAlgorithm;
use hsm_shim::signer::StoredKeySigner;
use pkix::DigestAlgorithm;
use pkix::cms::{self, Content, SignedAttributes, Signer};
use pkix::tsp::{FailureInfo, TimeStampResp};
use spki::AlgorithmIdentifierOwned;
use store::{CaStore, Serial, TimestampRecord};
use tokio::sync::{mpsc, oneshot};
use x509_cert::Certificate;
use x509_cert::ext::pkix::name::GeneralName;
use x509_tsp::{Accuracy, TimeStampReq, TspVersion, TstInfo};

use crate::authority::Authority;
use crate::metrics::CaMetrics;
use crate::{CaError, names};

/// The largest request accepted. A request is an imprint, a policy, a nonce and a flag:
/// about 100 octets with SHA-512.
pub const MAX_REQUEST: usize = 1024;

/// The most records written in one commit.
const MAX_GROUP: usize = 1024;

/// The smallest response: `rejection`, nothing else. Sent only if encoding a response fails.
const BARE_REJECTION: &[u8] = &[0x30, 0x05, 0x30, 0x03, 0x02, 0x01, 0x02];

/// A record waiting for its commit, and where to say whether it committed (the error itself
/// is logged once, by the recorder).
type Pending = (TimestampRecord, oneshot::Sender<Result<(), ()>>);

/// Issues timestamp tokens.
pub struct TimestampAuthority {
    signer: StoredKeySigner,
    certificate: Certificate,
    name: GeneralName,
    digest: DigestAlgorithm,
    signature_algorithm: AlgorithmIdentifierOwned,
    policy: ObjectIdentifier,
    accuracy_seconds: u64,
    accepted: Vec<DigestAlgorithm>,
    recorder: mpsc::Sender<Pending>,
    rng: SystemRandom,
    metrics: Arc<CaMetrics>,
}

impl std::fmt::Debug for TimestampAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimestampAuthority").field("policy", &self.policy).field("key", self.signer.key()).finish_non_exhaustive()
    }
}

/// Why a request gets no token: the failure bit and the text sent with it.
struct Refusal(FailureInfo, String);

impl Refusal {
    fn new(info: FailureInfo, text: impl Into<String>) -> Self {
        Refusal(info, text.into())
    }

    /// The TimeStampResp: `rejection`, the failure bit and the text.
    fn response(&self) -> Vec<u8> {
        TimeStampResp::rejection(self.0, self.1.clone()).to_der().unwrap_or_else(|_| BARE_REJECTION.to_vec())
    }
}

impl TimestampAuthority {
    /// Prepares the TSA of `authority`'s ceremony under the policy files' TSA policy. Starts
    /// the task that records tokens, so it must be called inside a Tokio runtime.
    pub fn new(authority: &Authority) -> Result<Self, CaError> {
        let member = authority.member(names::TSA)?;
        let tsa = authority.policies().timestamping();
        let accepted = tsa
            .hash_algorithms
            .iter()
            .map(|name| DigestAlgorithm::named(name).ok_or_else(|| CaError::Encoding(format!("tsa.toml: unknown hash algorithm {name:?}"))))
            .collect::<Result<_, _>>()?;
        let signer = member.signer.clone();
        let digest = match signer.algorithm() {
            SignatureAlgorithm::Es384 => DigestAlgorithm::Sha384,
            SignatureAlgorithm::EdDsa => DigestAlgorithm::Sha512,
            SignatureAlgorithm::Es256 | SignatureAlgorithm::Rs256 | SignatureAlgorithm::Ps256 => DigestAlgorithm::Sha256,
        };
        let signature_algorithm = AlgorithmIdentifierOwned::from_der(signer.algorithm().x509_algorithm_identifier())?;
        let (recorder, pending) = mpsc::channel(4 * MAX_GROUP);
        tokio::spawn(record(authority.store().clone(), pending));
        Ok(TimestampAuthority {
            signer,
            name: GeneralName::DirectoryName(member.parsed.tbs_certificate.subject.clone()),
            certificate: member.parsed.clone(),
            digest,
            signature_algorithm,
            policy: tsa.policy,
            accuracy_seconds: tsa.accuracy.as_secs(),
            accepted,
            recorder,
            rng: SystemRandom::new(),
            metrics: Arc::clone(authority.metrics()),
        })
    }

    /// Answers one DER TimeStampReq with a DER TimeStampResp; never fails: problems become
    /// the PKIStatus and failure information of RFC 3161 §2.4.2.
    pub async fn respond(&self, request: &[u8], requester: &str) -> Vec<u8> {
        let start = std::time::Instant::now();
        let response = match self.issue(request, requester).await {
            Ok(token) => match TimeStampResp::granted(token).to_der() {
                Ok(der) => {
                    self.metrics.timestamp_granted();
                    der
                }
                Err(e) => {
                    tracing::error!(error = %e, "encoding a timestamp response failed");
                    self.metrics.timestamp_refused(FailureInfo::SystemFailure);
                    BARE_REJECTION.to_vec()
                }
            },
            Err(refusal) => {
                tracing::info!(requester, reason = %refusal.1, "timestamp request refused");
                self.metrics.timestamp_refused(refusal.0);
                refusal.response()
            }
        };
        self.metrics.timestamp_latency(start);
        response
    }

    /// The refusal, as `badRequest`, of a request that could not even be read (of another
    /// media type, or too large); counted like every other refusal.
    pub fn bad_request(&self, text: &str) -> Vec<u8> {
        self.metrics.timestamp_refused(FailureInfo::BadRequest);
        Refusal::new(FailureInfo::BadRequest, text).response()
    }

    async fn issue(&self, request: &[u8], requester: &str) -> Result<cms::ContentInfo, Refusal> {
        use FailureInfo::*;
        if request.len() > MAX_REQUEST {
            return Err(Refusal::new(BadRequest, format!("the request is larger than {MAX_REQUEST} octets")));
        }
        let request = TimeStampReq::from_der(request).map_err(|e| Refusal::new(BadDataFormat, format!("not a DER TimeStampReq: {e}")))?;
        if request.version != TspVersion::V1 {
            return Err(Refusal::new(BadRequest, "only version 1 requests are answered"));
        }
        let imprint = &request.message_imprint;
        let algorithm = DigestAlgorithm::from_oid(&imprint.hash_algorithm.oid)
            .filter(|a| self.accepted.contains(a))
            .ok_or_else(|| Refusal::new(BadAlg, format!("hash algorithm {} is not accepted (use SHA-256, SHA-384 or SHA-512)", imprint.hash_algorithm.oid)))?;
        if imprint.hash_algorithm.parameters.as_ref().is_some_and(|p| p.tag() != der::Tag::Null) {
            return Err(Refusal::new(BadDataFormat, "the hash algorithm has parameters"));
        }
        if imprint.hashed_message.as_bytes().len() != algorithm.output_len() {
            return Err(Refusal::new(BadDataFormat, format!("a {algorithm} imprint has {} octets", algorithm.output_len())));
        }
        if let Some(policy) = request.req_policy
            && policy != self.policy
        {
            return Err(Refusal::new(UnacceptedPolicy, format!("policy {policy} is not this TSA's ({})", self.policy)));
        }
        if request.extensions.as_ref().is_some_and(|e| !e.is_empty()) {
            return Err(Refusal::new(UnacceptedExtension, "no request extension is supported"));
        }

        let system = |what: &str, e: &dyn std::fmt::Display| {
            tracing::error!(error = %e, "timestamp {what} failed");
            Refusal::new(SystemFailure, "the timestamp authority cannot answer now; try again")
        };
        let serial = self.serial().map_err(|e| system("serial", &e))?;
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_err(|e| system("clock", &e))?;
        let info = TstInfo {
            version: TspVersion::V1,
            policy: self.policy,
            message_imprint: imprint.clone(),
            serial_number: Int::new(serial.as_bytes()).map_err(|e| system("serial", &e))?,
            gen_time: GeneralizedTime::from_unix_duration(std::time::Duration::from_secs(now.as_secs())).map_err(|e| system("time", &e))?,
            accuracy: Some(Accuracy { seconds: Some(self.accuracy_seconds), millis: None, micros: None }),
            ordering: false,
            nonce: request.nonce.clone(),
            tsa: Some(self.name.clone()),
            extensions: None,
        };
        let token = self.sign(&info, request.cert_req).map_err(|e| system("signing", &e))?;

        let record = TimestampRecord {
            serial,
            gen_time: now.as_secs() as i64,
            hash_algorithm: algorithm.name().to_owned(),
            imprint: imprint.hashed_message.as_bytes().to_vec(),
            policy: self.policy.to_string(),
            requester: requester.to_owned(),
        };
        let (done, recorded) = oneshot::channel();
        let serial = record.serial.to_string();
        self.recorder.send((record, done)).await.map_err(|e| system("recording", &e))?;
        match recorded.await {
            Ok(Ok(())) => {
                tracing::info!(target: "audit", event = "timestamp.issued", serial, requester, policy = %self.policy, "timestamp token issued");
                Ok(token)
            }
            Ok(Err(())) => Err(Refusal::new(SystemFailure, "the timestamp authority cannot answer now; try again")),
            Err(e) => Err(system("recording", &e)),
        }
    }

    /// A random positive serial of 126 bits with no leading zero octet.
    fn serial(&self) -> Result<Serial, String> {
        let mut bytes = [0u8; 16];
        self.rng.fill(&mut bytes).map_err(|e| e.to_string())?;
        bytes[0] = (bytes[0] & 0x7f) | 0x40;
        Serial::new(bytes.to_vec())
    }

    fn sign(&self, info: &TstInfo, include_certificate: bool) -> Result<cms::ContentInfo, CaError> {
        let content = info.to_der()?;
        let attributes = SignedAttributes::new(cms::oid::TST_INFO, self.digest, &self.digest.digest(&content), &self.certificate)?;
        let signature = self.signer.sign_bytes(&attributes.to_be_signed()?)?;
        let signer = Signer {
            certificate: &self.certificate,
            digest: self.digest,
            signed_attributes: attributes,
            signature_algorithm: self.signature_algorithm.clone(),
            signature,
            unsigned_attributes: Vec::new(),
        };
        let certificates = if include_certificate { std::slice::from_ref(&self.certificate) } else { &[] };
        Ok(cms::signed_data_info(Content { content_type: cms::oid::TST_INFO, encapsulated: Some(&content) }, signer, certificates, &[], &[])?)
    }
}

/// Writes the records that wait, a group per commit, and tells each requester how its
/// group ended.
async fn record(store: std::sync::Arc<dyn CaStore>, mut pending: mpsc::Receiver<Pending>) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    while pending.recv_many(&mut group, MAX_GROUP).await > 0 {
        let records: Vec<TimestampRecord> = group.iter().map(|(r, _)| r.clone()).collect();
        let result = store.record_timestamps(&records).await.map_err(|e| {
            tracing::error!(error = %e, tokens = records.len(), "recording timestamp tokens failed; none of them is handed out");
        });
        for (_, done) in group.drain(..) {
            let _ = done.send(result);
        }
    }
}
