//! Names: distinguished-name comparison, the syntax of subjectAltName entries, name
//! constraints (RFC 5280 §4.2.1.10, §6.1.3 b-c) and peer-name matching for servers (RFC 6125).

use std::net::IpAddr;

use der::asn1::Any;
use der::{Encode, Tag, Tagged};
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::ext::pkix::NameConstraints;
use x509_cert::ext::pkix::constraints::name::GeneralSubtree;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::name::{Name, RelativeDistinguishedName};

/// The name a client expects the server's certificate to carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerName {
    /// A DNS host name (ASCII; internationalised names in their A-label form).
    Dns(String),
    /// An IP address.
    Ip(IpAddr),
}

impl std::fmt::Display for PeerName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PeerName::Dns(name) => write!(f, "DNS name {name}"),
            PeerName::Ip(ip) => write!(f, "IP address {ip}"),
        }
    }
}

/// The text of a directory-string attribute value, if it is one.
pub(crate) fn attribute_string(value: &Any) -> Option<String> {
    match value.tag() {
        Tag::Utf8String | Tag::PrintableString | Tag::Ia5String | Tag::TeletexString | Tag::VisibleString => {
            std::str::from_utf8(value.value()).ok().map(str::to_string)
        }
        Tag::BmpString => {
            let bytes = value.value();
            if !bytes.len().is_multiple_of(2) {
                return None;
            }
            let units: Vec<u16> = bytes.chunks(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect();
            String::from_utf16(&units).ok()
        }
        _ => None,
    }
}

fn normalized(value: &Any) -> Result<String, Vec<u8>> {
    match attribute_string(value) {
        Some(text) => Ok(text.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()),
        None => Err(value.to_der().unwrap_or_default()),
    }
}

/// See [`name_key`].
pub(crate) type NameKey = Vec<Vec<(String, Result<String, Vec<u8>>)>>;

/// A key under which equal names (in the sense of [`same_name`]) collide: per RDN, the sorted
/// (type, normalised value) pairs.
pub(crate) fn name_key(name: &Name) -> NameKey {
    name.0
        .iter()
        .map(|rdn| {
            let mut atvs: Vec<(String, Result<String, Vec<u8>>)> = rdn.0.iter().map(|atv| (atv.oid.to_string(), normalized(&atv.value))).collect();
            atvs.sort();
            atvs
        })
        .collect()
}

fn same_atv(a: &AttributeTypeAndValue, b: &AttributeTypeAndValue) -> bool {
    a.oid == b.oid && (a.value == b.value || normalized(&a.value) == normalized(&b.value))
}

fn same_rdn(a: &RelativeDistinguishedName, b: &RelativeDistinguishedName) -> bool {
    a.0.len() == b.0.len() && a.0.iter().all(|x| b.0.iter().any(|y| same_atv(x, y)))
}

/// Whether two names are the same (RFC 5280 §7.1: case-insensitive, whitespace-folded strings).
pub(crate) fn same_name(a: &Name, b: &Name) -> bool {
    a.0.len() == b.0.len() && a.0.iter().zip(b.0.iter()).all(|(x, y)| same_rdn(x, y))
}

fn name_within(name: &Name, base: &Name) -> bool {
    base.0.len() <= name.0.len() && base.0.iter().zip(name.0.iter()).all(|(x, y)| same_rdn(x, y))
}

/// Whether `name` is a syntactically valid DNS name: letter-digit-hyphen labels of 1 to 63
/// characters, at most 253 in all; `*` is allowed as the whole left-most label when
/// `wildcard` is set.
pub(crate) fn valid_dns(name: &str, wildcard: bool) -> bool {
    if name.is_empty() || name.len() > 253 {
        return false;
    }
    let mut labels = name.split('.').peekable();
    let mut first = true;
    while let Some(label) = labels.next() {
        let ok = if first && wildcard && label == "*" {
            labels.peek().is_some()
        } else {
            !label.is_empty()
                && label.len() <= 63
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        };
        if !ok {
            return false;
        }
        first = false;
    }
    true
}

fn valid_mailbox(mailbox: &str) -> bool {
    match mailbox.rsplit_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && local.len() <= 64
                && local.bytes().all(|b| b.is_ascii_graphic() && !b"@\"(),:;<>[\\]".contains(&b))
                && !local.starts_with('.')
                && !local.ends_with('.')
                && !local.contains("..")
                && valid_dns(domain, false)
        }
        None => false,
    }
}

/// Why a subjectAltName entry is malformed, if it is.
pub(crate) fn general_name_defect(name: &GeneralName) -> Option<String> {
    match name {
        GeneralName::DnsName(dns) if !valid_dns(dns.as_str(), true) => Some(format!("invalid dNSName {:?}", dns.as_str())),
        GeneralName::IpAddress(ip) if ip.as_bytes().len() != 4 && ip.as_bytes().len() != 16 => Some("iPAddress is neither 4 nor 16 octets".into()),
        GeneralName::Rfc822Name(mail) if !valid_mailbox(mail.as_str()) => Some(format!("invalid rfc822Name {:?}", mail.as_str())),
        GeneralName::UniformResourceIdentifier(uri) if !uri.as_str().contains(':') => Some(format!("invalid URI {:?}", uri.as_str())),
        _ => None,
    }
}

fn dns_within(name: &str, base: &str) -> bool {
    base.is_empty() || name == base || (name.len() > base.len() && name.ends_with(base) && name.as_bytes()[name.len() - base.len() - 1] == b'.')
}

/// A name of a certificate as name constraints see it.
#[derive(Debug)]
pub(crate) enum ConstrainedName<'a> {
    Directory(&'a Name),
    Email(String),
    Dns(String),
    Ip(&'a [u8]),
    Uri(&'a str),
    /// otherName, x400Address, ediPartyName, registeredID: forms this validator cannot compare.
    Unsupported(&'static str),
}

impl<'a> ConstrainedName<'a> {
    pub fn from_general(name: &'a GeneralName) -> ConstrainedName<'a> {
        match name {
            GeneralName::DirectoryName(dn) => ConstrainedName::Directory(dn),
            GeneralName::Rfc822Name(mail) => ConstrainedName::Email(mail.as_str().to_string()),
            GeneralName::DnsName(dns) => ConstrainedName::Dns(dns.as_str().to_ascii_lowercase()),
            GeneralName::IpAddress(ip) => ConstrainedName::Ip(ip.as_bytes()),
            GeneralName::UniformResourceIdentifier(uri) => ConstrainedName::Uri(uri.as_str()),
            GeneralName::OtherName(_) => ConstrainedName::Unsupported("otherName"),
            GeneralName::EdiPartyName(_) => ConstrainedName::Unsupported("ediPartyName"),
            GeneralName::RegisteredId(_) => ConstrainedName::Unsupported("registeredID"),
        }
    }
}

fn form(name: &GeneralName) -> &'static str {
    match name {
        GeneralName::DirectoryName(_) => "directoryName",
        GeneralName::Rfc822Name(_) => "rfc822Name",
        GeneralName::DnsName(_) => "dNSName",
        GeneralName::IpAddress(_) => "iPAddress",
        GeneralName::UniformResourceIdentifier(_) => "uniformResourceIdentifier",
        GeneralName::OtherName(_) => "otherName",
        GeneralName::EdiPartyName(_) => "ediPartyName",
        GeneralName::RegisteredId(_) => "registeredID",
    }
}

fn name_form(name: &ConstrainedName<'_>) -> &'static str {
    match name {
        ConstrainedName::Directory(_) => "directoryName",
        ConstrainedName::Email(_) => "rfc822Name",
        ConstrainedName::Dns(_) => "dNSName",
        ConstrainedName::Ip(_) => "iPAddress",
        ConstrainedName::Uri(_) => "uniformResourceIdentifier",
        ConstrainedName::Unsupported(form) => form,
    }
}

fn valid_ip_constraint(bytes: &[u8]) -> bool {
    if bytes.len() != 8 && bytes.len() != 32 {
        return false;
    }
    let mask = &bytes[bytes.len() / 2..];
    let bits: Vec<bool> = mask.iter().flat_map(|b| (0..8).rev().map(move |i| b & (1 << i) != 0)).collect();
    let ones = bits.iter().take_while(|b| **b).count();
    bits[ones..].iter().all(|b| !b)
}

/// Checks the form of every subtree of a nameConstraints extension (RFC 5280 §4.2.1.10).
pub(crate) fn check_constraints(nc: &NameConstraints) -> Result<(), String> {
    let all = nc.permitted_subtrees.iter().flatten().chain(nc.excluded_subtrees.iter().flatten());
    for subtree in all {
        if subtree.minimum != 0 || subtree.maximum.is_some() {
            return Err("name constraint with minimum or maximum (RFC 5280 §4.2.1.10)".into());
        }
        match &subtree.base {
            GeneralName::DnsName(dns) => {
                let dns = dns.as_str();
                if !dns.is_empty() && !valid_dns(dns, false) {
                    return Err(format!("invalid dNSName constraint {dns:?}"));
                }
            }
            GeneralName::IpAddress(ip) if !valid_ip_constraint(ip.as_bytes()) => {
                return Err("iPAddress constraint is not an address and a contiguous mask".into());
            }
            GeneralName::Rfc822Name(mail) => {
                let mail = mail.as_str();
                let ok = if mail.contains('@') { valid_mailbox(mail) } else { valid_dns(mail.strip_prefix('.').unwrap_or(mail), false) };
                if !ok {
                    return Err(format!("invalid rfc822Name constraint {mail:?}"));
                }
            }
            GeneralName::UniformResourceIdentifier(uri) => {
                let uri = uri.as_str();
                if !valid_dns(uri.strip_prefix('.').unwrap_or(uri), false) {
                    return Err(format!("invalid URI constraint {uri:?}"));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn uri_host(uri: &str) -> Option<String> {
    let (_, rest) = uri.split_once(':')?;
    let authority = rest.strip_prefix("//")?;
    let authority = authority.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map(|(_, h)| h).unwrap_or(authority);
    if host_port.starts_with('[') {
        return None;
    }
    let host = host_port.split(':').next().unwrap_or("");
    if host.is_empty() { None } else { Some(host.to_ascii_lowercase()) }
}

/// Whether `name` matches `base`; `excluded` selects the reading of a wildcard dNSName
/// (permitted: every name it stands for is inside; excluded: some name it stands for is).
fn subtree_matches(name: &ConstrainedName<'_>, base: &GeneralName, excluded: bool) -> Result<bool, String> {
    Ok(match (name, base) {
        (ConstrainedName::Directory(dn), GeneralName::DirectoryName(b)) => name_within(dn, b),
        (ConstrainedName::Dns(dns), GeneralName::DnsName(b)) => {
            let b = b.as_str().to_ascii_lowercase();
            match dns.strip_prefix("*.") {
                None => dns_within(dns, &b),
                Some(parent) => {
                    let one_below = b.len() > parent.len() + 1 && dns_within(&b, parent) && !b[..b.len() - parent.len() - 1].contains('.');
                    dns_within(parent, &b) || (excluded && one_below)
                }
            }
        }
        (ConstrainedName::Ip(ip), GeneralName::IpAddress(b)) => {
            let b = b.as_bytes();
            if b.len() != ip.len() * 2 {
                false
            } else {
                let (net, mask) = b.split_at(ip.len());
                ip.iter().zip(net).zip(mask).all(|((a, n), m)| a & m == n & m)
            }
        }
        (ConstrainedName::Email(mail), GeneralName::Rfc822Name(b)) => {
            let b = b.as_str();
            let (local, domain) = mail.rsplit_once('@').ok_or_else(|| format!("invalid rfc822Name {mail:?}"))?;
            let domain = domain.to_ascii_lowercase();
            match b.rsplit_once('@') {
                Some((bl, bd)) => local == bl && domain == bd.to_ascii_lowercase(),
                None => match b.strip_prefix('.') {
                    Some(_) => domain.ends_with(&b.to_ascii_lowercase()),
                    None => domain == b.to_ascii_lowercase(),
                },
            }
        }
        (ConstrainedName::Uri(uri), GeneralName::UniformResourceIdentifier(b)) => {
            let host = uri_host(uri).ok_or_else(|| format!("URI {uri:?} has no host name to compare with a URI constraint"))?;
            let b = b.as_str().to_ascii_lowercase();
            match b.strip_prefix('.') {
                Some(_) => host.ends_with(&b),
                None => host == b,
            }
        }
        _ => false,
    })
}

fn same_form(name: &ConstrainedName<'_>, base: &GeneralName) -> bool {
    name_form(name) == form(base)
}

/// Checks `name` against one nameConstraints extension (RFC 5280 §6.1.3 b-c).
pub(crate) fn check_name(name: &ConstrainedName<'_>, nc: &NameConstraints) -> Result<(), String> {
    let relevant = |subtrees: &Option<Vec<GeneralSubtree>>| -> Vec<GeneralName> {
        subtrees.iter().flatten().filter(|s| same_form(name, &s.base)).map(|s| s.base.clone()).collect()
    };
    let permitted = relevant(&nc.permitted_subtrees);
    let excluded = relevant(&nc.excluded_subtrees);
    if let ConstrainedName::Unsupported(form) = name {
        if !permitted.is_empty() || !excluded.is_empty() {
            return Err(format!("a {form} is constrained by a name constraint of a form this validator cannot check"));
        }
        return Ok(());
    }
    for base in &excluded {
        if subtree_matches(name, base, true)? {
            return Err(format!("{} {} is in an excluded subtree", name_form(name), describe(name)));
        }
    }
    if !permitted.is_empty() {
        let mut inside = false;
        for base in &permitted {
            if subtree_matches(name, base, false)? {
                inside = true;
                break;
            }
        }
        if !inside {
            return Err(format!("{} {} is outside the permitted subtrees", name_form(name), describe(name)));
        }
    }
    Ok(())
}

fn describe(name: &ConstrainedName<'_>) -> String {
    match name {
        ConstrainedName::Directory(dn) => format!("«{dn}»"),
        ConstrainedName::Email(mail) => mail.clone(),
        ConstrainedName::Dns(dns) => dns.clone(),
        ConstrainedName::Ip(ip) => ip_text(ip).unwrap_or_else(|| format!("{ip:?}")),
        ConstrainedName::Uri(uri) => uri.to_string(),
        ConstrainedName::Unsupported(form) => form.to_string(),
    }
}

fn ip_text(bytes: &[u8]) -> Option<String> {
    let ip: IpAddr = match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok()?.into(),
        16 => <[u8; 16]>::try_from(bytes).ok()?.into(),
        _ => return None,
    };
    Some(ip.to_string())
}

/// Whether the subjectAltName entries `sans` name `peer` (RFC 6125 §6.4): exact DNS names,
/// case-insensitively; a `*` left-most label stands for exactly one label and needs at least
/// two labels after it; IP addresses octet for octet. The subject's common name is never used.
pub fn san_matches(sans: &[GeneralName], peer: &PeerName) -> bool {
    match peer {
        PeerName::Dns(host) => {
            let host = host.to_ascii_lowercase();
            if !valid_dns(&host, false) {
                return false;
            }
            sans.iter().any(|san| match san {
                GeneralName::DnsName(dns) => dns_name_matches(&dns.as_str().to_ascii_lowercase(), &host),
                _ => false,
            })
        }
        PeerName::Ip(ip) => {
            let octets = match ip {
                IpAddr::V4(v4) => v4.octets().to_vec(),
                IpAddr::V6(v6) => v6.octets().to_vec(),
            };
            sans.iter().any(|san| matches!(san, GeneralName::IpAddress(a) if a.as_bytes() == octets.as_slice()))
        }
    }
}

fn dns_name_matches(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix("*.") {
        None => pattern == host,
        Some(parent) => parent.contains('.') && host.split_once('.').is_some_and(|(first, rest)| !first.is_empty() && rest == parent),
    }
}

/// CA/Browser Forum BR §7.1.4.3: a subject common name must be a character-for-character copy
/// of a dNSName entry, or the RFC 3986 / RFC 5952 text of an iPAddress entry.
pub(crate) fn common_name_in_san(cn: &str, sans: &[GeneralName]) -> bool {
    sans.iter().any(|san| match san {
        GeneralName::DnsName(dns) => dns.as_str() == cn,
        GeneralName::IpAddress(ip) => ip_text(ip.as_bytes()).is_some_and(|text| text == cn),
        _ => false,
    })
}

/// An IA5String the caller built, for tests.
#[cfg(test)]
pub(crate) fn ia5(text: &str) -> der::asn1::Ia5String {
    der::asn1::Ia5String::new(text).unwrap_or_else(|_| panic!("{text} is ASCII"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_syntax() {
        assert!(valid_dns("example.com", false));
        assert!(valid_dns("*.example.com", true));
        assert!(!valid_dns("*.example.com", false));
        assert!(!valid_dns("foo_bar.example.com", true));
        assert!(!valid_dns(".example.com", false));
        assert!(!valid_dns("ba*.example.com", true));
        assert!(!valid_dns("*", true));
    }

    #[test]
    fn wildcards_stand_for_one_label_under_two() {
        assert!(dns_name_matches("*.example.com", "foo.example.com"));
        assert!(!dns_name_matches("*.example.com", "foo.bar.example.com"));
        assert!(!dns_name_matches("*.example.com", "example.com"));
        assert!(!dns_name_matches("*.com", "example.com"));
    }

    fn constraint(permitted: Vec<GeneralName>, excluded: Vec<GeneralName>) -> NameConstraints {
        let subtrees = |names: Vec<GeneralName>| {
            if names.is_empty() { None } else { Some(names.into_iter().map(|base| GeneralSubtree { base, minimum: 0, maximum: None }).collect()) }
        };
        NameConstraints { permitted_subtrees: subtrees(permitted), excluded_subtrees: subtrees(excluded) }
    }

    #[test]
    fn uri_constraints_compare_the_host() {
        let nc =
            constraint(vec![GeneralName::UniformResourceIdentifier(ia5(".example.sa"))], vec![GeneralName::UniformResourceIdentifier(ia5("bad.example.sa"))]);
        assert!(check_constraints(&nc).is_ok());
        assert!(check_name(&ConstrainedName::Uri("https://www.example.sa:8443/path"), &nc).is_ok());
        let outside = check_name(&ConstrainedName::Uri("https://www.example.com/"), &nc);
        assert!(outside.as_ref().is_err_and(|e| e.contains("outside the permitted")), "{outside:?}");
        let excluded = check_name(&ConstrainedName::Uri("http://user@BAD.example.sa/"), &nc);
        assert!(excluded.as_ref().is_err_and(|e| e.contains("excluded")), "{excluded:?}");
        let no_host = check_name(&ConstrainedName::Uri("urn:isbn:123"), &nc);
        assert!(no_host.as_ref().is_err_and(|e| e.contains("no host")), "{no_host:?}");
    }

    #[test]
    fn email_and_ip_constraints() {
        let nc = constraint(
            vec![
                GeneralName::Rfc822Name(ia5(".gov.sa")),
                GeneralName::IpAddress(der::asn1::OctetString::new(vec![10, 0, 0, 0, 255, 0, 0, 0]).unwrap_or_else(|e| panic!("{e}"))),
            ],
            vec![GeneralName::Rfc822Name(ia5("root@mail.gov.sa"))],
        );
        assert!(check_constraints(&nc).is_ok());
        assert!(check_name(&ConstrainedName::Email("citizen@mail.gov.sa".into()), &nc).is_ok());
        assert!(check_name(&ConstrainedName::Email("root@mail.gov.sa".into()), &nc).is_err());
        assert!(check_name(&ConstrainedName::Email("citizen@gov.sa".into()), &nc).is_err(), "a leading dot means subdomains only");
        assert!(check_name(&ConstrainedName::Ip(&[10, 1, 2, 3]), &nc).is_ok());
        assert!(check_name(&ConstrainedName::Ip(&[11, 1, 2, 3]), &nc).is_err());
        let mut v6 = [0u8; 16];
        v6[15] = 1;
        assert!(check_name(&ConstrainedName::Ip(&v6), &nc).is_err(), "an IPv6 name is outside IPv4-only permitted iPAddress subtrees");
        let bad_mask =
            constraint(vec![GeneralName::IpAddress(der::asn1::OctetString::new(vec![10, 0, 0, 0, 255, 0, 255, 0]).unwrap_or_else(|e| panic!("{e}")))], vec![]);
        assert!(check_constraints(&bad_mask).is_err());
    }

    #[test]
    fn wildcard_against_constraints() {
        let name = ConstrainedName::Dns("*.example.com".into());
        let bar = GeneralName::DnsName(ia5("bar.example.com"));
        assert!(subtree_matches(&name, &bar, true).unwrap_or(false), "an excluded name the wildcard may stand for");
        assert!(!subtree_matches(&name, &bar, false).unwrap_or(true), "a permitted subtree narrower than the wildcard");
        let base = GeneralName::DnsName(ia5("example.com"));
        assert!(subtree_matches(&name, &base, false).unwrap_or(false));
    }
}
