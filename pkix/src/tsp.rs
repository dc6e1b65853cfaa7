//! RFC 3161 responses: TimeStampResp and PKIStatusInfo, encoded and decoded.
//!
//! Requests and TSTInfo come from the `x509-tsp` crate; the response is written here because
//! `cmpv2` 0.2 (which `x509-tsp` uses for PKIStatusInfo) gives the failure bits as bit
//! positions where its flag set expects masks, so `badAlg` encodes as no bit at all.

use der::asn1::{BitString, Utf8StringRef};
use der::{Decode, Encode, Enumerated, Sequence};

use crate::PkixError;
use crate::cms::ContentInfo;

/// PKIStatus (RFC 3161 §2.4.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Enumerated)]
#[asn1(type = "INTEGER")]
#[repr(u8)]
pub enum PkiStatus {
    /// A token is included.
    Granted = 0,
    /// A token is included, with changes.
    GrantedWithMods = 1,
    /// Refused; the failure information says why.
    Rejection = 2,
    /// Not yet.
    Waiting = 3,
    /// A revocation is imminent.
    RevocationWarning = 4,
    /// A revocation has occurred.
    RevocationNotification = 5,
}

/// The PKIFailureInfo bits RFC 3161 §2.4.2 names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FailureInfo {
    /// Unrecognized or unsupported algorithm.
    BadAlg = 0,
    /// Transaction not permitted or supported.
    BadRequest = 2,
    /// The data submitted has the wrong format.
    BadDataFormat = 5,
    /// The TSA's time source is not available.
    TimeNotAvailable = 14,
    /// The requested TSA policy is not supported.
    UnacceptedPolicy = 15,
    /// The requested extension is not supported.
    UnacceptedExtension = 16,
    /// The additional information requested could not be understood or is not available.
    AddInfoNotAvailable = 17,
    /// The request cannot be handled due to system failure.
    SystemFailure = 25,
}

impl FailureInfo {
    /// Every bit RFC 3161 names.
    pub const ALL: [FailureInfo; 8] = [
        FailureInfo::BadAlg,
        FailureInfo::BadRequest,
        FailureInfo::BadDataFormat,
        FailureInfo::TimeNotAvailable,
        FailureInfo::UnacceptedPolicy,
        FailureInfo::UnacceptedExtension,
        FailureInfo::AddInfoNotAvailable,
        FailureInfo::SystemFailure,
    ];

    /// The named bit list with only this bit set, in DER (no trailing zero bits).
    fn bits(self) -> Result<BitString, PkixError> {
        let n = self as usize;
        let mut bytes = vec![0u8; n / 8 + 1];
        bytes[n / 8] = 0x80 >> (n % 8);
        Ok(BitString::new(7 - (n % 8) as u8, bytes)?)
    }

    /// The bits set in a PKIFailureInfo, those RFC 3161 does not name left out.
    fn set_in(bits: &BitString) -> Vec<FailureInfo> {
        let set: Vec<usize> = bits.bits().enumerate().filter(|(_, b)| *b).map(|(i, _)| i).collect();
        Self::ALL.into_iter().filter(|f| set.contains(&(*f as usize))).collect()
    }
}

#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct PkiStatusInfo<'a> {
    status: PkiStatus,
    #[asn1(optional = "true")]
    status_string: Option<Vec<Utf8StringRef<'a>>>,
    #[asn1(optional = "true")]
    fail_info: Option<BitString>,
}

#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct TimeStampRespDer<'a> {
    status: PkiStatusInfo<'a>,
    #[asn1(optional = "true")]
    time_stamp_token: Option<ContentInfo>,
}

/// A TimeStampResp.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimeStampResp {
    /// The status.
    pub status: PkiStatus,
    /// The texts sent with it.
    pub text: Vec<String>,
    /// The failure bits (RFC 3161's) that are set.
    pub failure: Vec<FailureInfo>,
    /// The token, when granted.
    pub token: Option<ContentInfo>,
}

impl TimeStampResp {
    /// A granted response carrying `token`.
    pub fn granted(token: ContentInfo) -> Self {
        TimeStampResp { status: PkiStatus::Granted, text: Vec::new(), failure: Vec::new(), token: Some(token) }
    }

    /// A rejection for `failure`, with `text` for people.
    pub fn rejection(failure: FailureInfo, text: impl Into<String>) -> Self {
        TimeStampResp { status: PkiStatus::Rejection, text: vec![text.into()], failure: vec![failure], token: None }
    }

    /// The DER encoding.
    pub fn to_der(&self) -> Result<Vec<u8>, PkixError> {
        let text = self.text.iter().map(Utf8StringRef::new).collect::<Result<Vec<_>, _>>()?;
        let fail_info = match self.failure.as_slice() {
            [] => None,
            [one] => Some(one.bits()?),
            _ => return Err(PkixError::Invalid("a response states one failure".into())),
        };
        let status = PkiStatusInfo { status: self.status, status_string: (!text.is_empty()).then_some(text), fail_info };
        Ok(TimeStampRespDer { status, time_stamp_token: self.token.clone() }.to_der()?)
    }

    /// Decodes a DER TimeStampResp.
    pub fn from_der(der: &[u8]) -> Result<Self, PkixError> {
        let r = TimeStampRespDer::from_der(der)?;
        Ok(TimeStampResp {
            status: r.status.status,
            text: r.status.status_string.unwrap_or_default().iter().map(|t| t.as_str().to_owned()).collect(),
            failure: r.status.fail_info.as_ref().map(FailureInfo::set_in).unwrap_or_default(),
            token: r.time_stamp_token,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn failure_bits_are_encoded_at_their_positions() {
        // badAlg is bit 0: one octet 0x80 with 7 unused bits.
        let der = TimeStampResp::rejection(FailureInfo::BadAlg, "x").to_der().expect("der");
        assert!(der.windows(4).any(|w| w == [0x03, 0x02, 0x07, 0x80]), "{der:02x?}");
        // systemFailure is bit 25: four octets, the last 0x40 with 6 unused bits.
        let der = TimeStampResp::rejection(FailureInfo::SystemFailure, "x").to_der().expect("der");
        assert!(der.windows(6).any(|w| w == [0x03, 0x05, 0x06, 0x00, 0x00, 0x00]), "{der:02x?}");
        for failure in FailureInfo::ALL {
            let back = TimeStampResp::from_der(&TimeStampResp::rejection(failure, "why").to_der().expect("der")).expect("decode");
            assert_eq!((back.status, back.failure, back.text), (PkiStatus::Rejection, vec![failure], vec!["why".to_owned()]));
        }
    }
}
