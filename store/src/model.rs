use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A certificate serial number: the DER INTEGER content octets of a positive number.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Serial(Vec<u8>);

impl Serial {
    /// Wraps serial octets; refuses empty, negative or over-long (> 20 octets) serials and
    /// non-minimal encodings (RFC 5280 4.1.2.2).
    pub fn new(bytes: Vec<u8>) -> Result<Self, String> {
        match bytes.as_slice() {
            [] => Err("empty serial number".into()),
            b if b.len() > 20 => Err("serial number longer than 20 octets".into()),
            [first, ..] if first & 0x80 != 0 => Err("negative serial number".into()),
            [0, second, ..] if second & 0x80 == 0 => Err("serial number with a superfluous leading zero".into()),
            [0] => Err("serial number zero".into()),
            _ => Ok(Serial(bytes)),
        }
    }

    /// The octets.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Display for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(&self.0))
    }
}

impl fmt::Debug for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Serial({self})")
    }
}

impl FromStr for Serial {
    type Err = String;

    /// Hex, with or without colons or a `0x` prefix, as operators copy it from OpenSSL.
    fn from_str(s: &str) -> Result<Self, String> {
        let cleaned: String = s.trim().trim_start_matches("0x").chars().filter(|c| *c != ':').collect();
        let mut bytes = hex::decode(&cleaned).map_err(|_| format!("{s:?} is not a hexadecimal serial number"))?;
        // Accept the forms OpenSSL prints: strip extra leading zeros, add one for a high bit.
        while bytes.len() > 1 && bytes[0] == 0 && bytes[1] & 0x80 == 0 {
            bytes.remove(0);
        }
        if bytes.first().is_some_and(|b| b & 0x80 != 0) {
            bytes.insert(0, 0);
        }
        Serial::new(bytes)
    }
}

/// RFC 5280 CRLReason. `removeFromCRL` is absent: it only exists in delta CRLs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RevocationReason {
    /// unspecified (0)
    Unspecified,
    /// keyCompromise (1)
    KeyCompromise,
    /// cACompromise (2)
    CaCompromise,
    /// affiliationChanged (3)
    AffiliationChanged,
    /// superseded (4)
    Superseded,
    /// cessationOfOperation (5)
    CessationOfOperation,
    /// certificateHold (6): suspension, may be released.
    CertificateHold,
    /// privilegeWithdrawn (9)
    PrivilegeWithdrawn,
    /// aACompromise (10)
    AaCompromise,
}

impl RevocationReason {
    const ALL: [(RevocationReason, &'static str, u8); 9] = [
        (RevocationReason::Unspecified, "unspecified", 0),
        (RevocationReason::KeyCompromise, "keyCompromise", 1),
        (RevocationReason::CaCompromise, "cACompromise", 2),
        (RevocationReason::AffiliationChanged, "affiliationChanged", 3),
        (RevocationReason::Superseded, "superseded", 4),
        (RevocationReason::CessationOfOperation, "cessationOfOperation", 5),
        (RevocationReason::CertificateHold, "certificateHold", 6),
        (RevocationReason::PrivilegeWithdrawn, "privilegeWithdrawn", 9),
        (RevocationReason::AaCompromise, "aACompromise", 10),
    ];

    /// The CRLReason code.
    pub fn code(self) -> u8 {
        Self::ALL.iter().find(|(r, _, _)| *r == self).map_or(0, |(_, _, c)| *c)
    }

    /// The reason with that code.
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.iter().find(|(_, _, c)| *c == code).map(|(r, _, _)| *r)
    }

    /// The RFC 5280 name (`keyCompromise`, …).
    pub fn name(self) -> &'static str {
        Self::ALL.iter().find(|(r, _, _)| *r == self).map_or("unspecified", |(_, n, _)| n)
    }
}

impl fmt::Display for RevocationReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for RevocationReason {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL.iter().find(|(_, n, _)| n.eq_ignore_ascii_case(s) || n.eq_ignore_ascii_case(&s.replace(['-', '_'], ""))).map(|(r, _, _)| *r).ok_or_else(
            || {
                let names: Vec<_> = Self::ALL.iter().map(|(_, n, _)| *n).collect();
                format!("unknown revocation reason {s:?} (one of {})", names.join(", "))
            },
        )
    }
}

/// Where a certificate stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CertificateStatus {
    /// Not revoked.
    Good,
    /// Revoked (or on hold, with [`RevocationReason::CertificateHold`]) at `at` (Unix seconds).
    Revoked {
        /// Why.
        reason: RevocationReason,
        /// When, in Unix seconds.
        at: i64,
    },
}

impl CertificateStatus {
    /// Whether the certificate is on hold (suspended).
    pub fn on_hold(self) -> bool {
        matches!(self, CertificateStatus::Revoked { reason: RevocationReason::CertificateHold, .. })
    }
}

/// A certificate to store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewCertificate {
    /// Its serial number.
    pub serial: Serial,
    /// The name of the CA that issued it.
    pub issuer: String,
    /// The profile it was issued under.
    pub profile: String,
    /// Its subject, for people reading lists.
    pub subject: String,
    /// notBefore, Unix seconds.
    pub not_before: i64,
    /// notAfter, Unix seconds.
    pub not_after: i64,
    /// The certificate.
    pub der: Vec<u8>,
    /// When it was issued, Unix seconds.
    pub issued_at: i64,
}

/// A stored certificate and its status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateRecord {
    /// What was stored at issuance.
    pub certificate: NewCertificate,
    /// Its current status.
    pub status: CertificateStatus,
}

/// A line of a CRL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevokedEntry {
    /// The serial number.
    pub serial: Serial,
    /// The reason.
    pub reason: RevocationReason,
    /// When, in Unix seconds.
    pub at: i64,
}

/// An issued RFC 3161 timestamp token, as recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimestampRecord {
    /// The token's serial number.
    pub serial: Serial,
    /// Its genTime, Unix seconds.
    pub gen_time: i64,
    /// The message imprint's digest algorithm (`sha256`, …).
    pub hash_algorithm: String,
    /// The message imprint.
    pub imprint: Vec<u8>,
    /// The TSA policy it was issued under (dotted OID).
    pub policy: String,
    /// Who asked (the client's address).
    pub requester: String,
}

/// A signed CRL as published.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublishedCrl {
    /// The CA.
    pub issuer: String,
    /// Its cRLNumber.
    pub number: u64,
    /// thisUpdate, Unix seconds.
    pub this_update: i64,
    /// nextUpdate, Unix seconds.
    pub next_update: i64,
    /// The DER CRL.
    pub der: Vec<u8>,
}

/// What a key ceremony produced: each authority's key reference and certificate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CeremonyRecord {
    /// When it ran (RFC 3339).
    pub performed_at: String,
    /// The country code of the hierarchy (ISO 3166-1 alpha-2).
    pub country: String,
    /// The base URL written into certificates (AIA, CRL distribution points).
    pub base_url: String,
    /// The authorities and service identities it created, then those each renewal added
    /// (a renewed CA's new generation and its OCSP responder), in that order.
    pub authorities: Vec<AuthorityRecord>,
    /// The renewals of issuing CAs since the ceremony (`hawiya keys renew-ca`), oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub renewals: Vec<RenewalRecord>,
}

/// One renewal of an issuing CA: a new key and certificate under the root that new issuance
/// moves to, while the generation it replaces keeps its key for OCSP and CRLs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenewalRecord {
    /// When it ran (RFC 3339).
    pub performed_at: String,
    /// The CA renewed (its first generation's name, `citizen-authentication-ca`, …).
    pub ca: String,
    /// The name of the new generation (`citizen-authentication-ca-2`, …), an authority of
    /// the record.
    pub generation: String,
    /// The name of the generation it replaced for new issuance.
    pub replaces: String,
}

/// One key and certificate created at the ceremony.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorityRecord {
    /// Its name (`root`, `citizen-signing-ca`, `citizen-signing-ca-ocsp`, `tsa`, …).
    pub name: String,
    /// The profile its certificate follows.
    pub profile: String,
    /// The name of the authority that issued it (itself for the root).
    pub issuer: String,
    /// The key's URI in the key store.
    pub key: String,
    /// The algorithm the key signs with (JOSE name).
    pub algorithm: String,
    /// The certificate, hex DER.
    pub certificate: String,
}
