use std::fmt;
use std::str::FromStr;

use crate::Error;

/// The name of a key: `soft:<label>` or an RFC 7512 PKCS#11 URI `pkcs11:token=<t>;object=<o>`.
///
/// A reference says where a key is, never what it is: it carries no secret and is safe to
/// log, store and print.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum KeyRef {
    /// A key in the soft key store.
    Soft {
        /// The key's label (also its file name).
        label: String,
    },
    /// A key object on a PKCS#11 token.
    Pkcs11 {
        /// The token label.
        token: String,
        /// The object label (CKA_LABEL).
        object: String,
    },
}

impl KeyRef {
    /// The label of the key inside its store.
    pub fn label(&self) -> &str {
        match self {
            KeyRef::Soft { label } => label,
            KeyRef::Pkcs11 { object, .. } => object,
        }
    }
}

impl fmt::Display for KeyRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyRef::Soft { label } => write!(f, "soft:{label}"),
            KeyRef::Pkcs11 { token, object } => {
                write!(f, "pkcs11:token={};object={}", pct_encode(token), pct_encode(object))
            }
        }
    }
}

impl FromStr for KeyRef {
    type Err = Error;

    fn from_str(uri: &str) -> Result<Self, Error> {
        let invalid = |reason| Error::InvalidKeyRef { uri: uri.to_owned(), reason };
        if let Some(label) = uri.strip_prefix("soft:") {
            crate::check_label(label).map_err(|_| invalid("the label must be 1-64 characters out of A-Z a-z 0-9 . _ -"))?;
            return Ok(KeyRef::Soft { label: label.to_owned() });
        }
        let Some(attributes) = uri.strip_prefix("pkcs11:") else {
            return Err(invalid("expected soft:<label> or pkcs11:token=…;object=…"));
        };
        // RFC 7512: path attributes separated by ';', optional query after '?' (ignored here
        // except for pin-source, which we refuse: PINs come from configuration, never a URI).
        let (path, query) = attributes.split_once('?').unwrap_or((attributes, ""));
        if query.split('&').any(|q| q.starts_with("pin-value") || q.starts_with("pin-source")) {
            return Err(invalid("PINs are never taken from a key URI"));
        }
        let (mut token, mut object) = (None, None);
        for attribute in path.split(';').filter(|a| !a.is_empty()) {
            let (name, value) = attribute.split_once('=').ok_or_else(|| invalid("attribute without '='"))?;
            let value = pct_decode(value).ok_or_else(|| invalid("bad percent-encoding"))?;
            match name {
                "token" if token.is_none() => token = Some(value),
                "object" if object.is_none() => object = Some(value),
                "token" | "object" => return Err(invalid("attribute given twice")),
                // Other RFC 7512 attributes (manufacturer, model, serial, id, type, …) narrow
                // the match further; we identify keys by token and object label only.
                _ => {}
            }
        }
        match (token, object) {
            (Some(token), Some(object)) if !token.is_empty() && !object.is_empty() => Ok(KeyRef::Pkcs11 { token, object }),
            _ => Err(invalid("a PKCS#11 key URI needs both token= and object=")),
        }
    }
}

fn pct_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn pct_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soft_uri_round_trips() {
        let key: KeyRef = "soft:root-ca.2026".parse().expect("valid");
        assert_eq!(key, KeyRef::Soft { label: "root-ca.2026".into() });
        assert_eq!(key.to_string(), "soft:root-ca.2026");
    }

    #[test]
    fn pkcs11_uri_round_trips_with_escapes() {
        let key: KeyRef = "pkcs11:token=Hawiya%20HSM;object=root%2Fca;id=%01".parse().expect("valid");
        assert_eq!(key, KeyRef::Pkcs11 { token: "Hawiya HSM".into(), object: "root/ca".into() });
        assert_eq!(key.to_string().parse::<KeyRef>().expect("valid"), key);
    }

    #[test]
    fn bad_uris_are_refused() {
        for bad in [
            "",
            "soft:",
            "soft:../etc/passwd",
            "file:/x",
            "pkcs11:token=a",
            "pkcs11:object=b",
            "pkcs11:token=a;token=b;object=c",
            "pkcs11:token=a;object=b?pin-value=1234",
            "pkcs11:token=%zz;object=b",
        ] {
            assert!(bad.parse::<KeyRef>().is_err(), "{bad} should be refused");
        }
    }
}
