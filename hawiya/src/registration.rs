//! Registering citizens: what a registration officer enters after proving a citizen in
//! person, as typed values that refuse impossible or hostile data, and the one function that
//! stores a citizen.
//!
//! `hawiya citizen add` (each option parsed by clap into these types) and the RA API's
//! `POST /ra/citizens` (deserialized into them) both go through [`NewCitizen`] and
//! [`register`], so they accept and refuse exactly the same data, and a refusal stores
//! nothing. Each refusal is one line and does not repeat long or hostile input whole.

use std::fmt;
use std::str::FromStr;

use idp::citizens::{Address, Names, Profile};
use idp::credentials::{Password, PasswordHasher, TotpSecret};
use policies::NationalId;
use serde::Deserialize;
use store::{CitizenRecord, DurableStore, StoreError};
use time::{Date, Month};

/// Why a value is not citizen data.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidCitizenData {
    /// A name is empty or only spaces.
    #[error("a name cannot be empty")]
    EmptyName,
    /// A name is longer than [`PersonName::MAX_CHARS`].
    #[error("a name has at most {max} characters, not {0}", max = PersonName::MAX_CHARS)]
    LongName(usize),
    /// A name holds control, invisible or text-direction characters.
    #[error("a name cannot hold control, invisible or text-direction characters")]
    NameCharacters,
    /// Not written `YYYY-MM-DD`.
    #[error("{0} is not a date written YYYY-MM-DD")]
    DateFormat(String),
    /// Written `YYYY-MM-DD`, but no such day exists.
    #[error("{0} is not a day of the calendar")]
    NoSuchDay(String),
    /// A birthdate after today.
    #[error("a birthdate cannot be in the future ({0})")]
    FutureBirthdate(String),
    /// A birthdate before [`Birthdate::EARLIEST`].
    #[error("a birthdate before {earliest} is not a living citizen's ({0})", earliest = Birthdate::EARLIEST)]
    AncientBirthdate(String),
    /// Not an e-mail address.
    #[error("{0} is not an e-mail address such as name@example.jo")]
    NotAnEmail(String),
    /// Not a phone number.
    #[error("{0} is not a phone number: + and 7 to 15 digits, such as +962790000000")]
    NotAPhoneNumber(String),
    /// An address that is empty, too long or holds control characters.
    #[error("an address has 1 to {max} characters, and no control characters but line breaks", max = PostalAddress::MAX_CHARS)]
    Address,
}

/// The input as an error message shows it: quoted, control characters escaped, and cut
/// short, so that a hostile value can neither flood nor drive the officer's terminal.
fn shown(input: &str) -> String {
    const SHOWN: usize = 32;
    let mut cut: String = input.chars().take(SHOWN).collect();
    if input.chars().nth(SHOWN).is_some() {
        cut.push('…');
    }
    format!("{cut:?}")
}

/// Characters no name needs and that can hide or disguise what a name says: text-direction
/// marks, embeddings, overrides and isolates, the byte order mark, line and paragraph
/// separators. (Joiners, which some scripts need, are allowed.)
fn disguising(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{2028}' | '\u{2029}' | '\u{FEFF}')
        || c.is_control()
}

/// One name of a citizen (given or family, in one script): 1 to 100 characters, without
/// control, invisible or text-direction characters; spaces around it are dropped.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct PersonName(String);

impl PersonName {
    /// The most characters of one name.
    pub const MAX_CHARS: usize = 100;

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for PersonName {
    type Err = InvalidCitizenData;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let name = s.trim();
        let len = name.chars().count();
        if len == 0 {
            return Err(InvalidCitizenData::EmptyName);
        }
        if len > Self::MAX_CHARS {
            return Err(InvalidCitizenData::LongName(len));
        }
        if name.chars().any(disguising) {
            return Err(InvalidCitizenData::NameCharacters);
        }
        Ok(PersonName(name.to_owned()))
    }
}

impl TryFrom<String> for PersonName {
    type Error = InvalidCitizenData;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// A name in Arabic and in Latin script (the Latin one goes into certificates).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BilingualName {
    /// Arabic script.
    pub ar: PersonName,
    /// Latin script.
    pub en: PersonName,
}

impl From<&BilingualName> for Names {
    fn from(n: &BilingualName) -> Self {
        Names { ar: n.ar.0.clone(), en: n.en.0.clone() }
    }
}

/// A birthdate: a day of the calendar written `YYYY-MM-DD`, not in the future and not before
/// 1900.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Birthdate(Date);

impl Birthdate {
    /// The earliest birthdate accepted.
    pub const EARLIEST: &str = "1900-01-01";

    /// Parses `s` as a birthdate on the day `today`.
    pub fn parse_on(s: &str, today: Date) -> Result<Self, InvalidCitizenData> {
        let b = s.as_bytes();
        let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' || !digits(0..4) || !digits(5..7) || !digits(8..10) {
            return Err(InvalidCitizenData::DateFormat(shown(s)));
        }
        // Ten ASCII bytes with digits where they were checked to be.
        let number = |r: std::ops::Range<usize>| s[r].parse::<u16>().unwrap_or_default();
        let (year, month, day) = (i32::from(number(0..4)), number(5..7), number(8..10));
        let date = Month::try_from(u8::try_from(month).unwrap_or_default())
            .and_then(|m| Date::from_calendar_date(year, m, u8::try_from(day).unwrap_or_default()))
            .map_err(|_| InvalidCitizenData::NoSuchDay(s.to_owned()))?;
        if date > today {
            return Err(InvalidCitizenData::FutureBirthdate(s.to_owned()));
        }
        if year < 1900 {
            return Err(InvalidCitizenData::AncientBirthdate(s.to_owned()));
        }
        Ok(Birthdate(date))
    }
}

impl FromStr for Birthdate {
    type Err = InvalidCitizenData;

    /// Parses a birthdate on today's date where the day is furthest ahead (UTC+14), so that
    /// a child born today anywhere is not refused as born in the future.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse_on(s, (time::OffsetDateTime::now_utc() + time::Duration::hours(14)).date())
    }
}

impl TryFrom<String> for Birthdate {
    type Error = InvalidCitizenData;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl fmt::Display for Birthdate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.0.year(), u8::from(self.0.month()), self.0.day())
    }
}

/// An e-mail address: `local@domain`, at most 254 characters; the local part 1 to 64 of the
/// characters RFC 5322 allows unquoted, the domain two or more DNS labels (letters, digits,
/// hyphens; an internationalized domain in its `xn--` form).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Email(String);

impl FromStr for Email {
    type Err = InvalidCitizenData;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let refuse = || InvalidCitizenData::NotAnEmail(shown(s));
        let (local, domain) = s.rsplit_once('@').ok_or_else(refuse)?;
        let atext = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c);
        let local_ok = (1..=64).contains(&local.len()) && local.split('.').all(|part| !part.is_empty() && part.chars().all(atext));
        let label_ok =
            |l: &str| (1..=63).contains(&l.len()) && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') && !l.starts_with('-') && !l.ends_with('-');
        let domain_ok = domain.len() <= 253 && domain.split('.').count() >= 2 && domain.split('.').all(label_ok);
        if s.len() > 254 || !local_ok || !domain_ok {
            return Err(refuse());
        }
        Ok(Email(s.to_owned()))
    }
}

impl TryFrom<String> for Email {
    type Error = InvalidCitizenData;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// A phone number as E.164 writes it: `+` and 7 to 15 digits, no spaces.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct PhoneNumber(String);

impl FromStr for PhoneNumber {
    type Err = InvalidCitizenData;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.strip_prefix('+') {
            Some(digits) if (7..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) => Ok(PhoneNumber(s.to_owned())),
            _ => Err(InvalidCitizenData::NotAPhoneNumber(shown(s))),
        }
    }
}

impl TryFrom<String> for PhoneNumber {
    type Error = InvalidCitizenData;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// A postal address as written on an envelope: 1 to 500 characters, lines apart by line
/// breaks, no other control characters; spaces around it are dropped.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct PostalAddress(String);

impl PostalAddress {
    /// The most characters of an address.
    pub const MAX_CHARS: usize = 500;
}

impl FromStr for PostalAddress {
    type Err = InvalidCitizenData;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let address = s.trim();
        let len = address.chars().count();
        if len == 0 || len > Self::MAX_CHARS || address.chars().any(|c| c != '\n' && disguising(c)) {
            return Err(InvalidCitizenData::Address);
        }
        Ok(PostalAddress(address.to_owned()))
    }
}

impl TryFrom<String> for PostalAddress {
    type Error = InvalidCitizenData;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// A citizen as the registration officer enters them (the password apart).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewCitizen {
    /// The national identity number.
    pub national_id: NationalId,
    /// Given name.
    pub given_name: BilingualName,
    /// Family name.
    pub family_name: BilingualName,
    /// Birthdate.
    #[serde(default)]
    pub birthdate: Option<Birthdate>,
    /// E-mail address.
    #[serde(default)]
    pub email: Option<Email>,
    /// Phone number.
    #[serde(default)]
    pub phone_number: Option<PhoneNumber>,
    /// Postal address.
    #[serde(default)]
    pub address: Option<PostalAddress>,
}

impl NewCitizen {
    /// The profile the provider stores and releases claims from.
    pub fn profile(&self) -> Profile {
        Profile {
            given_name: (&self.given_name).into(),
            family_name: (&self.family_name).into(),
            birthdate: self.birthdate.map(|b| b.to_string()),
            email: self.email.as_ref().map(|e| e.0.clone()),
            phone_number: self.phone_number.as_ref().map(|p| p.0.clone()),
            address: self.address.as_ref().map(|a| Address { formatted: Some(a.0.clone()), ..Default::default() }),
        }
    }
}

/// Why a registration failed.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// The national id is registered already.
    #[error("a citizen with national id {0} is already registered")]
    Duplicate(NationalId),
    /// The password does not meet the policy, or hashing it or drawing the citizen's
    /// identifier failed.
    #[error(transparent)]
    Credential(#[from] idp::IdpError),
    /// The store failed.
    #[error(transparent)]
    Store(StoreError),
}

/// Hashes a new citizen's password (Argon2id: tens of milliseconds of CPU; the server runs
/// it off the async threads).
pub fn hash_password(password: String) -> Result<String, RegisterError> {
    Ok(PasswordHasher::new()?.hash(&Password::new(password)?)?)
}

/// Stores a citizen with their password hash and, if enrolled already, their TOTP secret;
/// `officer` is named in the audit trail.
pub async fn register(
    durable: &dyn DurableStore,
    citizen: &NewCitizen,
    password_hash: String,
    totp: Option<&TotpSecret>,
    officer: &str,
) -> Result<(), RegisterError> {
    let id = idp::provider::random_token()?[..22].to_owned();
    let record = CitizenRecord {
        id,
        national_id: citizen.national_id.to_string(),
        profile: citizen.profile().to_json(),
        password_hash,
        totp_secret: totp.map(|t| hex::encode(t.expose())),
        created_at: idp::unix_now(),
    };
    durable.insert_citizen(&record).await.map_err(|e| match e {
        StoreError::DuplicateCitizen(_) => RegisterError::Duplicate(citizen.national_id.clone()),
        other => RegisterError::Store(other),
    })?;
    tracing::info!(target: "audit", event = "citizen.registered", national_id = %citizen.national_id, officer, "citizen registered");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> Date {
        Date::from_calendar_date(2026, Month::March, 1).expect("a date")
    }

    #[test]
    fn names_are_trimmed_bounded_and_free_of_disguise() {
        assert_eq!("  ليلى ".parse::<PersonName>().map(|n| n.as_str().to_owned()), Ok("ليلى".to_owned()));
        assert_eq!("Abd al-Rahman".parse::<PersonName>().map(|n| n.as_str().to_owned()), Ok("Abd al-Rahman".to_owned()));
        assert_eq!("a".repeat(100).parse::<PersonName>().map(|n| n.as_str().len()), Ok(100));
        assert_eq!("".parse::<PersonName>(), Err(InvalidCitizenData::EmptyName));
        assert_eq!(" \t ".parse::<PersonName>(), Err(InvalidCitizenData::EmptyName));
        assert_eq!("ا".repeat(101).parse::<PersonName>(), Err(InvalidCitizenData::LongName(101)));
        assert_eq!("x".repeat(100_000).parse::<PersonName>(), Err(InvalidCitizenData::LongName(100_000)));
        for hostile in ["Lay\nla", "Lay\u{1b}[31mla", "Lay\u{0}la", "Lay\u{7f}la", "Lay\u{202e}al", "Lay\u{2066}la", "Lay\u{feff}la", "Lay\u{85}la"] {
            assert_eq!(hostile.parse::<PersonName>(), Err(InvalidCitizenData::NameCharacters), "{hostile:?}");
        }
        assert_eq!(InvalidCitizenData::LongName(100_000).to_string(), "a name has at most 100 characters, not 100000");
    }

    #[test]
    fn birthdates_are_days_of_the_calendar_in_the_past() {
        let b = |s: &str| Birthdate::parse_on(s, today());
        assert_eq!(b("1990-04-01").map(|d| d.to_string()), Ok("1990-04-01".to_owned()));
        assert_eq!(b("2000-02-29").map(|d| d.to_string()), Ok("2000-02-29".to_owned()), "a leap day");
        assert_eq!(b("2026-03-01").map(|d| d.to_string()), Ok("2026-03-01".to_owned()), "born today");
        assert_eq!(b("1990-02-30"), Err(InvalidCitizenData::NoSuchDay("1990-02-30".into())));
        assert_eq!(b("1900-02-29"), Err(InvalidCitizenData::NoSuchDay("1900-02-29".into())), "1900 was no leap year");
        assert_eq!(b("1990-13-01"), Err(InvalidCitizenData::NoSuchDay("1990-13-01".into())));
        assert_eq!(b("1990-00-10"), Err(InvalidCitizenData::NoSuchDay("1990-00-10".into())));
        assert_eq!(b("2026-03-02"), Err(InvalidCitizenData::FutureBirthdate("2026-03-02".into())));
        assert_eq!(b("2999-01-01"), Err(InvalidCitizenData::FutureBirthdate("2999-01-01".into())));
        assert_eq!(b("1899-12-31"), Err(InvalidCitizenData::AncientBirthdate("1899-12-31".into())));
        for bad in ["1990-4-1", "01-04-1990", "1990/04/01", "1990-04-01 ", "١٩٩٠-٠٤-٠١", "", "19900401xx"] {
            assert_eq!(b(bad), Err(InvalidCitizenData::DateFormat(shown(bad))), "{bad:?}");
        }
        assert_eq!(b("1990-02-30").expect_err("refused").to_string(), "1990-02-30 is not a day of the calendar");
    }

    #[test]
    fn e_mail_addresses_and_phone_numbers() {
        for good in ["layla@example.jo", "layla.haddad+rta@mail.gov.jo", "x@xn--mgbaal8b0b.xn--mgbaam7a8h"] {
            assert!(good.parse::<Email>().is_ok(), "{good}");
        }
        for bad in ["not an email", "layla@", "@example.jo", "layla@localhost", "lay la@example.jo", "layla@exa_mple.jo", "layla..h@example.jo", "layla@-x.jo"]
        {
            assert_eq!(bad.parse::<Email>(), Err(InvalidCitizenData::NotAnEmail(shown(bad))), "{bad:?}");
        }
        assert_eq!("not an email".parse::<Email>().expect_err("refused").to_string(), "\"not an email\" is not an e-mail address such as name@example.jo");
        for good in ["+962790000000", "+1234567", "+123456789012345"] {
            assert!(good.parse::<PhoneNumber>().is_ok(), "{good}");
        }
        for bad in ["call me", "962790000000", "+123456", "+1234567890123456", "+962 79 000 0000", "+٩٦٢٧٩٠٠٠٠٠٠٠", ""] {
            assert_eq!(bad.parse::<PhoneNumber>(), Err(InvalidCitizenData::NotAPhoneNumber(shown(bad))), "{bad:?}");
        }
    }

    #[test]
    fn hostile_input_is_shown_short_and_escaped() {
        let e = format!("{}\u{1b}[2J", "a".repeat(100_000)).parse::<Email>().expect_err("refused").to_string();
        assert_eq!(e, format!("\"{}…\" is not an e-mail address such as name@example.jo", "a".repeat(32)));
        let e = "call\u{1b}[2Jme".parse::<PhoneNumber>().expect_err("refused").to_string();
        assert!(e.starts_with("\"call\\u{1b}[2Jme\" is not a phone number"), "{e}");
        assert_eq!("x".repeat(501).parse::<PostalAddress>(), Err(InvalidCitizenData::Address));
        assert_eq!("Amman\u{0}".parse::<PostalAddress>(), Err(InvalidCitizenData::Address));
        assert!("شارع الملكة رانيا\nعمّان".parse::<PostalAddress>().is_ok(), "lines are allowed");
    }

    #[test]
    fn a_new_citizen_from_json_is_checked_field_by_field() {
        let citizen: NewCitizen = serde_json::from_str(
            r#"{"national_id":"9861234567","given_name":{"ar":"ليلى","en":"Layla"},"family_name":{"ar":"حداد","en":"Haddad"},
                "birthdate":"1990-04-01","email":"layla@example.jo","phone_number":"+962790000000","address":"Amman"}"#,
        )
        .expect("a citizen");
        let profile = citizen.profile();
        assert_eq!(
            (profile.given_name.en.as_str(), profile.birthdate.as_deref(), profile.phone_number.as_deref()),
            ("Layla", Some("1990-04-01"), Some("+962790000000"))
        );
        let refused =
            serde_json::from_str::<NewCitizen>(r#"{"national_id":"9861234567","given_name":{"ar":"","en":"Layla"},"family_name":{"ar":"a","en":"b"}}"#);
        assert!(refused.expect_err("empty name").to_string().starts_with("a name cannot be empty"));
    }
}
