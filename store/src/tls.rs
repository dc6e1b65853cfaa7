//! TLS to the databases: rustls (aws-lc-rs), the server verified against a configured CA.
//!
//! Plaintext is used only where the configuration says so: `sslmode=disable` in a
//! PostgreSQL connection string, a `redis://` URL to a loopback address or a Unix socket.
//! A PostgreSQL connection string without `sslmode` means `verify-full`; TLS without a
//! configured CA (`sslrootcert=` for PostgreSQL, `cacert=` for Redis: a PEM file, or
//! `system` for the operating system's roots) is refused at start-up, never downgraded.

use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect};

use crate::StoreError;

/// Where the trusted CA certificates come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Roots {
    /// A PEM file of one or more CA certificates.
    File(String),
    /// The operating system's trust store (`system`, as libpq spells it).
    System,
}

impl Roots {
    pub(crate) fn parse(value: &str) -> Roots {
        if value == "system" { Roots::System } else { Roots::File(value.to_owned()) }
    }

    /// The certificates, as PEM (the form the Redis client takes), or `None` for the system
    /// roots (which the Redis client loads itself).
    pub(crate) fn pem(&self, what: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match self {
            Roots::System => Ok(None),
            Roots::File(path) => std::fs::read(path).map(Some).map_err(|e| open_err(what, format!("cannot read the CA file {path}: {e}"))),
        }
    }

    fn store(&self, what: &str) -> Result<RootCertStore, StoreError> {
        let mut roots = RootCertStore::empty();
        match self {
            Roots::System => {
                let native = rustls_native_certs::load_native_certs();
                if let Some(e) = native.errors.first() {
                    return Err(open_err(what, format!("cannot load the system's CA certificates: {e}")));
                }
                roots.add_parsable_certificates(native.certs);
            }
            Roots::File(path) => {
                let certs = CertificateDer::pem_file_iter(Path::new(path))
                    .and_then(|i| i.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| open_err(what, format!("cannot read the CA file {path}: {e}")))?;
                for cert in certs {
                    roots.add(cert).map_err(|e| open_err(what, format!("the CA file {path} holds an unusable certificate: {e}")))?;
                }
            }
        }
        if roots.is_empty() {
            return Err(open_err(what, format!("no CA certificate in {}", self.describe())));
        }
        Ok(roots)
    }

    fn describe(&self) -> String {
        match self {
            Roots::System => "the system's trust store".into(),
            Roots::File(path) => path.clone(),
        }
    }
}

pub(crate) fn open_err(what: &str, message: String) -> StoreError {
    StoreError::Open { what: what.into(), source: message.into() }
}

/// How the server's certificate is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verify {
    /// The chain up to a trusted CA, and the host name (libpq's `verify-full`).
    Full,
    /// The chain only (libpq's `verify-ca`, and `require` with a CA, as libpq does).
    ChainOnly,
}

/// A rustls client configuration trusting only `roots`.
pub(crate) fn client_config(roots: &Roots, verify: Verify, what: &str) -> Result<ClientConfig, StoreError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots.store(what)?), provider.clone())
        .build()
        .map_err(|e| open_err(what, format!("cannot build the certificate verifier: {e}")))?;
    let builder = ClientConfig::builder_with_provider(provider).with_safe_default_protocol_versions().map_err(|e| open_err(what, format!("TLS: {e}")))?;
    let config = match verify {
        Verify::Full => builder.with_webpki_verifier(webpki).with_no_client_auth(),
        Verify::ChainOnly => builder.dangerous().with_custom_certificate_verifier(Arc::new(ChainOnly(webpki))).with_no_client_auth(),
    };
    Ok(config)
}

/// `verify-ca`: the chain is verified, the name is not. rustls's verifier checks the name
/// after the chain (and revocation), so a name mismatch is the only error that means "the
/// chain is good"; every other error stands.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. })) => {
                Ok(ServerCertVerified::assertion())
            }
            other => other,
        }
    }

    fn verify_tls12_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// The PostgreSQL TLS connector: one rustls configuration, the server name of each host of
/// a multi-host connection string.
#[derive(Clone)]
pub(crate) struct PostgresTls(pub(crate) Arc<ClientConfig>);

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> MakeTlsConnect<S> for PostgresTls {
    type Stream = PostgresTlsStream<S>;
    type TlsConnect = PostgresTlsConnect;
    type Error = io::Error;

    fn make_tls_connect(&mut self, domain: &str) -> Result<PostgresTlsConnect, io::Error> {
        let name = ServerName::try_from(domain.to_owned())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, format!("{domain:?} is not a host name TLS can verify")))?;
        Ok(PostgresTlsConnect { config: self.0.clone(), name })
    }
}

/// One connection attempt's TLS handshake.
pub(crate) struct PostgresTlsConnect {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> TlsConnect<S> for PostgresTlsConnect {
    type Stream = PostgresTlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<PostgresTlsStream<S>, io::Error>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        let connector = tokio_rustls::TlsConnector::from(self.config);
        Box::pin(async move { connector.connect(self.name, stream).await.map(PostgresTlsStream) })
    }
}

/// A TLS stream to PostgreSQL.
pub(crate) struct PostgresTlsStream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> tokio_postgres::tls::TlsStream for PostgresTlsStream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        // SCRAM without channel binding: the server is authenticated by its certificate.
        ChannelBinding::none()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for PostgresTlsStream<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for PostgresTlsStream<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// A Redis client for `url`. `rediss://host:port/db?cacert=<CA file>` (or `cacert=system`)
/// verifies the server's chain and host name; `redis://` (plaintext) is accepted only to a
/// loopback address or `localhost`, and `redis+unix://`/`unix://` sockets, where nothing
/// crosses a network.
pub(crate) fn redis_client(url: &str) -> Result<redis::Client, StoreError> {
    use redis::{ConnectionAddr, IntoConnectionInfo};
    const WHAT: &str = "Redis";
    let (url, cacert) = without_query_parameter(url, "cacert");
    // The URL may hold a password: the error names the problem, not the URL.
    let info = url.as_str().into_connection_info().map_err(|e| open_err(WHAT, format!("the URL: {e}")))?;
    match (&info.addr, cacert) {
        (ConnectionAddr::TcpTls { .. }, None) => {
            Err(open_err(WHAT, "rediss:// needs cacert=<CA file> (or cacert=system) in the URL's query to verify the server".into()))
        }
        (ConnectionAddr::TcpTls { insecure: true, .. }, Some(_)) => Err(open_err(WHAT, "#insecure (no server verification) is not allowed".into())),
        (ConnectionAddr::TcpTls { .. }, Some(cacert)) => {
            let roots = Roots::parse(&cacert);
            roots.store(WHAT)?; // a bad CA file is refused now, with its name
            let certificates = redis::TlsCertificates { client_tls: None, root_cert: roots.pem(WHAT)? };
            redis::Client::build_with_tls(info, certificates).map_err(|e| open_err(WHAT, e.to_string()))
        }
        (_, Some(_)) => Err(open_err(WHAT, "cacert= applies only to rediss:// URLs".into())),
        (ConnectionAddr::Tcp(host, _), None) if !is_loopback(host) => Err(open_err(
            WHAT,
            format!(
                "redis:// to {host} would send the password and every session in plaintext: use rediss:// with cacert=<CA file> (plaintext is accepted only on loopback)"
            ),
        )),
        (_, None) => redis::Client::open(info).map_err(|e| open_err(WHAT, e.to_string())),
    }
}

/// A failed first connection, with a hint when a plaintext one was cut off: a server that
/// speaks only TLS resets it.
pub(crate) fn redis_open_error(client: &redis::Client, e: redis::RedisError) -> StoreError {
    let plaintext = matches!(client.get_connection_info().addr, redis::ConnectionAddr::Tcp(..));
    if plaintext && e.kind() == redis::ErrorKind::IoError && !e.is_connection_refusal() {
        return open_err("Redis", format!("{e} (a server that speaks only TLS cuts plaintext connections off: use a rediss:// URL)"));
    }
    StoreError::Open { what: "Redis".into(), source: e.into() }
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// `url` without the query parameter `name`, and its (percent-decoded) value.
fn without_query_parameter(url: &str, name: &str) -> (String, Option<String>) {
    let (base, fragment) = match url.split_once('#') {
        Some((base, fragment)) => (base, Some(fragment)),
        None => (url, None),
    };
    let Some((path, query)) = base.split_once('?') else { return (url.to_owned(), None) };
    let mut value = None;
    let kept: Vec<&str> = query
        .split('&')
        .filter(|part| match part.split_once('=') {
            Some((key, v)) if key == name => {
                value = Some(percent_decoded(v));
                false
            }
            _ => true,
        })
        .collect();
    let mut out = path.to_owned();
    if !kept.is_empty() {
        out = format!("{out}?{}", kept.join("&"));
    }
    if let Some(fragment) = fragment {
        out = format!("{out}#{fragment}");
    }
    (out, value)
}

/// `%XX` decoded; a malformed escape is kept as written (the file then does not exist).
pub(crate) fn percent_decoded(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match s.get(i + 1..i + 3).filter(|_| b[i] == b'%').and_then(|hex| u8::from_str_radix(hex, 16).ok()) {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_plaintext_only_on_loopback() {
        for url in ["redis://127.0.0.1:6379/", "redis://localhost/", "redis://[::1]:6379/0", "redis+unix:///run/redis.sock"] {
            assert!(redis_client(url).is_ok(), "{url}");
        }
        let e = redis_client("redis://:secret@redis.internal:6379/").err().unwrap().to_string();
        assert!(e.contains("redis:// to redis.internal would send the password") && !e.contains("secret"), "{e}");
        let e = redis_client("rediss://redis.internal:6379/").err().unwrap().to_string();
        assert!(e.contains("rediss:// needs cacert="), "{e}");
        let e = redis_client("redis://127.0.0.1/?cacert=/tmp/ca.pem").err().unwrap().to_string();
        assert!(e.contains("cacert= applies only to rediss://"), "{e}");
        let e = redis_client("rediss://h/?cacert=%2Fnonexistent%2Fca.pem").err().unwrap().to_string();
        assert!(e.contains("cannot read the CA file /nonexistent/ca.pem"), "{e}");
        let e = redis_client("rediss://h/?cacert=system#insecure").err().unwrap().to_string();
        assert!(e.contains("#insecure"), "{e}");
    }

    #[test]
    fn query_parameters_are_taken_out() {
        assert_eq!(
            without_query_parameter("rediss://h:1/0?cacert=%2Fa%20b.pem&protocol=resp3", "cacert"),
            ("rediss://h:1/0?protocol=resp3".into(), Some("/a b.pem".into()))
        );
        assert_eq!(without_query_parameter("rediss://h/?cacert=x#insecure", "cacert"), ("rediss://h/#insecure".into(), Some("x".into())));
        assert_eq!(without_query_parameter("redis://h/", "cacert"), ("redis://h/".into(), None));
    }
}
