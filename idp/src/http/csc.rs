//! The CSC API v2 (`/csc/v2/…`, documented in `idp/openapi/csc-v2.yaml`): thin handlers
//! that read the bearer token and the JSON body, call the provider's [`crate::csc`], and
//! render; errors become CSC error bodies in `http::error`.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::json;

use super::{Shared, json_response};
use crate::csc::{AuthorizeCheckRequest, AuthorizeRequest, Caller, Check, CredentialInfoRequest, CscError, InfoRequest, ListRequest, SignHashRequest};
use crate::provider::Provider;
use crate::unix_now as now;

/// The largest request body: the policy's most hashes (base64 SHA-384 is 64 characters) and
/// room for the rest.
pub(super) fn body_limit(p: &Provider) -> usize {
    p.policies.signing().max_hashes_per_authorization * 128 + 8 * 1024
}

/// The bearer token of a request (RFC 6750 2.1), in the header only.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    super::authorization(headers).filter(|h| h.len() > 7 && h[..7].eq_ignore_ascii_case("bearer ")).map(|h| h[7..].trim())
}

/// The caller, then the JSON body (`empty_ok`: an empty body is `{}`).
async fn read<T: DeserializeOwned>(p: &Provider, request: Request, empty_ok: bool) -> Result<(Caller, T), CscError> {
    let (parts, body) = request.into_parts();
    // The token first: nobody else makes the provider read a body.
    let caller = p.csc_caller(bearer(&parts.headers), now()).await?;
    Ok((caller, body_json(p, &parts.headers, body, empty_ok).await?))
}

async fn body_json<T: DeserializeOwned>(p: &Provider, headers: &HeaderMap, body: axum::body::Body, empty_ok: bool) -> Result<T, CscError> {
    let limit = body_limit(p);
    let body = axum::body::to_bytes(body, limit).await.map_err(|_| CscError::InvalidRequest(format!("the request body is larger than {limit} bytes")))?;
    if body.is_empty() {
        if !empty_ok {
            return Err(CscError::InvalidRequest("the body is required (application/json)".into()));
        }
        return serde_json::from_slice(b"{}").map_err(|e| CscError::InvalidRequest(e.to_string()));
    }
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json")));
    if !is_json {
        return Err(CscError::InvalidRequest("the body must be application/json".into()));
    }
    serde_json::from_slice(&body).map_err(|e| CscError::InvalidRequest(format!("the body is not the expected JSON: {e}")))
}

/// `POST /csc/v2/info` (no authentication).
pub(super) async fn info(State(p): State<Shared>, request: Request) -> Result<Response, CscError> {
    let (parts, body) = request.into_parts();
    let asked: InfoRequest = body_json(&p, &parts.headers, body, true).await?;
    Ok(json_response(StatusCode::OK, p.csc_info(&asked)?))
}

/// `POST /csc/v2/credentials/list`.
pub(super) async fn list(State(p): State<Shared>, request: Request) -> Result<Response, CscError> {
    let (caller, asked) = read::<ListRequest>(&p, request, true).await?;
    Ok(json_response(StatusCode::OK, p.csc_list(&caller, &asked, now()).await?))
}

/// `POST /csc/v2/credentials/info`.
pub(super) async fn credential_info(State(p): State<Shared>, request: Request) -> Result<Response, CscError> {
    let (caller, asked) = read::<CredentialInfoRequest>(&p, request, false).await?;
    Ok(json_response(StatusCode::OK, p.csc_credential_info(&caller, &asked, now()).await?))
}

/// `POST /csc/v2/credentials/authorize`: no SAD yet; the tool shows the verification code
/// and polls `credentials/authorizeCheck`.
pub(super) async fn authorize(State(p): State<Shared>, request: Request) -> Result<Response, CscError> {
    let (caller, asked) = read::<AuthorizeRequest>(&p, request, false).await?;
    let opened = p.csc_authorize(&caller, &asked, now()).await?;
    Ok(json_response(StatusCode::OK, json!({"responseID": opened.id, "verificationCode": opened.code, "expiresIn": opened.expires_in})))
}

/// `POST /csc/v2/credentials/authorizeCheck`: 202 while the citizen has not answered, the
/// SAD once approved.
pub(super) async fn authorize_check(State(p): State<Shared>, request: Request) -> Result<Response, CscError> {
    let (caller, asked) = read::<AuthorizeCheckRequest>(&p, request, false).await?;
    Ok(match p.csc_authorize_check(&caller, &asked, now()).await? {
        Check::Pending { code, expires_in } => {
            json_response(StatusCode::ACCEPTED, json!({"status": "pending", "verificationCode": code, "expiresIn": expires_in}))
        }
        Check::Ready { sad, expires_in } => json_response(StatusCode::OK, json!({"SAD": sad, "expiresIn": expires_in})),
    })
}

/// `POST /csc/v2/signatures/signHash`.
pub(super) async fn sign_hash(State(p): State<Shared>, request: Request) -> Result<Response, CscError> {
    let (caller, asked) = read::<SignHashRequest>(&p, request, false).await?;
    let signatures = p.csc_sign_hash(&caller, &asked, now()).await?;
    Ok(json_response(StatusCode::OK, json!({"signatures": signatures})))
}

/// The logo `info` names.
pub(super) async fn logo() -> Response {
    const LOGO: &str = r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64"><rect width="64" height="64" rx="12" fill="#0b5d3b"/><text x="32" y="42" font-size="28" text-anchor="middle" fill="#fff" font-family="sans-serif">هوية</text></svg>"##;
    ([(header::CONTENT_TYPE, "image/svg+xml"), (header::CACHE_CONTROL, "public, max-age=86400")], LOGO).into_response()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use hsm_shim::KeyStore;
    use hsm_shim::soft::{OperatorSecret, SoftKeyStore};
    use tower::ServiceExt;

    use std::time::Duration;

    use base64::Engine;
    use base64::engine::general_purpose::STANDARD as B64;
    use der::Decode;
    use hsm_shim::{KeySpec, SignatureAlgorithm};
    use serde_json::{Value, json};
    use x509_cert::Certificate;

    use crate::csc::*;
    use crate::keyspace;
    use crate::oauth::OAuthError;
    use crate::provider::Provider;
    use crate::token::{AccessGrant, Grant};

    const LAYLA: &str = "9861234567";
    const SAMI: &str = "9861234568";
    const TOOL: &str = "signing-tool";
    const SERIAL: &str = "1a2b3c4d5e6f708192a3b4c5d6e7f801";
    const SHA256: &str = "2.16.840.1.101.3.4.2.1";
    const ECDSA_SHA256: &str = "1.2.840.10045.4.3.2";

    /// A provider whose policies add a signing tool granted `csc`, Layla with a smart-ID
    /// (the signing key in a soft key store standing in for her device) and Sami without.
    struct Fixture {
        _dir: tempfile::TempDir,
        p: Arc<Provider>,
        device: Arc<dyn KeyStore>,
        key: hsm_shim::KeyRef,
    }

    impl Fixture {
        async fn new() -> Fixture {
            let dir = tempfile::tempdir().expect("tempdir");
            let policies = dir.path().join("policies");
            let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
            // The shipped policy tree, every file and directory of it, and the tool's service.
            let mut dirs = vec![std::path::PathBuf::new()];
            while let Some(sub) = dirs.pop() {
                std::fs::create_dir_all(policies.join(&sub)).expect("mkdir");
                for entry in std::fs::read_dir(shipped.join(&sub)).expect("policies").flatten() {
                    if entry.path().is_dir() {
                        dirs.push(sub.join(entry.file_name()));
                    } else if entry.path().extension().is_some_and(|x| x == "toml") {
                        std::fs::copy(entry.path(), policies.join(&sub).join(entry.file_name())).expect("copy");
                    }
                }
            }
            std::fs::write(
                policies.join("services/signing-tool.toml"),
                "version = 1\nclient_id = \"signing-tool\"\nname = { ar = \"أداة التوقيع\", en = \"Signing tool\" }\nmin_level = \"high\"\nscopes = [\"openid\", \"csc\"]\nclaims = [\"sub\"]\n",
            )
            .expect("service");
            let policies = Arc::new(policies::Policies::load(&policies).expect("policies"));
            let secret = OperatorSecret::new(b"unit test secret, not for production".to_vec()).expect("secret");
            let keys: Arc<dyn KeyStore> = Arc::new(SoftKeyStore::open_or_create(&dir.path().join("keys"), &secret).expect("key store"));
            let durable: Arc<dyn store::DurableStore> = Arc::new(store::SqliteStore::open(&dir.path().join("db")).expect("db"));
            let signing = crate::keys::SigningKeys::open(keys, durable.clone(), Duration::from_secs(900), 1).await.expect("keys");
            let p = Provider::new(
                crate::Settings::new("https://id.example.jo", vec![7; 32]),
                policies,
                durable.clone(),
                Arc::new(store::ephemeral::MemoryStore::new()),
                signing,
            )
            .expect("provider");
            for (id, national_id) in [("c-layla", LAYLA), ("c-sami", SAMI)] {
                let citizen = store::CitizenRecord {
                    id: id.into(),
                    national_id: national_id.into(),
                    profile: "{}".into(),
                    password_hash: String::new(),
                    totp_secret: None,
                    created_at: 0,
                };
                durable.insert_citizen(&citizen).await.expect("citizen");
            }
            // Layla's device: the signing key, and her certificate in the store.
            let device: Arc<dyn KeyStore> = Arc::new(SoftKeyStore::open_or_create(&dir.path().join("device"), &secret).expect("device"));
            let key = device.generate(KeySpec::EcP256, "smart-id-signature").expect("key");
            let signer = hsm_shim::signer::StoredKeySigner::new(Arc::clone(&device), key.clone(), SignatureAlgorithm::Es256).expect("signer");
            let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
            params.distinguished_name.push(rcgen::DnType::CommonName, "Layla Haddad");
            params.serial_number = Some(rcgen::SerialNumber::from_slice(&hex::decode(SERIAL).expect("hex")));
            let der = params.self_signed(&signer).expect("certificate").der().to_vec();
            let serial: store::Serial = SERIAL.parse().expect("serial");
            durable
                .insert_certificate(&store::NewCertificate {
                    serial: serial.clone(),
                    issuer: "citizen-signing-ca".into(),
                    profile: "citizen-signature".into(),
                    subject: "CN=Layla Haddad".into(),
                    not_before: 0,
                    not_after: i64::MAX / 2,
                    der,
                    issued_at: 0,
                })
                .await
                .expect("certificate");
            durable
                .put_smart_id(&store::SmartIdRecord {
                    national_id: LAYLA.into(),
                    custody: "software".into(),
                    device_kid: "kid".into(),
                    device_key: "{}".into(),
                    authentication_serial: "01".into(),
                    signature_serial: serial.to_string(),
                    activated_at: 0,
                })
                .await
                .expect("smart-ID");
            Fixture { _dir: dir, p: Arc::new(p), device, key }
        }

        /// A citizen access token of `client` for `citizen`, with `scopes`, at `level`.
        async fn token(&self, client: &str, citizen: &str, scopes: &[&str], level: &str) -> String {
            let level = self.p.policies.levels().iter().find(|l| l.level.name() == level).expect("level").level.to_name();
            let grant = Grant {
                scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
                claims: Default::default(),
                claims_locales: Vec::new(),
                level,
                amr: vec!["smart-id".into()],
                auth_time: crate::unix_now(),
                sid: "sid".into(),
                nonce: None,
                acr: None,
            };
            let token = crate::provider::random_token().expect("token");
            let record = AccessGrant { client_id: client.into(), citizen_id: citizen.into(), family: "f".into(), expires_at: crate::unix_now() + 300, grant };
            self.p.ephemeral.put(&keyspace::access_token(&token), &serde_json::to_vec(&record).expect("json"), Duration::from_secs(300)).await.expect("put");
            token
        }

        async fn layla(&self) -> String {
            self.token(TOOL, "c-layla", &["openid", "csc"], "high").await
        }

        /// POSTs `body` to `/csc/v2/{method}` with `token`: status, `WWW-Authenticate`, JSON.
        async fn call(&self, method: &str, token: Option<&str>, body: &Value) -> (StatusCode, String, Value) {
            self.raw(method, token, body.to_string().into_bytes()).await
        }

        async fn raw(&self, method: &str, token: Option<&str>, body: Vec<u8>) -> (StatusCode, String, Value) {
            let mut request = Request::post(format!("/csc/v2/{method}")).header("content-type", "application/json");
            if let Some(t) = token {
                request = request.header("authorization", format!("Bearer {t}"));
            }
            let response = crate::http::router(Arc::clone(&self.p)).oneshot(request.body(Body::from(body)).expect("request")).await.expect("response");
            let status = response.status();
            let challenge = response.headers().get("www-authenticate").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
            let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.expect("body");
            (status, challenge, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
        }

        async fn credential(&self, token: &str) -> String {
            let (status, _, body) = self.call("credentials/list", Some(token), &json!({})).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            body["credentialIDs"][0].as_str().expect("a credential").to_owned()
        }

        /// Opens an authorisation of `hashes` (raw); its responseID and code.
        async fn authorize(&self, token: &str, hashes: &[Vec<u8>]) -> (String, String) {
            let credential = self.credential(token).await;
            let body = json!({"credentialID": credential, "numSignatures": hashes.len(), "hashes": b64s(hashes), "hashAlgorithmOID": SHA256, "description": "Contract no. 7"});
            let (status, _, body) = self.call("credentials/authorize", Some(token), &body).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            assert!(body.get("SAD").is_none(), "authorize returns without a SAD: {body}");
            (body["responseID"].as_str().expect("responseID").to_owned(), body["verificationCode"].as_str().expect("code").to_owned())
        }

        /// The device signs every pending digest (or `override_signatures`) and approves.
        async fn approve(&self, override_signatures: Option<Vec<String>>) -> Result<AuthorizationState, OAuthError> {
            let pending = self.p.device_hash_pending(LAYLA, crate::unix_now()).await.expect("pending").expect("a pending request");
            let signatures = override_signatures.unwrap_or_else(|| {
                pending
                    .hashes
                    .iter()
                    .map(|h| B64.encode(self.device.sign_digest(&self.key, SignatureAlgorithm::Es256, &B64.decode(h).expect("b64")).expect("sign")))
                    .collect()
            });
            self.p
                .device_sign_hashes(LAYLA, &HashAnswer { session: pending.session, outcome: "approve".into(), signatures: Some(signatures) }, crate::unix_now())
                .await
        }

        async fn answer(&self, outcome: &str) {
            let pending = self.p.device_hash_pending(LAYLA, crate::unix_now()).await.expect("pending").expect("a pending request");
            self.p
                .device_sign_hashes(LAYLA, &HashAnswer { session: pending.session, outcome: outcome.into(), signatures: None }, crate::unix_now())
                .await
                .expect("answer");
        }

        async fn check(&self, token: &str, id: &str) -> (StatusCode, Value) {
            let credential = self.credential(token).await;
            let (status, _, body) = self.call("credentials/authorizeCheck", Some(token), &json!({"credentialID": credential, "responseID": id})).await;
            (status, body)
        }

        /// Authorises `hashes`, approves on the device, and gets the SAD.
        async fn sad(&self, token: &str, hashes: &[Vec<u8>]) -> String {
            let (id, _) = self.authorize(token, hashes).await;
            assert!(matches!(self.approve(None).await, Ok(AuthorizationState::Approved { .. })));
            let (status, body) = self.check(token, &id).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            body["SAD"].as_str().expect("SAD").to_owned()
        }

        async fn signatures(&self) -> usize {
            self.p.durable.signatures_of(LAYLA).await.expect("signatures").len()
        }

        async fn sign_hash(&self, token: &str, body: Value) -> (StatusCode, Value) {
            let (status, _, body) = self.call("signatures/signHash", Some(token), &body).await;
            (status, body)
        }
    }

    fn b64s(hashes: &[Vec<u8>]) -> Vec<String> {
        hashes.iter().map(|h| B64.encode(h)).collect()
    }

    fn hashes(n: u8) -> Vec<Vec<u8>> {
        (0..n).map(|i| crate::provider::sha256(&[i, 42])).collect()
    }

    fn refused(status: StatusCode, body: &Value, code: &str, why: &str) {
        assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some(code)), "{body}");
        assert!(body["error_description"].as_str().unwrap_or_default().contains(why), "expected {why:?}: {body}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn csc_is_granted_only_to_clients_whose_service_policy_grants_it() {
        let f = Fixture::new().await;
        for (id, granted) in [(TOOL, "openid csc"), ("notary", "openid")] {
            let registration = json!({"redirect_uris": [format!("https://{id}.example.jo/cb")], "token_endpoint_auth_method": "none"});
            let record = store::ClientRecord { client_id: id.into(), registration: registration.to_string(), created_at: 0 };
            f.p.durable.insert_client(&record).await.expect("client");
            let client = f.p.client(id).await.expect("client").expect("registered");
            let query = format!(
                "response_type=code&client_id={id}&redirect_uri=https://{id}.example.jo/cb&scope=openid%20csc&code_challenge={}&code_challenge_method=S256",
                "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
            );
            let params = crate::oauth::Params::parse(query.as_bytes()).expect("params");
            let request = f.p.check_request(&client, &format!("https://{id}.example.jo/cb"), params).await.expect("request");
            assert_eq!(request.scopes.join(" "), granted, "{id}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn info_needs_no_token_and_names_the_provider_as_issuer() {
        let f = Fixture::new().await;
        let (status, _, body) = f.raw("info", None, Vec::new()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!((body["specs"].as_str(), body["lang"].as_str(), body["name"].as_str()), (Some("2.0.0.2"), Some("ar"), Some("هوية")));
        assert_eq!((body["oauth2"].as_str(), body["oauth2Issuer"].as_str()), (Some("https://id.example.jo"), Some("https://id.example.jo")));
        assert_eq!(body["authType"], json!(["oauth2code"]));
        assert!(body["methods"].as_array().expect("methods").contains(&json!("signatures/signHash")));
        let (_, _, body) = f.call("info", None, &json!({"lang": "en"})).await;
        assert_eq!(body["name"].as_str(), Some("Hawiya"));
        let (status, _, body) = f.call("info", None, &json!({"lang": "fr"})).await;
        refused(status, &body, "invalid_request", "lang \"fr\"");
        let (status, _, body) = f.call("info", None, &json!({"lang": "en", "colour": "green"})).await;
        refused(status, &body, "invalid_request", "unknown field `colour`");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tokens_that_are_absent_unknown_or_expired_get_401_invalid_token() {
        let f = Fixture::new().await;
        for token in [None, Some("not-a-token")] {
            let (status, challenge, body) = f.call("credentials/list", token, &json!({})).await;
            assert_eq!((status, body["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_token")), "{body}");
            assert!(challenge.starts_with("Bearer error=\"invalid_token\""), "{challenge}");
        }
        let token = f.layla().await;
        let caller = f.p.csc_caller(Some(&token), crate::unix_now() + 301).await;
        assert!(matches!(caller, Err(CscError::InvalidToken(_))), "expired: {caller:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_token_without_csc_gets_403_insufficient_scope() {
        let f = Fixture::new().await;
        let token = f.token(TOOL, "c-layla", &["openid"], "high").await;
        let (status, challenge, body) = f.call("credentials/list", Some(&token), &json!({})).await;
        assert_eq!((status, body["error"].as_str()), (StatusCode::FORBIDDEN, Some("insufficient_scope")), "{body}");
        assert!(challenge.starts_with("Bearer error=\"insufficient_scope\""), "{challenge}");
        // An agency's token is not a citizen's.
        let agency = crate::provider::random_token().expect("token");
        let grant =
            crate::token::client_credentials::AgencyGrant { client_id: "notary".into(), scopes: vec!["esign".into()], expires_at: crate::unix_now() + 300 };
        f.p.ephemeral.put(&keyspace::agency_token(&agency), &serde_json::to_vec(&grant).expect("json"), Duration::from_secs(300)).await.expect("put");
        let (status, _, body) = f.call("credentials/list", Some(&agency), &json!({})).await;
        assert_eq!((status, body["error"].as_str()), (StatusCode::FORBIDDEN, Some("insufficient_scope")), "{body}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_login_below_the_signing_level_is_refused() {
        let f = Fixture::new().await;
        let token = f.token(TOOL, "c-layla", &["openid", "csc"], "substantial").await;
        let (status, challenge, body) = f.call("credentials/list", Some(&token), &json!({})).await;
        assert_eq!((status, body["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("insufficient_user_authentication")), "{body}");
        assert!(body["error_description"].as_str().unwrap_or_default().contains("level high"), "{body}");
        assert!(challenge.starts_with("Bearer error=\"insufficient_user_authentication\""), "{challenge}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_tool_lists_the_citizens_credential_and_reads_its_info() {
        let f = Fixture::new().await;
        let token = f.layla().await;
        let (status, _, body) = f.call("credentials/list", Some(&token), &json!({"credentialInfo": true, "certInfo": true, "certificates": "single"})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["credentialIDs"], json!([SERIAL]), "the certificate's serial, not the national id");
        assert_eq!(body["credentialInfos"][0]["credentialID"].as_str(), Some(SERIAL));
        let (status, _, info) = f
            .call("credentials/info", Some(&token), &json!({"credentialID": SERIAL, "certificates": "chain", "certInfo": true, "authInfo": true, "lang": "en"}))
            .await;
        assert_eq!(status, StatusCode::OK, "{info}");
        assert_eq!(info["key"], json!({"status": "enabled", "algo": [ECDSA_SHA256], "len": 256, "curve": "1.2.840.10045.3.1.7"}));
        assert_eq!((info["cert"]["status"].as_str(), info["cert"]["serialNumber"].as_str()), (Some("valid"), Some(SERIAL)));
        assert_eq!(info["cert"]["subjectDN"].as_str(), Some("CN=Layla Haddad"));
        assert_eq!(info["cert"]["validFrom"].as_str().map(str::len), Some(15), "{info}");
        assert_eq!((info["auth"]["mode"].as_str(), info["SCAL"].as_str(), info["multisign"].as_u64()), (Some("implicit"), Some("2"), Some(10)));
        let certificate = B64.decode(info["cert"]["certificates"][0].as_str().expect("certificate")).expect("b64");
        assert_eq!(Certificate::from_der(&certificate).expect("der").tbs_certificate.serial_number.as_bytes(), hex::decode(SERIAL).expect("hex"));
        // Sami has none; another credential id names nothing for Layla.
        let sami = f.token(TOOL, "c-sami", &["openid", "csc"], "high").await;
        let (_, _, body) = f.call("credentials/list", Some(&sami), &json!({})).await;
        assert_eq!(body["credentialIDs"], json!([]));
        let (status, _, body) = f.call("credentials/info", Some(&sami), &json!({"credentialID": SERIAL})).await;
        refused(status, &body, "invalid_request", "no such credential of this citizen");
        let (status, _, body) = f.call("credentials/list", Some(&token), &json!({"userID": LAYLA})).await;
        refused(status, &body, "invalid_request", "userID is not used");
        let (status, _, body) = f.call("credentials/info", Some(&token), &json!({"credentialID": SERIAL, "certificates": "all"})).await;
        refused(status, &body, "invalid_request", "unknown variant `all`");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hashes_approved_on_the_device_are_released_once_by_sign_hash() {
        let f = Fixture::new().await;
        let token = f.layla().await;
        let hashes = hashes(2);
        let (id, code) = f.authorize(&token, &hashes).await;
        assert_eq!(code, hashes_verification_code(&hashes));
        let (status, body) = f.check(&token, &id).await;
        assert_eq!(
            (status, body["status"].as_str(), body["verificationCode"].as_str()),
            (StatusCode::ACCEPTED, Some("pending"), Some(code.as_str())),
            "{body}"
        );
        let pending = f.p.device_hash_pending(LAYLA, crate::unix_now()).await.expect("pending").expect("one");
        assert_eq!((pending.hashes, pending.service.en.as_str(), pending.description.as_deref()), (b64s(&hashes), "Signing tool", Some("Contract no. 7")));
        assert_eq!(f.signatures().await, 0, "nothing is recorded before it is released");
        assert!(matches!(f.approve(None).await, Ok(AuthorizationState::Approved { .. })));
        // The device answered: nothing pending; a second answer is refused.
        assert!(f.p.device_hash_pending(LAYLA, crate::unix_now()).await.expect("pending").is_none());
        let replay = HashAnswer { session: id.clone(), outcome: "approve".into(), signatures: Some(vec![]) };
        assert!(f.p.device_sign_hashes(LAYLA, &replay, crate::unix_now()).await.expect_err("replayed").description.contains("answered already"));
        let (status, body) = f.check(&token, &id).await;
        assert_eq!((status, body["expiresIn"].as_i64()), (StatusCode::OK, Some(SAD_TTL)), "{body}");
        let sad = body["SAD"].as_str().expect("SAD").to_owned();
        let (status, body) = f.check(&token, &id).await;
        refused(status, &body, "invalid_request", "issued already");
        // pyHanko's v1 names, the hashes in another order: the signatures follow the request.
        let asked = vec![hashes[1].clone(), hashes[0].clone()];
        let request = json!({"credentialID": SERIAL, "SAD": sad, "hash": b64s(&asked), "hashAlgo": SHA256, "signAlgo": ECDSA_SHA256});
        let (status, body) = f.sign_hash(&token, request.clone()).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let signatures = body["signatures"].as_array().expect("signatures");
        assert_eq!(signatures.len(), 2);
        let spki = f.device.public_key(&f.key).expect("spki");
        for (hash, signature) in asked.iter().zip(signatures) {
            let signature = B64.decode(signature.as_str().expect("b64")).expect("b64");
            let point = aws_lc_rs::signature::UnparsedPublicKey::new(&aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1, spki.subject_public_key());
            let digest = aws_lc_rs::digest::Digest::import_less_safe(hash, &aws_lc_rs::digest::SHA256).expect("digest");
            assert!(point.verify_digest(&digest, &signature).is_ok(), "each signature is over its own hash");
        }
        assert_eq!(f.signatures().await, 2, "every released signature is recorded");
        let (status, body) = f.sign_hash(&token, request).await;
        refused(status, &body, "invalid_request", "unknown, expired or used");
        assert_eq!(f.signatures().await, 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sign_hash_refuses_a_hash_that_was_not_authorised() {
        let f = Fixture::new().await;
        let token = f.layla().await;
        let sad = f.sad(&token, &hashes(2)).await;
        let mut other = hashes(2);
        other[1] = crate::provider::sha256(b"another document");
        let (status, body) = f
            .sign_hash(&token, json!({"credentialID": SERIAL, "SAD": sad, "hashes": b64s(&other), "hashAlgorithmOID": SHA256, "signAlgo": ECDSA_SHA256}))
            .await;
        refused(status, &body, "invalid_request", "hash 2 was not authorised by this SAD");
        let (status, body) = f.sign_hash(&token, json!({"credentialID": SERIAL, "SAD": sad, "hashes": b64s(&hashes(1)), "signAlgo": ECDSA_SHA256})).await;
        refused(status, &body, "invalid_request", "the SAD authorised 2 hashes");
        assert_eq!(f.signatures().await, 0, "nothing released");
        // The SAD is unspent: the authorised hashes still get their signatures.
        let (status, body) = f.sign_hash(&token, json!({"credentialID": SERIAL, "SAD": sad, "hashes": b64s(&hashes(2)), "signAlgo": ECDSA_SHA256})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sign_hash_refuses_another_credential() {
        let f = Fixture::new().await;
        let token = f.layla().await;
        let sad = f.sad(&token, &hashes(1)).await;
        let (status, body) = f.sign_hash(&token, json!({"credentialID": "00ff", "SAD": sad, "hashes": b64s(&hashes(1)), "signAlgo": ECDSA_SHA256})).await;
        refused(status, &body, "invalid_request", "the SAD was issued for another credential");
        assert_eq!(f.signatures().await, 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sign_hash_refuses_another_clients_token() {
        let f = Fixture::new().await;
        let token = f.layla().await;
        let sad = f.sad(&token, &hashes(1)).await;
        let other = f.token("other-tool", "c-layla", &["openid", "csc"], "high").await;
        let (status, body) = f.sign_hash(&other, json!({"credentialID": SERIAL, "SAD": sad, "hashes": b64s(&hashes(1)), "signAlgo": ECDSA_SHA256})).await;
        refused(status, &body, "invalid_request", "issued to another client");
        assert_eq!(f.signatures().await, 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sign_hash_refuses_another_citizens_token() {
        let f = Fixture::new().await;
        let token = f.layla().await;
        let sad = f.sad(&token, &hashes(1)).await;
        let sami = f.token(TOOL, "c-sami", &["openid", "csc"], "high").await;
        let (status, body) = f.sign_hash(&sami, json!({"credentialID": SERIAL, "SAD": sad, "hashes": b64s(&hashes(1)), "signAlgo": ECDSA_SHA256})).await;
        refused(status, &body, "invalid_request", "issued for another citizen");
        assert_eq!(f.signatures().await, 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sign_hash_refuses_another_hash_algorithm_or_signature_algorithm() {
        let f = Fixture::new().await;
        let token = f.layla().await;
        let sad = f.sad(&token, &hashes(1)).await;
        let request =
            |hash: &str, sign: &str| json!({"credentialID": SERIAL, "SAD": sad, "hashes": b64s(&hashes(1)), "hashAlgorithmOID": hash, "signAlgo": sign});
        let (status, body) = f.sign_hash(&token, request("2.16.840.1.101.3.4.2.2", ECDSA_SHA256)).await;
        refused(status, &body, "invalid_request", "the SAD was issued for SHA-256");
        let (status, body) = f.sign_hash(&token, request(SHA256, "1.2.840.113549.1.1.11")).await;
        refused(status, &body, "invalid_request", "invalid parameter signAlgo");
        assert_eq!(f.signatures().await, 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_expired_sad_is_refused() {
        let f = Fixture::new().await;
        let token = f.layla().await;
        let sad = f.sad(&token, &hashes(1)).await;
        let caller = f.p.csc_caller(Some(&token), crate::unix_now()).await.expect("caller");
        let request: SignHashRequest =
            serde_json::from_value(json!({"credentialID": SERIAL, "SAD": sad, "hashes": b64s(&hashes(1)), "signAlgo": ECDSA_SHA256})).expect("request");
        let e = f.p.csc_sign_hash(&caller, &request, crate::unix_now() + SAD_TTL).await.expect_err("expired");
        assert!(matches!(&e, CscError::InvalidRequest(why) if why.contains("unknown, expired or used")), "{e:?}");
        assert_eq!(f.signatures().await, 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn authorize_refuses_malformed_requests_and_nothing_reaches_the_device() {
        let f = Fixture::new().await;
        let token = f.layla().await;
        let one = b64s(&hashes(1));
        for (body, why) in [
            (json!({"credentialID": SERIAL, "numSignatures": 11, "hashes": b64s(&hashes(11)), "hashAlgorithmOID": SHA256}), "1 to 10 hashes"),
            (json!({"credentialID": SERIAL, "numSignatures": 2, "hashes": one, "hashAlgorithmOID": SHA256}), "numSignatures is 2, but 1 hashes"),
            (json!({"credentialID": SERIAL, "numSignatures": 1, "hashAlgorithmOID": SHA256}), "hashes are required"),
            (json!({"credentialID": SERIAL, "numSignatures": 1, "hashes": one}), "hashAlgorithmOID is required"),
            (json!({"credentialID": SERIAL, "numSignatures": 1, "hashes": one, "hashAlgorithmOID": "1.3.14.3.2.26"}), "SHA-256 or SHA-384"),
            (
                json!({"credentialID": SERIAL, "numSignatures": 1, "hashes": [B64.encode([0u8; 48])], "hashAlgorithmOID": "2.16.840.1.101.3.4.2.2"}),
                "signs SHA-256 hashes",
            ),
            (json!({"credentialID": SERIAL, "numSignatures": 1, "hashes": [B64.encode([0u8; 20])], "hashAlgorithmOID": SHA256}), "hash 1 has 20 bytes"),
            (json!({"credentialID": SERIAL, "numSignatures": 1, "hashes": ["%%%"], "hashAlgorithmOID": SHA256}), "hash 1 is not base64"),
            (json!({"credentialID": SERIAL, "numSignatures": 2, "hashes": [one[0], one[0]], "hashAlgorithmOID": SHA256}), "hash 2 is given twice"),
            (json!({"credentialID": SERIAL, "numSignatures": 1, "hashes": one, "hashAlgorithmOID": SHA256, "PIN": "54321"}), "unknown field `PIN`"),
            (json!({"credentialID": SERIAL, "numSignatures": 1, "hashes": one, "hashAlgorithmOID": SHA256, "authData": []}), "authData is not used"),
            (json!({"credentialID": SERIAL, "numSignatures": 1, "hashes": one, "hashAlgorithmOID": SHA256, "description": "x".repeat(501)}), "at most 500"),
            (json!({"credentialID": "0102", "numSignatures": 1, "hashes": one, "hashAlgorithmOID": SHA256}), "no such credential"),
            (json!({"credentialID": SERIAL, "numSignatures": "one", "hashes": one, "hashAlgorithmOID": SHA256}), "invalid type"),
        ] {
            let (status, _, answer) = f.call("credentials/authorize", Some(&token), &body).await;
            refused(status, &answer, "invalid_request", why);
        }
        let (status, _, answer) = f.raw("credentials/authorize", Some(&token), vec![b' '; 10 * 128 + 8 * 1024 + 1]).await;
        refused(status, &answer, "invalid_request", "larger than");
        let (status, _, answer) = f.raw("credentials/authorize", Some(&token), b"{not json".to_vec()).await;
        refused(status, &answer, "invalid_request", "not the expected JSON");
        assert!(f.p.device_hash_pending(LAYLA, crate::unix_now()).await.expect("pending").is_none(), "no refusal reached the device");
    }

    /// The device's `outcome` ends the authorisation with `why`, without a SAD or a record.
    async fn ends_without_a_sad(outcome: &str, code: &str, why: &str) {
        let f = Fixture::new().await;
        let token = f.layla().await;
        let (id, _) = f.authorize(&token, &hashes(1)).await;
        f.answer(outcome).await;
        let (status, body) = f.check(&token, &id).await;
        refused(status, &body, code, why);
        assert_eq!(f.signatures().await, 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_refusal_on_the_device_gets_no_sad() {
        ends_without_a_sad("refuse", "access_denied", "the citizen refused").await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_wrong_code_on_the_device_gets_no_sad() {
        ends_without_a_sad("wrong_code", "access_denied", "another verification code").await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_locked_pin2_gets_no_sad() {
        ends_without_a_sad("locked", "access_denied", "PIN2 is locked").await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn another_citizens_device_cannot_answer() {
        let f = Fixture::new().await;
        let token = f.layla().await;
        let (id, _) = f.authorize(&token, &hashes(1)).await;
        assert!(f.p.device_hash_pending(SAMI, crate::unix_now()).await.expect("pending").is_none(), "Sami's device is shown nothing");
        let answer = HashAnswer { session: id.clone(), outcome: "refuse".into(), signatures: None };
        let e = f.p.device_sign_hashes(SAMI, &answer, crate::unix_now()).await.expect_err("not Sami's");
        assert!(e.description.contains("no such hash-signing request of this citizen"), "{e:?}");
        // Layla's request is untouched: still pending, and her device can still approve.
        let (status, body) = f.check(&token, &id).await;
        assert_eq!((status, body["status"].as_str()), (StatusCode::ACCEPTED, Some("pending")), "{body}");
        assert!(matches!(f.approve(None).await, Ok(AuthorizationState::Approved { .. })));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_signature_over_another_hash_gets_no_sad() {
        let f = Fixture::new().await;
        let token = f.layla().await;
        let (id, _) = f.authorize(&token, &hashes(1)).await;
        let other = f.device.sign_digest(&f.key, SignatureAlgorithm::Es256, &crate::provider::sha256(b"something else")).expect("sign");
        assert_eq!(f.approve(Some(vec![B64.encode(other)])).await.expect("answered"), AuthorizationState::Failed { reason: "bad_signature".into() });
        let (status, body) = f.check(&token, &id).await;
        refused(status, &body, "invalid_request", "do not verify with the signing certificate");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_certificate_suspended_after_the_device_signed_gets_no_sad() {
        let f = Fixture::new().await;
        let token = f.layla().await;
        let (id, _) = f.authorize(&token, &hashes(1)).await;
        assert!(matches!(f.approve(None).await, Ok(AuthorizationState::Approved { .. })));
        let serial: store::Serial = SERIAL.parse().expect("serial");
        f.p.durable.revoke(&serial, store::RevocationReason::CertificateHold, crate::unix_now()).await.expect("hold");
        let (status, body) = f.check(&token, &id).await;
        refused(status, &body, "invalid_request", "the signing certificate is suspended");
        // Released again, the approval still stands: the refusal changed nothing.
        f.p.durable.release(&serial).await.expect("release");
        let (status, body) = f.check(&token, &id).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_certificate_revoked_before_the_answer_gets_no_sad() {
        let f = Fixture::new().await;
        let token = f.layla().await;
        let (id, _) = f.authorize(&token, &hashes(1)).await;
        let serial: store::Serial = SERIAL.parse().expect("serial");
        f.p.durable.revoke(&serial, store::RevocationReason::KeyCompromise, crate::unix_now()).await.expect("revoke");
        assert_eq!(f.approve(None).await.expect("answered"), AuthorizationState::Failed { reason: "revoked".into() });
        let (status, body) = f.check(&token, &id).await;
        refused(status, &body, "invalid_request", "the signing certificate is revoked");
        let (status, _, body) = f.call("credentials/info", Some(&token), &json!({"credentialID": SERIAL})).await;
        assert_eq!((status, body["cert"]["status"].as_str(), body["key"]["status"].as_str()), (StatusCode::OK, Some("revoked"), Some("disabled")));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_unanswered_authorisation_times_out() {
        let f = Fixture::new().await;
        let token = f.layla().await;
        let (id, _) = f.authorize(&token, &hashes(1)).await;
        let caller = f.p.csc_caller(Some(&token), crate::unix_now()).await.expect("caller");
        let request = AuthorizeCheckRequest { credential_id: SERIAL.into(), response_id: id, client_data: None };
        let e = f.p.csc_authorize_check(&caller, &request, crate::unix_now() + 120).await.expect_err("timed out");
        assert!(matches!(&e, CscError::InvalidRequest(why) if why.contains("timed out")), "{e:?}");
        assert!(f.p.device_hash_pending(LAYLA, crate::unix_now() + 120).await.expect("pending").is_none());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn another_tool_cannot_check_an_authorisation() {
        let f = Fixture::new().await;
        let token = f.layla().await;
        let (id, _) = f.authorize(&token, &hashes(1)).await;
        let other = f.token("other-tool", "c-layla", &["openid", "csc"], "high").await;
        let (status, body) = f.check(&other, &id).await;
        refused(status, &body, "invalid_request", "no such authorisation of this client");
    }
}
