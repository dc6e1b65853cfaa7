//! The TLS settings of a PostgreSQL connection string, in libpq's names, which
//! tokio-postgres does not all know: `sslmode` (`disable`, `require`, `verify-ca`,
//! `verify-full`; absent means `verify-full`) and `sslrootcert` (a PEM file of the CA, or
//! `system`). Both forms are read: `host=a,b port=5432 sslmode=verify-full sslrootcert=ca.pem`
//! and `postgresql://host/db?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem`. Everything else
//! goes to tokio-postgres unchanged (multi-host lists, `target_session_attrs`, …).
//!
//! `allow` and `prefer` are refused: they fall back to plaintext without saying so. `require`
//! verifies the chain against `sslrootcert` as libpq does when a CA is given, and is refused
//! without one: Hawiya never talks to a server it has not verified.

use std::str::FromStr;
use std::sync::Arc;

use rustls::ClientConfig;

use crate::StoreError;
use crate::tls::{Roots, Verify, client_config, open_err, percent_decoded};

const WHAT: &str = "PostgreSQL";

/// A parsed connection string: tokio-postgres's configuration and, unless `sslmode=disable`,
/// the TLS configuration that verifies the server.
pub(crate) struct Settings {
    pub(crate) config: tokio_postgres::Config,
    pub(crate) tls: Option<Arc<ClientConfig>>,
}

/// Reads a connection string. Errors never quote it (it may hold a password).
pub(crate) fn parse(url: &str) -> Result<Settings, StoreError> {
    let (rest, mode, root) = split(url)?;
    let mut config = tokio_postgres::Config::from_str(&rest).map_err(|e| open_err(WHAT, format!("the connection string: {e}")))?;
    let mode = mode.as_deref().unwrap_or("verify-full");
    let verify = match mode {
        "disable" => {
            config.ssl_mode(tokio_postgres::config::SslMode::Disable);
            return Ok(Settings { config, tls: None });
        }
        "require" | "verify-ca" => Verify::ChainOnly,
        "verify-full" => Verify::Full,
        "allow" | "prefer" => {
            return Err(open_err(
                WHAT,
                format!("sslmode={mode} may fall back to plaintext: say sslmode=verify-full with sslrootcert=<CA file>, or sslmode=disable for plaintext"),
            ));
        }
        other => return Err(open_err(WHAT, format!("unknown sslmode {other:?} (disable, require, verify-ca or verify-full)"))),
    };
    let Some(root) = root else {
        return Err(open_err(
            WHAT,
            format!("sslmode={mode} needs sslrootcert=<CA file> (or sslrootcert=system) to verify the server; say sslmode=disable for plaintext"),
        ));
    };
    config.ssl_mode(tokio_postgres::config::SslMode::Require);
    let mut tls = client_config(&Roots::parse(&root), verify, WHAT)?;
    // As libpq ≥ 17 does: PostgreSQL 17 requires it with `sslnegotiation=direct`, older
    // servers ignore it.
    tls.alpn_protocols = vec![b"postgresql".to_vec()];
    Ok(Settings { config, tls: Some(Arc::new(tls)) })
}

/// The connection string without `sslmode` and `sslrootcert`, and their values.
fn split(url: &str) -> Result<(String, Option<String>, Option<String>), StoreError> {
    let (mut mode, mut root) = (None, None);
    let mut take = |key: &str, value: String| match key {
        "sslmode" => {
            mode = Some(value);
            true
        }
        "sslrootcert" => {
            root = Some(value);
            true
        }
        _ => false,
    };
    let rest = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        match url.split_once('?') {
            None => url.to_owned(),
            Some((base, query)) => {
                let mut kept = Vec::new();
                for part in query.split('&') {
                    let (key, value) = part.split_once('=').unwrap_or((part, ""));
                    if !take(key, percent_decoded(value)) {
                        kept.push(part);
                    }
                }
                if kept.is_empty() { base.to_owned() } else { format!("{base}?{}", kept.join("&")) }
            }
        }
    } else {
        let mut kept = Vec::new();
        for (key, value, raw) in key_values(url)? {
            if !take(key, value) {
                kept.push(raw);
            }
        }
        kept.join(" ")
    };
    Ok((rest, mode, root))
}

/// libpq's `key = value` pairs: values bare or in single quotes, `\` escaping the next
/// character. Each pair with its decoded value and its text as written.
fn key_values(s: &str) -> Result<Vec<(&str, String, &str)>, StoreError> {
    let malformed = |why: &str| open_err(WHAT, format!("malformed connection string: {why}"));
    let b = s.as_bytes();
    let mut i = 0;
    let mut pairs = Vec::new();
    let skip_space = |i: &mut usize| {
        while *i < b.len() && b[*i].is_ascii_whitespace() {
            *i += 1;
        }
    };
    loop {
        skip_space(&mut i);
        if i == b.len() {
            return Ok(pairs);
        }
        let start = i;
        while i < b.len() && b[i] != b'=' && !b[i].is_ascii_whitespace() {
            i += 1;
        }
        let key = &s[start..i];
        skip_space(&mut i);
        if i == b.len() || b[i] != b'=' {
            return Err(malformed(&format!("`=` expected after {key:?}")));
        }
        i += 1;
        skip_space(&mut i);
        let mut value = Vec::new();
        let quoted = i < b.len() && b[i] == b'\'';
        if quoted {
            i += 1;
        }
        loop {
            match b.get(i) {
                None if quoted => return Err(malformed(&format!("unterminated quote in the value of {key:?}"))),
                None => break,
                Some(b'\'') if quoted => {
                    i += 1;
                    break;
                }
                Some(c) if !quoted && c.is_ascii_whitespace() => break,
                Some(b'\\') if i + 1 < b.len() => {
                    value.push(b[i + 1]);
                    i += 2;
                }
                Some(&c) => {
                    value.push(c);
                    i += 1;
                }
            }
        }
        let value = String::from_utf8(value).map_err(|_| malformed(&format!("the value of {key:?} is not UTF-8")))?;
        pairs.push((key, value, &s[start..i]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_value_strings_lose_only_the_tls_settings() {
        let (rest, mode, root) =
            split("host=a,b port=5432,5433 sslmode = verify-ca sslrootcert='/etc/my ca.pem' target_session_attrs=read-write password='it\\'s'").unwrap();
        assert_eq!(rest, "host=a,b port=5432,5433 target_session_attrs=read-write password='it\\'s'");
        assert_eq!(mode.as_deref(), Some("verify-ca"));
        assert_eq!(root.as_deref(), Some("/etc/my ca.pem"));
        let config = tokio_postgres::Config::from_str(&rest).unwrap();
        assert_eq!(config.get_hosts().len(), 2);
        assert_eq!(config.get_password(), Some(&b"it's"[..]));
    }

    #[test]
    fn urls_lose_only_the_tls_settings() {
        let (rest, mode, root) =
            split("postgresql://u:p@h1:5432,h2:5432/db?sslrootcert=%2Ftmp%2Fca.pem&target_session_attrs=read-write&sslmode=verify-full").unwrap();
        assert_eq!(rest, "postgresql://u:p@h1:5432,h2:5432/db?target_session_attrs=read-write");
        assert_eq!((mode.as_deref(), root.as_deref()), (Some("verify-full"), Some("/tmp/ca.pem")));
        let (rest, mode, _) = split("postgres://h/db?sslmode=disable").unwrap();
        assert_eq!((rest.as_str(), mode.as_deref()), ("postgres://h/db", Some("disable")));
    }

    #[test]
    fn plaintext_only_when_said() {
        let s = parse("host=127.0.0.1 user=postgres sslmode=disable").unwrap();
        assert!(s.tls.is_none());
        assert_eq!(s.config.get_ssl_mode(), tokio_postgres::config::SslMode::Disable);
        // No sslmode: verify-full, which needs a CA.
        let e = parse("host=127.0.0.1 user=postgres").err().unwrap().to_string();
        assert!(e.contains("sslmode=verify-full needs sslrootcert="), "{e}");
        for mode in ["prefer", "allow"] {
            let e = parse(&format!("host=h sslmode={mode}")).err().unwrap().to_string();
            assert!(e.contains("may fall back to plaintext"), "{e}");
        }
        let e = parse("host=h sslmode=require").err().unwrap().to_string();
        assert!(e.contains("sslmode=require needs sslrootcert="), "{e}");
        let e = parse("host=h sslmode=verify-full sslrootcert=/nonexistent/ca.pem").err().unwrap().to_string();
        assert!(e.contains("cannot read the CA file /nonexistent/ca.pem"), "{e}");
    }

    #[test]
    fn malformed_strings_are_refused_without_quoting_them() {
        let e = parse("host=h password='secret").err().unwrap().to_string();
        assert!(e.contains("unterminated quote") && !e.contains("secret'"), "{e}");
    }
}
