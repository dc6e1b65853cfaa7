//! Citizens as the provider sees them: names in Arabic and Latin script, birthdate, contact
//! data, and the claims released about them.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::IdpError;

/// A name in both scripts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Names {
    /// Arabic script.
    pub ar: String,
    /// Latin script.
    pub en: String,
}

/// A postal address (OIDC Core 5.1.1).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Address {
    /// The whole address as one would write it on an envelope.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub formatted: Option<String>,
    /// Street, building.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub street_address: Option<String>,
    /// City.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locality: Option<String>,
    /// Governorate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Postal code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
    /// Country (ISO 3166-1 alpha-2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
}

/// What the provider knows of a citizen besides credentials.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Given name.
    pub given_name: Names,
    /// Family name.
    pub family_name: Names,
    /// Birthdate, `YYYY-MM-DD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub birthdate: Option<String>,
    /// E-mail address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Phone number, E.164.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
    /// Postal address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Address>,
}

impl Profile {
    /// Reads a stored profile.
    pub fn from_json(json: &str) -> Result<Self, IdpError> {
        serde_json::from_str(json).map_err(|source| IdpError::Record { what: "citizen profile", source })
    }

    /// The profile as stored.
    pub fn to_json(&self) -> String {
        // A struct of strings always serializes.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The full name in one script.
    pub fn name(&self, lang: Lang) -> String {
        format!("{} {}", self.given_name.get(lang), self.family_name.get(lang))
    }
}

/// The languages of names and pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Lang {
    /// Arabic, the default.
    Ar,
    /// English.
    En,
}

impl Lang {
    /// The BCP 47 tag.
    pub fn tag(self) -> &'static str {
        match self {
            Lang::Ar => "ar",
            Lang::En => "en",
        }
    }

    /// The first supported language of a space- or comma-separated preference list
    /// (`ui_locales`, `claims_locales`, `Accept-Language`).
    pub fn first_of(list: &str) -> Option<Lang> {
        Self::all_of(list).into_iter().next()
    }

    /// Every supported language of a preference list, in its order.
    pub fn all_of(list: &str) -> Vec<Lang> {
        let mut out = Vec::new();
        for tag in list.split([' ', ',']) {
            let primary = tag.split(';').next().unwrap_or_default().trim().split('-').next().unwrap_or_default().to_ascii_lowercase();
            let lang = match primary.as_str() {
                "ar" => Lang::Ar,
                "en" => Lang::En,
                _ => continue,
            };
            if !out.contains(&lang) {
                out.push(lang);
            }
        }
        out
    }
}

impl Names {
    /// The name in one script.
    pub fn get(&self, lang: Lang) -> &str {
        match lang {
            Lang::Ar => &self.ar,
            Lang::En => &self.en,
        }
    }
}

/// The claims a scope stands for (OIDC Core 5.4, plus `national_id`).
pub fn scope_claims(scope: &str) -> &'static [&'static str] {
    match scope {
        "profile" => &["name", "given_name", "family_name", "birthdate"],
        "email" => &["email", "email_verified"],
        "phone" => &["phone_number", "phone_number_verified"],
        "address" => &["address"],
        "national_id" => &["national_id"],
        _ => &[],
    }
}

/// Every claim the provider can release about a citizen.
pub const SUPPORTED_CLAIMS: &[&str] = &[
    "sub",
    "name",
    "given_name",
    "family_name",
    "birthdate",
    "email",
    "email_verified",
    "phone_number",
    "phone_number_verified",
    "address",
    "national_id",
    "acr",
    "amr",
    "auth_time",
    "sid",
];

/// Adds the value of `claim` about the citizen to `out`, if the provider has it: names in the
/// first of `langs` untagged and in every one of `langs` tagged (`given_name#ar`).
pub fn add_claim(out: &mut Map<String, Value>, claim: &str, profile: &Profile, national_id: &str, langs: &[Lang]) {
    let first = langs.first().copied().unwrap_or(Lang::Ar);
    let mut names = |claim: &str, value: &dyn Fn(Lang) -> String| {
        out.insert(claim.into(), value(first).into());
        for &lang in langs {
            out.insert(format!("{claim}#{}", lang.tag()), value(lang).into());
        }
    };
    match claim {
        "name" => names("name", &|l| profile.name(l)),
        "given_name" => names("given_name", &|l| profile.given_name.get(l).to_owned()),
        "family_name" => names("family_name", &|l| profile.family_name.get(l).to_owned()),
        "birthdate" => {
            if let Some(b) = &profile.birthdate {
                out.insert(claim.into(), b.clone().into());
            }
        }
        "email" => {
            if let Some(e) = &profile.email {
                out.insert(claim.into(), e.clone().into());
            }
        }
        // Contact data registered in person at enrolment counts as verified.
        "email_verified" if profile.email.is_some() => {
            out.insert(claim.into(), true.into());
        }
        "phone_number" => {
            if let Some(p) = &profile.phone_number {
                out.insert(claim.into(), p.clone().into());
            }
        }
        "phone_number_verified" if profile.phone_number.is_some() => {
            out.insert(claim.into(), true.into());
        }
        "address" => {
            if let Some(a) = &profile.address {
                out.insert(claim.into(), serde_json::to_value(a).unwrap_or_default());
            }
        }
        "national_id" => {
            out.insert(claim.into(), national_id.into());
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layla() -> Profile {
        Profile {
            given_name: Names { ar: "ليلى".into(), en: "Layla".into() },
            family_name: Names { ar: "حداد".into(), en: "Haddad".into() },
            birthdate: Some("1990-04-01".into()),
            email: None,
            phone_number: Some("+962790000000".into()),
            address: None,
        }
    }

    #[test]
    fn languages_follow_the_preference_list() {
        assert_eq!(Lang::all_of("fr-CA en-GB;q=0.8, ar"), vec![Lang::En, Lang::Ar]);
        assert_eq!(Lang::first_of("de"), None);
        let mut out = Map::new();
        add_claim(&mut out, "name", &layla(), "9861234567", &[Lang::En, Lang::Ar]);
        assert_eq!(out["name"], "Layla Haddad");
        assert_eq!(out["name#ar"], "ليلى حداد");
        assert_eq!(out["name#en"], "Layla Haddad");
        let mut out = Map::new();
        for claim in ["given_name", "email", "email_verified", "phone_number_verified"] {
            add_claim(&mut out, claim, &layla(), "9861234567", &[]);
        }
        assert_eq!(out["given_name"], "ليلى", "Arabic is the default");
        assert!(!out.contains_key("email") && !out.contains_key("email_verified"), "no e-mail, nothing claimed");
        assert_eq!(out["phone_number_verified"], true);
    }

    #[test]
    fn profiles_round_trip_and_refuse_unknown_fields() {
        assert_eq!(Profile::from_json(&layla().to_json()).expect("round trip"), layla());
        assert!(Profile::from_json(r#"{"given_name":{"ar":"a","en":"b"},"family_name":{"ar":"a","en":"b"},"x":1}"#).is_err());
    }
}
