//! The client identifier of a relying party: one type and one rule for the whole project.
//!
//! A client id enters through a service's policy file, `hawiya client add` and the protocol
//! endpoints (`client_id`, HTTP Basic); each parses it as a [`ClientId`], so a value one of
//! them accepts is a value every other one accepts, and nothing odd reaches a log line, a
//! page or a store key.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A client id: 1 to 64 characters, ASCII letters, digits, `-`, `_` and `.`, starting with a
/// letter or digit. Made only by parsing; serde deserializes it by the same rule.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ClientId(String);

/// Why a string is not a client id: one line, the same wherever a client id enters, without
/// the input (which may be long or hostile).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("a client id is 1 to {max} characters: ASCII letters, digits, '-', '_' or '.', starting with a letter or digit", max = ClientId::MAX_LEN)]
pub struct InvalidClientId;

impl ClientId {
    /// The longest client id.
    pub const MAX_LEN: usize = 64;

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ClientId {
    type Err = InvalidClientId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.');
        let starts_well = s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric());
        if s.len() <= Self::MAX_LEN && starts_well && s.bytes().all(allowed) { Ok(ClientId(s.to_owned())) } else { Err(InvalidClientId) }
    }
}

impl TryFrom<String> for ClientId {
    type Error = InvalidClientId;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<ClientId> for String {
    fn from(id: ClientId) -> Self {
        id.0
    }
}

impl std::ops::Deref for ClientId {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for ClientId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for ClientId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for ClientId {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl PartialEq<String> for ClientId {
    fn eq(&self, other: &String) -> bool {
        &self.0 == other
    }
}

impl PartialEq<ClientId> for String {
    fn eq(&self, other: &ClientId) -> bool {
        *self == other.0
    }
}

impl PartialEq<ClientId> for &str {
    fn eq(&self, other: &ClientId) -> bool {
        *self == other.0
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClientId({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_digits_and_three_marks_and_nothing_else() {
        for good in ["land-registry", "a", "tax_office.v2", "9-lives", &"x".repeat(64)] {
            assert_eq!(good.parse::<ClientId>().map(String::from), Ok(good.to_owned()));
        }
        for bad in ["", "-land", ".hidden", "land registry", "land/registry", "السجل", "a\n", "a:b", &"x".repeat(65)] {
            assert_eq!(bad.parse::<ClientId>(), Err(InvalidClientId), "{bad:?}");
        }
        assert!(InvalidClientId.to_string().starts_with("a client id is 1 to 64 characters"));
    }

    #[test]
    fn serde_checks_the_rule_too() {
        let id: ClientId = serde_json::from_str("\"land-registry\"").expect("a client id");
        assert_eq!(id, "land-registry");
        assert!(serde_json::from_str::<ClientId>("\"land registry\"").is_err_and(|e| e.to_string().starts_with("a client id is")));
    }
}
