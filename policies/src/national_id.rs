//! The national identity number: one type and one rule for the whole project.
//!
//! The CLI, the RA API, device activation, the CA (the subject serialNumber
//! `PNO<CC>-<national id>`) and the login page all take a national id through
//! [`NationalId`], so a value one of them accepts is a value every other one accepts.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A national identity number: 5 to 20 ASCII digits. Made only by parsing, so holding one
/// means it follows the rule; serde deserializes it from a string by the same rule.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NationalId(String);

/// Why a string is not a national id. The message is one line, the same wherever a national
/// id enters, and does not repeat the input (which may be long or hostile).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("a national id is {min} to {max} digits (0-9)", min = NationalId::MIN_DIGITS, max = NationalId::MAX_DIGITS)]
pub struct InvalidNationalId;

impl NationalId {
    /// The fewest digits of a national id.
    pub const MIN_DIGITS: usize = 5;
    /// The most digits of a national id.
    pub const MAX_DIGITS: usize = 20;

    /// The digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for NationalId {
    type Err = InvalidNationalId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if (Self::MIN_DIGITS..=Self::MAX_DIGITS).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()) {
            Ok(NationalId(s.to_owned()))
        } else {
            Err(InvalidNationalId)
        }
    }
}

impl TryFrom<String> for NationalId {
    type Error = InvalidNationalId;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl TryFrom<&str> for NationalId {
    type Error = InvalidNationalId;

    fn try_from(s: &str) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<NationalId> for String {
    fn from(id: NationalId) -> Self {
        id.0
    }
}

impl AsRef<str> for NationalId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NationalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for NationalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NationalId({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_to_twenty_ascii_digits_and_nothing_else() {
        for good in ["12345", "9861234567", "01234567890123456789"] {
            assert_eq!(good.parse::<NationalId>().map(String::from), Ok(good.to_owned()));
        }
        for bad in ["", "1234", "012345678901234567890", "98-61", " 98612", "98612 ", "９８６１２", "9861a", "98612\n", "+98612"] {
            assert_eq!(bad.parse::<NationalId>(), Err(InvalidNationalId), "{bad:?}");
        }
        assert_eq!(InvalidNationalId.to_string(), "a national id is 5 to 20 digits (0-9)");
    }

    #[test]
    fn serde_checks_the_rule_too() {
        let id: NationalId = serde_json::from_str("\"9861234567\"").expect("a national id");
        assert_eq!((id.as_str(), id.to_string()), ("9861234567", "9861234567".to_owned()));
        assert_eq!(serde_json::to_string(&id).expect("serialize"), "\"9861234567\"");
        let e = serde_json::from_str::<NationalId>("\"98-61\"").expect_err("refused");
        assert!(e.to_string().starts_with("a national id is 5 to 20 digits (0-9)"), "{e}");
    }
}
