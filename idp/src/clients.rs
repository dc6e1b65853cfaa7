//! Relying parties: their registration, what their service policy allows them, and how they
//! prove who they are at the token, revocation and introspection endpoints.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD as B64_STD, URL_SAFE_NO_PAD as B64};
use hsm_shim::SignatureAlgorithm;
use hsm_shim::jose::{self, UnverifiedJws};
use policies::{AssuranceLevel, ClientId, Localized, Policies, Service};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use store::ephemeral::EphemeralStore;

use crate::IdpError;
use crate::oauth::{OAuthError, Params};

/// How a client authenticates at the token endpoint (OIDC Core 9).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// A JWT signed with the client's key (the default for agencies).
    PrivateKeyJwt,
    /// HTTP Basic with the client secret.
    ClientSecretBasic,
    /// The client secret in the form body.
    ClientSecretPost,
    /// A public client (PKCE required).
    None,
}

impl AuthMethod {
    /// The registered name.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::PrivateKeyJwt => "private_key_jwt",
            AuthMethod::ClientSecretBasic => "client_secret_basic",
            AuthMethod::ClientSecretPost => "client_secret_post",
            AuthMethod::None => "none",
        }
    }
}

/// A client's registration, as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    /// Redirect URIs, matched exactly.
    pub redirect_uris: Vec<String>,
    /// Where the citizen may be sent after logout, matched exactly.
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    /// Back-channel logout endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backchannel_logout_uri: Option<String>,
    /// How it authenticates.
    pub token_endpoint_auth_method: AuthMethod,
    /// SHA-256 of its secret (hex), for the secret methods. The secret itself is shown once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_sha256: Option<String>,
    /// Its public keys (a JWK Set), for `private_key_jwt` and request objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<Value>,
    /// Where its public keys are published instead (fetched, cached, re-fetched when a
    /// signature names a key the cache does not hold).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// Its sector identifier (OIDC Core 8.1): a URL holding a JSON array of every redirect
    /// URI of the sector, whose host is the sector its pairwise subjects are computed for.
    /// The list is fetched and checked when the client is registered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sector_identifier_uri: Option<String>,
    /// Where the client publishes signed request objects for `request_uri` (OIDC Core 6.2):
    /// the provider fetches only these (https, or http on loopback).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub request_uris: Vec<String>,
    /// The algorithm its id_tokens are signed with.
    #[serde(default = "default_alg")]
    pub id_token_signed_response_alg: String,
    /// Its name, when no service policy names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Localized>,
}

fn default_alg() -> String {
    "RS256".into()
}

/// What a client without a service policy file may have: the standard scopes, pairwise
/// subjects, consent asked, never the national id.
fn default_service(client_id: &ClientId, name: Option<Localized>, policies: &Policies) -> Option<Service> {
    let lowest = policies.levels().first()?.level.clone();
    Some(Service {
        client_id: client_id.clone(),
        name: name.unwrap_or_else(|| Localized { ar: client_id.to_string(), en: client_id.to_string() }),
        min_level: lowest,
        scopes: ["openid", "profile", "email", "phone", "address"].map(String::from).to_vec(),
        claims: ["sub", "name", "given_name", "family_name", "birthdate", "email", "email_verified", "phone_number", "phone_number_verified", "address"]
            .map(String::from)
            .to_vec(),
        national_id: false,
        consent_required: true,
        public_subject: false,
        require_pkce: false,
        resource_servers: Vec::new(),
        validation_policy: None,
        registration: None,
    })
}

/// A relying party: its registration and its service policy.
#[derive(Clone, Debug)]
pub struct Client {
    /// The client id.
    pub id: ClientId,
    /// How it registered.
    pub registration: Registration,
    /// What its policy allows (the defaults when it has no policy file).
    pub service: Service,
    /// The id_token algorithm.
    pub id_token_alg: SignatureAlgorithm,
    /// The sector its pairwise subjects are computed for: the host of its redirect URIs.
    pub sector: String,
}

/// Whether the provider may call or send citizens to `url`: https, or plain http on a
/// loopback host (`localhost`, `127.0.0.1`, `[::1]`).
pub(crate) fn https_or_loopback(url: &url::Url) -> bool {
    let loopback = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    url.scheme() == "https" || (url.scheme() == "http" && loopback)
}

impl Client {
    /// Checks a registration and joins it with the service policy.
    pub fn new(id: &str, registration: Registration, policies: &Policies) -> Result<Self, IdpError> {
        let invalid = |what: String| IdpError::InvalidClient(format!("client {id}: {what}"));
        let client_id: ClientId = id.parse().map_err(|e: policies::InvalidClientId| invalid(e.to_string()))?;
        if registration.redirect_uris.is_empty() {
            return Err(invalid("at least one redirect URI is needed".into()));
        }
        let mut hosts = Vec::new();
        let uris = registration.redirect_uris.iter().chain(&registration.post_logout_redirect_uris).chain(&registration.backchannel_logout_uri);
        for uri in uris.chain(&registration.jwks_uri).chain(&registration.sector_identifier_uri).chain(&registration.request_uris) {
            let parsed = url::Url::parse(uri).map_err(|e| invalid(format!("{uri}: {e}")))?;
            if parsed.fragment().is_some() {
                return Err(invalid(format!("{uri}: a redirect URI has no fragment")));
            }
            if !https_or_loopback(&parsed) {
                return Err(invalid(format!("{uri}: only https (or http on loopback)")));
            }
            if registration.redirect_uris.contains(uri) {
                hosts.push(parsed.host_str().unwrap_or_default().to_owned());
            }
        }
        hosts.sort();
        hosts.dedup();
        let sector = match (&registration.sector_identifier_uri, hosts.as_slice()) {
            (Some(uri), _) => url::Url::parse(uri).ok().and_then(|u| u.host_str().map(str::to_owned)).unwrap_or_default(),
            (None, [host]) => host.clone(),
            (None, _) => {
                return Err(invalid(format!("redirect URIs on several hosts ({}) need a sector_identifier_uri listing them", hosts.join(", "))));
            }
        };
        match registration.token_endpoint_auth_method {
            AuthMethod::PrivateKeyJwt if registration.jwks.is_some() == registration.jwks_uri.is_some() => {
                return Err(invalid("private_key_jwt needs a JWK Set or a jwks_uri (one of them)".into()));
            }
            AuthMethod::ClientSecretBasic | AuthMethod::ClientSecretPost if registration.client_secret_sha256.is_none() => {
                return Err(invalid("a secret method needs a secret".into()));
            }
            _ => {}
        }
        if let Some(jwks) = &registration.jwks {
            let keys = jwks.get("keys").and_then(Value::as_array).ok_or_else(|| invalid("jwks is not a JWK Set".into()))?;
            for k in keys {
                jose::public_key_from_jwk(k).map_err(|e| invalid(e.to_string()))?;
            }
        }
        let id_token_alg = jose::algorithm_named(&registration.id_token_signed_response_alg).map_err(|e| invalid(e.to_string()))?;
        if !crate::keys::ALGORITHMS.contains(&id_token_alg) {
            return Err(invalid(format!("id_tokens are not signed with {}", id_token_alg.name())));
        }
        let service = match policies.service(id) {
            Some(s) => s.clone(),
            None => default_service(&client_id, registration.name.clone(), policies).ok_or_else(|| invalid("no levels of assurance defined".into()))?,
        };
        Ok(Client { id: client_id, sector, registration, service, id_token_alg })
    }

    /// The client its service policy file declares (`[registration]`), if it declares one.
    pub fn declared(service: &Service, policies: &Policies) -> Option<Result<Self, IdpError>> {
        let table = service.registration.clone()?;
        let id = &service.client_id;
        let registration = Registration::deserialize(toml::Value::Table(table))
            .map_err(|e| IdpError::InvalidClient(format!("client {id} in services/{id}.toml: {}", e.message())));
        Some(registration.and_then(|r| Client::new(id, r, policies)))
    }

    /// Reads a stored client.
    pub fn from_record(record: &store::ClientRecord, policies: &Policies) -> Result<Self, IdpError> {
        let registration: Registration =
            serde_json::from_str(&record.registration).map_err(|e| IdpError::Corrupt(format!("client {}: {e}", record.client_id)))?;
        Client::new(&record.client_id, registration, policies)
    }

    /// Whether the client must use PKCE.
    pub fn requires_pkce(&self) -> bool {
        self.registration.token_endpoint_auth_method == AuthMethod::None || self.service.require_pkce
    }

    /// The lowest level its policy accepts.
    pub fn min_level(&self) -> &AssuranceLevel {
        &self.service.min_level
    }
}

/// Fetches a registration's `sector_identifier_uri` and checks that the JSON array it
/// holds lists every redirect URI (OIDC Core 8.1); done when a client is registered.
pub async fn check_sector_identifier(http: &reqwest::Client, registration: &Registration) -> Result<(), IdpError> {
    let Some(uri) = &registration.sector_identifier_uri else { return Ok(()) };
    let fail = |why: String| IdpError::InvalidClient(format!("sector_identifier_uri {uri}: {why}"));
    let response = http.get(uri).send().await.map_err(|e| fail(e.to_string()))?;
    if !response.status().is_success() {
        return Err(fail(format!("HTTP {}", response.status())));
    }
    let listed: Vec<String> = response.json().await.map_err(|e| fail(format!("not a JSON array of URIs: {e}")))?;
    match registration.redirect_uris.iter().find(|r| !listed.contains(r)) {
        Some(missing) => Err(fail(format!("does not list the redirect URI {missing}"))),
        None => Ok(()),
    }
}

/// A fresh client secret (256 bits) and the hash to store.
pub fn new_secret() -> Result<(String, String), IdpError> {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| IdpError::Crypto("random"))?;
    let secret = B64.encode(bytes);
    let hash = secret_hash(&secret);
    Ok((secret, hash))
}

fn secret_hash(secret: &str) -> String {
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, secret.as_bytes()))
}

/// How the caller of an endpoint presented its credentials.
#[derive(Debug)]
pub struct Presented {
    method: AuthMethod,
    client_id: String,
    secret: Option<String>,
    assertion: Option<String>,
}

/// Reads the client credentials of a request: an `Authorization: Basic` header, or
/// `client_id` / `client_secret` / `client_assertion` in the body. More than one method is
/// an error (RFC 6749 2.3).
pub fn presented(authorization: Option<&str>, params: &mut Params) -> Result<Presented, OAuthError> {
    let presented = presented_as_sent(authorization, params)?;
    // One rule for client ids (policies::ClientId), wherever they are sent.
    presented.client_id.parse::<ClientId>().map_err(|e| OAuthError::invalid_client(e.to_string()))?;
    Ok(presented)
}

fn presented_as_sent(authorization: Option<&str>, params: &mut Params) -> Result<Presented, OAuthError> {
    let secret = params.take("client_secret");
    let assertion = params.take("client_assertion");
    let assertion_type = params.take("client_assertion_type");
    let body_id = params.take("client_id");
    let basic = match authorization {
        Some(h) if h.len() > 6 && h[..6].eq_ignore_ascii_case("basic ") => Some(&h[6..]),
        _ => None,
    };
    let methods = usize::from(basic.is_some()) + usize::from(secret.is_some()) + usize::from(assertion.is_some());
    if methods > 1 {
        return Err(OAuthError::invalid_request("more than one client authentication method"));
    }
    if let Some(b) = basic {
        let decoded = B64_STD.decode(b.trim()).ok().and_then(|d| String::from_utf8(d).ok());
        let (id, secret) = decoded.as_deref().and_then(|d| d.split_once(':')).ok_or_else(|| OAuthError::invalid_client("malformed Basic credentials"))?;
        // RFC 6749 2.3.1: both parts are form-urlencoded.
        let decode = |s: &str| url::form_urlencoded::parse(format!("x={s}").as_bytes()).next().map(|(_, v)| v.into_owned()).unwrap_or_default();
        let id = decode(id);
        if body_id.as_ref().is_some_and(|b| *b != id) {
            return Err(OAuthError::invalid_request("client_id in the body differs from the Basic credentials"));
        }
        return Ok(Presented { method: AuthMethod::ClientSecretBasic, client_id: id, secret: Some(decode(secret)), assertion: None });
    }
    if let Some(assertion) = assertion {
        if assertion_type.as_deref() != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer") {
            return Err(OAuthError::invalid_request("client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer"));
        }
        // The client is named by the assertion's issuer; a client_id beside it must agree.
        let iss = UnverifiedJws::parse(&assertion)
            .ok()
            .and_then(|j| serde_json::from_slice::<Value>(&j.payload).ok())
            .and_then(|c| c.get("iss").and_then(Value::as_str).map(str::to_owned))
            .ok_or_else(|| OAuthError::invalid_client("client_assertion is not a JWT with an issuer"))?;
        if body_id.as_ref().is_some_and(|b| *b != iss) {
            return Err(OAuthError::invalid_client("client_id differs from the client assertion's issuer"));
        }
        return Ok(Presented { method: AuthMethod::PrivateKeyJwt, client_id: iss, secret: None, assertion: Some(assertion) });
    }
    let client_id = body_id.ok_or_else(|| OAuthError::invalid_client("no client authentication"))?;
    let method = if secret.is_some() { AuthMethod::ClientSecretPost } else { AuthMethod::None };
    Ok(Presented { method, client_id, secret, assertion: None })
}

impl Presented {
    /// The client id the caller claims.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// Whether the caller presented a client assertion (`private_key_jwt`).
    pub fn is_assertion(&self) -> bool {
        self.assertion.is_some()
    }

    /// Whether a client assertion, if that is what was presented, verifies with `keys`.
    pub fn assertion_verifies(&self, keys: &[Value]) -> bool {
        self.assertion.as_deref().and_then(|a| UnverifiedJws::parse(a).ok()).is_some_and(|jws| verifies_with(&jws, keys))
    }

    /// Checks the credentials against the client's registration and its public `keys`.
    /// `audiences` are the values a client assertion's `aud` may hold (the issuer, the
    /// endpoint URL); its `jti` is spent in `replay` so that it cannot be used twice.
    pub async fn authenticate(&self, client: &Client, keys: &[Value], audiences: &[&str], replay: &dyn EphemeralStore, now: i64) -> Result<(), OAuthError> {
        let registered = client.registration.token_endpoint_auth_method;
        if self.method != registered {
            return Err(OAuthError::invalid_client(format!("this client authenticates with {}", registered.as_str())));
        }
        match self.method {
            AuthMethod::ClientSecretBasic | AuthMethod::ClientSecretPost => {
                let expected = client.registration.client_secret_sha256.as_deref().unwrap_or_default();
                let given = secret_hash(self.secret.as_deref().unwrap_or_default());
                aws_lc_rs::constant_time::verify_slices_are_equal(expected.as_bytes(), given.as_bytes())
                    .map_err(|_| OAuthError::invalid_client("wrong client secret"))
            }
            AuthMethod::PrivateKeyJwt => self.check_assertion(client, keys, audiences, replay, now).await,
            AuthMethod::None => Ok(()),
        }
    }

    async fn check_assertion(&self, client: &Client, keys: &[Value], audiences: &[&str], replay: &dyn EphemeralStore, now: i64) -> Result<(), OAuthError> {
        let bad = |what: &str| OAuthError::invalid_client(format!("client assertion: {what}"));
        let jws = UnverifiedJws::parse(self.assertion.as_deref().unwrap_or_default()).map_err(|e| bad(&e.to_string()))?;
        if !verifies_with(&jws, keys) {
            return Err(bad("the signature does not verify with the client's keys"));
        }
        let claims: Value = serde_json::from_slice(&jws.payload).map_err(|_| bad("payload is not JSON"))?;
        let text = |name: &str| claims.get(name).and_then(Value::as_str);
        if text("iss") != Some(&client.id) || text("sub") != Some(&client.id) {
            return Err(bad("iss and sub must both be the client id"));
        }
        let aud_ok = match claims.get("aud") {
            Some(Value::String(a)) => audiences.contains(&a.as_str()),
            Some(Value::Array(a)) => a.iter().any(|v| v.as_str().is_some_and(|a| audiences.contains(&a))),
            _ => false,
        };
        if !aud_ok {
            return Err(bad("aud must be the issuer or the endpoint"));
        }
        let exp = claims.get("exp").and_then(Value::as_i64).ok_or_else(|| bad("exp is missing"))?;
        const SKEW: i64 = 30;
        const LONGEST: i64 = 600;
        if exp + SKEW <= now {
            return Err(bad("expired"));
        }
        if exp > now + LONGEST {
            return Err(bad("exp is more than 10 minutes away"));
        }
        if claims.get("nbf").and_then(Value::as_i64).is_some_and(|nbf| nbf > now + SKEW) {
            return Err(bad("not valid yet"));
        }
        let jti = text("jti").ok_or_else(|| bad("jti is missing"))?;
        let key = crate::keyspace::client_assertion(&client.id, jti);
        let first_use = replay.put_new(&key, b"1", Duration::from_secs((exp - now + SKEW).max(1) as u64)).await.map_err(OAuthError::from)?;
        if !first_use {
            return Err(bad("jti has been used before"));
        }
        Ok(())
    }
}

/// Whether `jws` verifies with one of `keys` (a JWK Set's `keys`): the one its `kid` names,
/// or any when it names none.
pub fn verifies_with(jws: &UnverifiedJws, keys: &[Value]) -> bool {
    keys.iter().any(|k| {
        let kid_fits = jws.kid().is_none_or(|kid| k.get("kid").and_then(Value::as_str).is_none_or(|own| own == kid));
        kid_fits && jose::public_key_from_jwk(k).is_ok_and(|(key, alg)| jws.verify(&key, alg).is_ok())
    })
}
