//! What the CA counts for operators: certificates issued, revoked, suspended and released,
//! CRLs published, OCSP answers by certificate status and refusals by response status, and
//! timestamp tokens issued and refused by PKIStatus and failure, with the latency of every
//! OCSP and timestamp request. Rendered with the provider's on `/metrics`.
//!
//! Recording is a relaxed atomic addition or two: the OCSP responder records on every
//! request at tens of thousands per second.

use std::time::Instant;

use pkix::tsp::FailureInfo;
use store::CertificateStatus;
use telemetry::{Counter, Exposition, Histogram};

/// The CA's counters, shared by the authority, its OCSP responder and its TSA.
#[derive(Debug, Default)]
pub struct CaMetrics {
    issued: Counter,
    revoked: Counter,
    suspended: Counter,
    released: Counter,
    crls: Counter,
    ocsp_good: Counter,
    ocsp_revoked: Counter,
    ocsp_unknown: Counter,
    ocsp_malformed: Counter,
    ocsp_unauthorized: Counter,
    ocsp_internal: Counter,
    ocsp_try_later: Counter,
    ocsp_latency: Histogram,
    tsa_granted: Counter,
    /// Refusals per failure bit, in the order of [`FailureInfo::ALL`].
    tsa_refused: [Counter; FailureInfo::ALL.len()],
    tsa_latency: Histogram,
}

/// Why an OCSP request got no signed answer, as RFC 6960 names the response status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OcspRefusal {
    /// `malformedRequest`.
    Malformed,
    /// `unauthorized` (not one of our CAs).
    Unauthorized,
    /// `internalError`.
    Internal,
    /// `tryLater` (the store cannot be reached for a moment).
    TryLater,
}

/// The name RFC 3161 gives a failure bit.
fn failure_name(info: FailureInfo) -> &'static str {
    match info {
        FailureInfo::BadAlg => "badAlg",
        FailureInfo::BadRequest => "badRequest",
        FailureInfo::BadDataFormat => "badDataFormat",
        FailureInfo::TimeNotAvailable => "timeNotAvailable",
        FailureInfo::UnacceptedPolicy => "unacceptedPolicy",
        FailureInfo::UnacceptedExtension => "unacceptedExtension",
        FailureInfo::AddInfoNotAvailable => "addInfoNotAvailable",
        FailureInfo::SystemFailure => "systemFailure",
    }
}

impl CaMetrics {
    pub(crate) fn issued(&self) {
        self.issued.inc();
    }

    pub(crate) fn revoked(&self, hold: bool) {
        if hold { self.suspended.inc() } else { self.revoked.inc() }
    }

    pub(crate) fn released(&self) {
        self.released.inc();
    }

    pub(crate) fn crl_published(&self) {
        self.crls.inc();
    }

    /// The statuses of one signed OCSP answer (one per certificate asked about).
    pub(crate) fn ocsp_answered<'a>(&self, statuses: impl IntoIterator<Item = &'a Option<CertificateStatus>>) {
        for status in statuses {
            match status {
                Some(CertificateStatus::Good) => self.ocsp_good.inc(),
                Some(CertificateStatus::Revoked { .. }) => self.ocsp_revoked.inc(),
                None => self.ocsp_unknown.inc(),
            }
        }
    }

    pub(crate) fn ocsp_refused(&self, refusal: OcspRefusal) {
        match refusal {
            OcspRefusal::Malformed => self.ocsp_malformed.inc(),
            OcspRefusal::Unauthorized => self.ocsp_unauthorized.inc(),
            OcspRefusal::Internal => self.ocsp_internal.inc(),
            OcspRefusal::TryLater => self.ocsp_try_later.inc(),
        }
    }

    pub(crate) fn ocsp_latency(&self, start: Instant) {
        self.ocsp_latency.observe_since(start);
    }

    pub(crate) fn timestamp_granted(&self) {
        self.tsa_granted.inc();
    }

    pub(crate) fn timestamp_refused(&self, info: FailureInfo) {
        if let Some(i) = FailureInfo::ALL.iter().position(|f| *f == info) {
            self.tsa_refused[i].inc();
        }
    }

    pub(crate) fn timestamp_latency(&self, start: Instant) {
        self.tsa_latency.observe_since(start);
    }

    /// Writes every CA metric family.
    pub fn render(&self, e: &mut Exposition) {
        e.counter("hawiya_ca_certificates_issued_total", "Certificates issued and stored by this process.", &[(&[], self.issued.get())]);
        e.counter("hawiya_ca_certificates_revoked_total", "Certificates revoked (for good) by this process.", &[(&[], self.revoked.get())]);
        e.counter("hawiya_ca_certificates_suspended_total", "Certificates put on hold (certificateHold) by this process.", &[(&[], self.suspended.get())]);
        e.counter("hawiya_ca_certificates_released_total", "Certificates released from hold by this process.", &[(&[], self.released.get())]);
        e.counter("hawiya_ca_crls_published_total", "CRLs signed and published by this process.", &[(&[], self.crls.get())]);
        e.counter(
            "hawiya_ocsp_responses_total",
            "Certificate statuses given in signed OCSP responses (one per certificate asked about).",
            &[
                (&[("status", "good")], self.ocsp_good.get()),
                (&[("status", "revoked")], self.ocsp_revoked.get()),
                (&[("status", "unknown")], self.ocsp_unknown.get()),
            ],
        );
        e.counter(
            "hawiya_ocsp_refusals_total",
            "OCSP requests answered with an error status (RFC 6960 4.2.1).",
            &[
                (&[("status", "malformedRequest")], self.ocsp_malformed.get()),
                (&[("status", "unauthorized")], self.ocsp_unauthorized.get()),
                (&[("status", "internalError")], self.ocsp_internal.get()),
                (&[("status", "tryLater")], self.ocsp_try_later.get()),
            ],
        );
        e.histogram("hawiya_ocsp_request_duration_seconds", "Time to answer an OCSP request.", &[(&[], &self.ocsp_latency)]);
        e.counter("hawiya_tsa_tokens_issued_total", "Timestamp tokens issued (PKIStatus granted).", &[(&[], self.tsa_granted.get())]);
        let refusals: Vec<([(&str, &str); 2], u64)> =
            FailureInfo::ALL.iter().zip(&self.tsa_refused).map(|(f, c)| ([("status", "rejection"), ("failure", failure_name(*f))], c.get())).collect();
        let samples: Vec<(telemetry::Labels<'_>, u64)> = refusals.iter().map(|(labels, n)| (&labels[..], *n)).collect();
        e.counter("hawiya_tsa_refusals_total", "Timestamp requests refused, by PKIStatus and PKIFailureInfo (RFC 3161 2.4.2).", &samples);
        e.histogram("hawiya_tsa_request_duration_seconds", "Time to answer a timestamp request.", &[(&[], &self.tsa_latency)]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_what_it_is_told_under_its_own_labels() {
        let m = CaMetrics::default();
        m.ocsp_answered(&[Some(CertificateStatus::Good), None, Some(CertificateStatus::Good)]);
        m.ocsp_refused(OcspRefusal::Malformed);
        m.timestamp_refused(FailureInfo::BadAlg);
        m.revoked(true);
        let mut e = Exposition::new();
        m.render(&mut e);
        let text = e.finish();
        assert!(text.contains("hawiya_ocsp_responses_total{status=\"good\"} 2\n"), "{text}");
        assert!(text.contains("hawiya_ocsp_responses_total{status=\"unknown\"} 1\n"), "{text}");
        assert!(text.contains("hawiya_ocsp_refusals_total{status=\"malformedRequest\"} 1\n"), "{text}");
        assert!(text.contains("hawiya_tsa_refusals_total{status=\"rejection\",failure=\"badAlg\"} 1\n"), "{text}");
        assert!(text.contains("hawiya_tsa_refusals_total{status=\"rejection\",failure=\"badRequest\"} 0\n"), "{text}");
        assert!(text.contains("hawiya_ca_certificates_suspended_total 1\n"), "{text}");
        assert!(text.contains("hawiya_ca_certificates_revoked_total 0\n"), "{text}");
    }
}
