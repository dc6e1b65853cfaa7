//! `hawiya citizen …`, `hawiya client …` and `hawiya keys …`: registering citizens and
//! relying parties, and rotating the provider's signing keys.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};
use hsm_shim::KeyStore;
use idp::citizens::Profile;
use idp::clients::{AuthMethod, Client, Registration};
use idp::credentials::TotpSecret;
use idp::keys::SigningKeys;
use idp::provider::Provider;
use idp::{Settings, keys, unix_now as now};
use policies::{ClientId, NationalId};
use store::ephemeral::EphemeralStore;
use store::{ClientRecord, DurableStore};

use crate::CommandResult;
use crate::config::DataDir;
use crate::enrolment::{Custody, Enrolment, StatusChange};
use crate::registration::{self, BilingualName, Birthdate, Email, NewCitizen, PersonName, PhoneNumber, PostalAddress};

/// Builds the provider of a data directory (shared by `serve` and the commands here).
pub async fn provider(
    data: &DataDir,
    issuer: &str,
    durable: Arc<dyn DurableStore>,
    keys: Arc<dyn KeyStore>,
    policies: Arc<policies::Policies>,
    ephemeral: Arc<dyn EphemeralStore>,
) -> Result<Provider, Box<dyn std::error::Error>> {
    let mut settings = Settings::new(issuer, data.provider_secret()?);
    settings.trusted_proxies = data.trusted_proxies()?;
    // Password logins that may wait for a check beyond those running (idp::admission):
    // HAWIYA_LOGIN_QUEUE, 32 per core unless it says otherwise.
    if let Ok(v) = std::env::var("HAWIYA_LOGIN_QUEUE") {
        settings.login_queue = v.trim().parse().map_err(|_| format!("HAWIYA_LOGIN_QUEUE: a number of waiting logins (0 or more), not {v:?}"))?;
    }
    // Deliveries to relying parties: 12 tries from 2 s apart, unless HAWIYA_BACKCHANNEL_RETRY
    // (first_delay_ms,attempts) says otherwise (the tests shorten the waits).
    if let Ok(v) = std::env::var("HAWIYA_BACKCHANNEL_RETRY") {
        settings.backchannel_retry = idp::backchannel::Schedule::parse(&v)?;
    }
    // A replaced key stays published as long as an id_token it signed may be presented,
    // plus a margin for clocks.
    let retention = settings.id_token_ttl + Duration::from_secs(300);
    let signing = SigningKeys::open(keys, durable.clone(), retention, now()).await?;
    let smart_id = smart_id(durable.as_ref(), Arc::clone(&policies)).await?;
    let provider = Provider::new(settings, policies, durable, ephemeral, signing)?;
    Ok(match smart_id {
        Some(s) => provider.with_smart_id(s),
        None => provider,
    })
}

/// Smart-ID logins, trusting the hierarchy's Citizen Authentication CA (every generation) and asking the OCSP
/// responder each certificate names (or `HAWIYA_OCSP_URL`, when the certificates' host is
/// not reachable from the server, as behind some proxies).
async fn smart_id(durable: &dyn DurableStore, policies: Arc<policies::Policies>) -> Result<Option<idp::smart_id::SmartId>, Box<dyn std::error::Error>> {
    let Some(ceremony) = durable.ceremony().await? else { return Ok(None) };
    // Every generation of the CA (the ceremony's and each renewal's): a citizen's smart-ID
    // certificate of the old generation logs in until it expires.
    let mut anchors = Vec::new();
    for a in ceremony.authorities.iter().filter(|a| a.profile == ca::names::CITIZEN_AUTHENTICATION) {
        anchors.push(hex::decode(&a.certificate).map_err(|e| format!("the ceremony record's {} certificate: {e}", a.name))?);
    }
    if anchors.is_empty() {
        return Ok(None);
    }
    let ocsp = idp::smart_id::OcspClient::new(idp::backchannel::http_client()?, std::env::var("HAWIYA_OCSP_URL").ok());
    let verifier = idp::smart_id::Verifier::new(&anchors, Arc::new(ocsp), policies)?;
    // How long the citizen has to answer on the device: 2 minutes unless
    // HAWIYA_SMART_ID_TIMEOUT (seconds, 10 to 600) says otherwise.
    let timeout = match std::env::var("HAWIYA_SMART_ID_TIMEOUT") {
        Ok(v) => v.parse::<u64>().ok().filter(|s| (10..=600).contains(s)).ok_or("HAWIYA_SMART_ID_TIMEOUT: 10 to 600 seconds")?,
        Err(_) => 120,
    };
    // Requests per national id and per address in 15 minutes: HAWIYA_SMART_ID_LIMITS
    // ("10,100" by default; the benchmark raises them for its few simulated citizens).
    let limits = match std::env::var("HAWIYA_SMART_ID_LIMITS") {
        Ok(v) => v
            .split_once(',')
            .and_then(|(c, a)| Some((c.trim().parse::<u64>().ok()?, a.trim().parse::<u64>().ok()?)))
            .filter(|(c, a)| *c > 0 && *a > 0)
            .ok_or("HAWIYA_SMART_ID_LIMITS: two positive numbers, per national id and per address, such as 10,100")?,
        Err(_) => idp::smart_id::DEFAULT_LIMITS,
    };
    Ok(Some(idp::smart_id::SmartId { verifier, country: ceremony.country, timeout: Duration::from_secs(timeout), limits }))
}

#[derive(Args)]
pub struct DataArg {
    /// The data directory.
    #[arg(long)]
    data: PathBuf,
}

#[derive(Subcommand)]
pub enum CitizenCommand {
    /// Registers a citizen; the password is read from standard input (one line), never
    /// from the command line. Every value is checked before anything is stored.
    Add {
        #[command(flatten)]
        data: DataArg,
        /// The national identity number (5 to 20 digits).
        #[arg(long)]
        national_id: NationalId,
        /// Given name in Arabic script (at most 100 characters, as every name).
        #[arg(long)]
        given_name_ar: PersonName,
        /// Family name in Arabic script.
        #[arg(long)]
        family_name_ar: PersonName,
        /// Given name in Latin script.
        #[arg(long)]
        given_name_en: PersonName,
        /// Family name in Latin script.
        #[arg(long)]
        family_name_en: PersonName,
        /// Birthdate, YYYY-MM-DD.
        #[arg(long)]
        birthdate: Option<Birthdate>,
        /// E-mail address.
        #[arg(long)]
        email: Option<Email>,
        /// Phone number, E.164 (+962…).
        #[arg(long)]
        phone: Option<PhoneNumber>,
        /// Postal address, as written on an envelope.
        #[arg(long)]
        address: Option<PostalAddress>,
    },
    /// Shows what is registered of a citizen: names, birthdate, contact data, whether one-time
    /// codes are enrolled, and their smart-ID.
    Show {
        #[command(flatten)]
        data: DataArg,
        /// The national identity number.
        #[arg(long)]
        national_id: NationalId,
    },
    /// Withdraws a citizen's consent to a service: it will be asked again at the next login.
    RevokeConsent {
        #[command(flatten)]
        data: DataArg,
        /// The national identity number.
        #[arg(long)]
        national_id: NationalId,
        /// The service's client id.
        #[arg(long)]
        client: ClientId,
    },
    /// Enrols a citizen proven in person for a smart-ID: prints the one-time activation code
    /// the citizen's device needs (valid 15 minutes).
    Enroll {
        #[command(flatten)]
        data: DataArg,
        /// The national identity number.
        #[arg(long)]
        national_id: NationalId,
        /// Where the device keeps the keys: hardware (smart card, secure element; logins
        /// reach high) or software (at most substantial).
        #[arg(long)]
        custody: String,
        /// The registration officer, for the audit trail (default: $USER).
        #[arg(long)]
        officer: Option<String>,
    },
    /// Suspends a citizen's smart-ID (both certificates on hold) until `resume`.
    Suspend {
        #[command(flatten)]
        data: DataArg,
        /// The national identity number.
        #[arg(long)]
        national_id: NationalId,
    },
    /// Lifts a suspension.
    Resume {
        #[command(flatten)]
        data: DataArg,
        /// The national identity number.
        #[arg(long)]
        national_id: NationalId,
    },
    /// Revokes a citizen's smart-ID for good.
    Revoke {
        #[command(flatten)]
        data: DataArg,
        /// The national identity number.
        #[arg(long)]
        national_id: NationalId,
        /// An RFC 5280 reason: unspecified, keyCompromise, affiliationChanged, superseded,
        /// cessationOfOperation, privilegeWithdrawn.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Enrols a one-time-code authenticator: prints the otpauth URI to scan.
    TotpEnroll {
        #[command(flatten)]
        data: DataArg,
        /// The national identity number.
        #[arg(long)]
        national_id: NationalId,
    },
}

#[derive(Subcommand)]
pub enum ClientCommand {
    /// Registers a relying party; a secret, if its method uses one, is printed once.
    Add {
        #[command(flatten)]
        data: DataArg,
        /// The client id (the name of its service policy file, if it has one).
        #[arg(long)]
        id: ClientId,
        /// A redirect URI (repeat for more); matched exactly.
        #[arg(long = "redirect-uri", required = true)]
        redirect_uris: Vec<String>,
        /// Where citizens may be sent after logout (repeat for more).
        #[arg(long = "post-logout-redirect-uri")]
        post_logout_redirect_uris: Vec<String>,
        /// Its back-channel logout endpoint.
        #[arg(long)]
        backchannel_logout_uri: Option<String>,
        /// private_key_jwt, client_secret_basic, client_secret_post or none (public, PKCE).
        #[arg(long, default_value = "private_key_jwt")]
        auth_method: String,
        /// A file holding its public JWK Set (for private_key_jwt and request objects).
        #[arg(long)]
        jwks: Option<PathBuf>,
        /// Where it publishes its JWK Set instead.
        #[arg(long)]
        jwks_uri: Option<String>,
        /// Its sector identifier: a URL listing its redirect URIs (JSON array), fetched
        /// now; clients of one sector share pairwise subjects, and its redirect URIs may
        /// then span several hosts.
        #[arg(long)]
        sector_identifier_uri: Option<String>,
        /// The id_token signing algorithm: RS256, PS256, ES256 or EdDSA.
        #[arg(long, default_value = "RS256")]
        id_token_alg: String,
    },
    /// Lists the relying parties.
    List {
        #[command(flatten)]
        data: DataArg,
    },
    /// Removes a relying party with its consents and refresh tokens.
    Remove {
        #[command(flatten)]
        data: DataArg,
        /// The client id.
        #[arg(long)]
        id: ClientId,
    },
}

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Makes new signing keys: published at once, signing after the delay; the old keys
    /// sign until then and stay published until what they signed has expired.
    Rotate {
        #[command(flatten)]
        data: DataArg,
        /// Which keys (only idp-signing so far).
        #[arg(long)]
        purpose: keys::KeyPurpose,
        /// Seconds between publishing the new keys and signing with them (at least as long
        /// as relying parties cache the JWKS).
        #[arg(long, default_value_t = 120)]
        publish_delay: u64,
    },
    /// Renews an issuing CA: a new key and a certificate for it from the root (common name
    /// with " G<n>"), with its own OCSP responder; new issuance moves to it, the replaced
    /// generation keeps answering OCSP and publishing CRLs for what it issued. A ceremony
    /// with the root key: restart `hawiya serve` afterwards.
    // Not `rotate --purpose`: a rotation publishes a JWKS key and switches after a delay; a
    // renewal is a root-key ceremony that makes a certificate and a responder, and idp (which
    // names the purposes) knows nothing of the CA.
    RenewCa {
        #[command(flatten)]
        data: DataArg,
        /// The CA: citizen-authentication-ca, citizen-signing-ca or services-ca (the names
        /// `hawiya ca crl --ca` takes).
        #[arg(long = "ca")]
        ca_name: String,
    },
}

async fn open(data: &Path) -> Result<(DataDir, Arc<dyn DurableStore>, Arc<policies::Policies>), Box<dyn std::error::Error>> {
    let dir = DataDir::open(data)?;
    let (durable, policies) = (dir.store().await?, dir.policies()?);
    Ok((dir, durable, policies))
}

/// The registration authority of a data directory.
async fn enrolment(data: &Path) -> Result<Enrolment, Box<dyn std::error::Error>> {
    let dir = DataDir::open(data)?;
    let durable = dir.store().await?;
    let authority = ca::Authority::load(durable.clone(), dir.key_store()?, dir.policies()?).await?;
    Ok(Enrolment::new(Arc::new(authority), durable, dir.config.ra_officers.clone()))
}

async fn status_change(data: &Path, national_id: &NationalId, change: StatusChange, done: &str) -> CommandResult {
    let officer = std::env::var("USER").unwrap_or_else(|_| "cli".into());
    enrolment(data).await?.change_status(national_id, change, &officer).await?;
    println!("The smart-ID of {national_id} is {done}.");
    Ok(())
}

fn read_password() -> Result<String, Box<dyn std::error::Error>> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).map_err(|e| format!("cannot read the password from standard input: {e}"))?;
    let line = line.trim_end_matches(['\n', '\r']).to_owned();
    if line.is_empty() {
        return Err("no password on standard input".into());
    }
    Ok(line)
}

pub async fn citizen(command: CitizenCommand) -> CommandResult {
    match command {
        CitizenCommand::Add { data, national_id, given_name_ar, family_name_ar, given_name_en, family_name_en, birthdate, email, phone, address } => {
            let citizen = NewCitizen {
                national_id,
                given_name: BilingualName { ar: given_name_ar, en: given_name_en },
                family_name: BilingualName { ar: family_name_ar, en: family_name_en },
                birthdate,
                email,
                phone_number: phone,
                address,
            };
            let password = read_password()?;
            let (_, durable, _) = open(&data.data).await?;
            let officer = std::env::var("USER").unwrap_or_else(|_| "cli".into());
            registration::register(durable.as_ref(), &citizen, registration::hash_password(password)?, None, &officer).await?;
            println!("Registered citizen {}.", citizen.national_id);
            Ok(())
        }
        CitizenCommand::Show { data, national_id } => {
            let (_, durable, _) = open(&data.data).await?;
            let citizen = durable.citizen(national_id.as_str()).await?.ok_or_else(|| format!("no citizen with national id {national_id}"))?;
            let profile = Profile::from_json(&citizen.profile)?;
            println!("national id    {national_id}");
            println!("given name     {} / {}", profile.given_name.ar, profile.given_name.en);
            println!("family name    {} / {}", profile.family_name.ar, profile.family_name.en);
            let or_none = |v: Option<&str>| v.map(str::to_owned).unwrap_or_else(|| "-".into());
            println!("birthdate      {}", or_none(profile.birthdate.as_deref()));
            println!("email          {}", or_none(profile.email.as_deref()));
            println!("phone          {}", or_none(profile.phone_number.as_deref()));
            println!("address        {}", or_none(profile.address.as_ref().and_then(|a| a.formatted.as_deref())).replace('\n', ", "));
            println!("one-time codes {}", if citizen.totp_secret.is_some() { "enrolled" } else { "not enrolled" });
            match durable.smart_id(national_id.as_str()).await? {
                Some(s) => println!("smart-ID       {} keys, activated {}", s.custody, crate::ca_cmd::date(s.activated_at)),
                None => println!("smart-ID       none"),
            }
            Ok(())
        }
        CitizenCommand::Enroll { data, national_id, custody, officer } => {
            let custody = Custody::parse(&custody).map_err(|e| format!("--custody: {e}"))?;
            let officer = officer.or_else(|| std::env::var("USER").ok()).unwrap_or_else(|| "cli".into());
            let (code, expires_at) = enrolment(&data.data).await?.enrol(&national_id, custody, &officer, now()).await?;
            println!("Activation code for {national_id} ({} keys): {code}", custody.name());
            println!("It works once, until {}.", crate::ca_cmd::date(expires_at));
            println!("On the citizen's device: hawiya device activate --server <URL> --code {code}");
            Ok(())
        }
        CitizenCommand::Suspend { data, national_id } => status_change(&data.data, &national_id, StatusChange::Suspend, "suspended").await,
        CitizenCommand::Resume { data, national_id } => status_change(&data.data, &national_id, StatusChange::Resume, "resumed").await,
        CitizenCommand::Revoke { data, national_id, reason } => {
            let reason = crate::enrolment::revocation_reason(reason.as_deref()).map_err(|e| format!("--reason: {e}"))?;
            status_change(&data.data, &national_id, StatusChange::Revoke(reason), "revoked").await
        }
        CitizenCommand::RevokeConsent { data, national_id, client } => {
            let (_, durable, _) = open(&data.data).await?;
            let citizen = durable.citizen(national_id.as_str()).await?.ok_or_else(|| format!("no citizen with national id {national_id}"))?;
            if !durable.revoke_consent(&citizen.id, &client).await? {
                return Err(format!("citizen {national_id} has no consent for {client}").into());
            }
            tracing::info!(target: "audit", event = "consent.revoked", client = client.as_str(), "consent withdrawn");
            println!("Consent of {national_id} to {client} withdrawn.");
            Ok(())
        }
        CitizenCommand::TotpEnroll { data, national_id } => {
            let (_, durable, _) = open(&data.data).await?;
            let secret = TotpSecret::generate()?;
            let uri = secret.otpauth_uri("Hawiya", national_id.as_str());
            let qr = qrcode::QrCode::new(uri.as_bytes()).map_err(|e| format!("QR code: {e}"))?;
            let picture = qr
                .render::<qrcode::render::unicode::Dense1x2>()
                .dark_color(qrcode::render::unicode::Dense1x2::Light)
                .light_color(qrcode::render::unicode::Dense1x2::Dark)
                .build();
            durable.set_totp(national_id.as_str(), Some(&hex::encode(secret.expose()))).await?;
            println!("{uri}");
            println!("{picture}");
            Ok(())
        }
    }
}

pub async fn client(command: ClientCommand) -> CommandResult {
    match command {
        ClientCommand::Add {
            data,
            id,
            redirect_uris,
            post_logout_redirect_uris,
            backchannel_logout_uri,
            auth_method,
            jwks,
            jwks_uri,
            sector_identifier_uri,
            id_token_alg,
        } => {
            let method = match auth_method.as_str() {
                "private_key_jwt" => AuthMethod::PrivateKeyJwt,
                "client_secret_basic" => AuthMethod::ClientSecretBasic,
                "client_secret_post" => AuthMethod::ClientSecretPost,
                "none" => AuthMethod::None,
                other => return Err(format!("--auth-method: unknown method {other:?}").into()),
            };
            let jwks = match &jwks {
                Some(path) => {
                    let text = std::fs::read_to_string(path).map_err(|e| format!("--jwks {}: {e}", path.display()))?;
                    Some(serde_json::from_str(&text).map_err(|e| format!("--jwks {}: {e}", path.display()))?)
                }
                None => None,
            };
            let secret = match method {
                AuthMethod::ClientSecretBasic | AuthMethod::ClientSecretPost => Some(idp::clients::new_secret()?),
                _ => None,
            };
            let registration = Registration {
                redirect_uris,
                post_logout_redirect_uris,
                backchannel_logout_uri,
                token_endpoint_auth_method: method,
                client_secret_sha256: secret.as_ref().map(|(_, hash)| hash.clone()),
                jwks,
                jwks_uri,
                sector_identifier_uri,
                request_uris: Vec::new(),
                id_token_signed_response_alg: id_token_alg,
                name: None,
            };
            let (_, durable, policies) = open(&data.data).await?;
            if policies.service(&id).is_some_and(|s| s.registration.is_some()) {
                return Err(format!("client {id} is declared in its policy file (services/{id}.toml); change it there").into());
            }
            if id == idp::provider::ACCOUNT_CLIENT {
                return Err(format!("{id} is the provider's own client (the citizens' account page)").into());
            }
            if id == idp::signing::SIGN_CLIENT {
                return Err(format!("{id} is the provider's own client (the citizens' signing page)").into());
            }
            // Checked before anything is stored.
            let client = Client::new(&id, registration.clone(), &policies)?;
            idp::clients::check_sector_identifier(&idp::backchannel::http_client()?, &registration).await?;
            let document = serde_json::to_string(&registration)?;
            durable.insert_client(&ClientRecord { client_id: id.to_string(), registration: document, created_at: now() }).await?;
            tracing::info!(target: "audit", event = "client.added", client = %id, auth_method = method.as_str(), "client registered");
            println!("Registered client {id} ({}, minimum level {}).", method.as_str(), client.min_level());
            if let Some((secret, _)) = secret {
                println!("client_secret: {secret}");
                println!("(shown once: Hawiya keeps only its hash)");
            }
            Ok(())
        }
        ClientCommand::List { data } => {
            let (_, durable, policies) = open(&data.data).await?;
            let declared = policies.services().iter().filter_map(|s| Some((s.client_id.to_string(), Client::declared(s, &policies)?, "policy file")));
            let stored = durable.clients().await?.into_iter().map(|r| (r.client_id.clone(), Client::from_record(&r, &policies), "client add"));
            let mut all: Vec<_> = declared.chain(stored).collect();
            all.sort_by(|a, b| a.0.cmp(&b.0));
            for (id, client, source) in all {
                match client {
                    Ok(c) => println!(
                        "{id}\t{}\tlevel {}\t{source}\t{}",
                        c.registration.token_endpoint_auth_method.as_str(),
                        c.min_level(),
                        c.registration.redirect_uris.join(" ")
                    ),
                    Err(e) => println!("{id}\tunusable ({source}): {e}"),
                }
            }
            Ok(())
        }
        ClientCommand::Remove { data, id } => {
            let (_, durable, policies) = open(&data.data).await?;
            if policies.service(&id).is_some_and(|s| s.registration.is_some()) {
                return Err(format!("client {id} is declared in its policy file (services/{id}.toml); remove it there").into());
            }
            if !durable.remove_client(&id).await? {
                return Err(format!("no client {id:?}").into());
            }
            tracing::info!(target: "audit", event = "client.removed", client = %id, "client removed");
            println!("Removed client {id} with its consents and refresh tokens.");
            Ok(())
        }
    }
}

pub async fn keys(command: KeysCommand) -> CommandResult {
    match command {
        KeysCommand::Rotate { data, purpose, publish_delay } => {
            // Only the provider's signing keys rotate here; the CA's rotate with their ceremony.
            let keys::KeyPurpose::IdpSigning = purpose;
            let (dir, durable, _) = open(&data.data).await?;
            let signing = SigningKeys::open(dir.key_store()?, durable, Duration::ZERO, now()).await?;
            let kids = signing.rotate(now(), Duration::from_secs(publish_delay)).await?;
            println!("New {purpose} keys, published now, signing in {publish_delay} s: {}", kids.join(" "));
            Ok(())
        }
        KeysCommand::RenewCa { data, ca_name } => {
            let dir = DataDir::open(&data.data)?;
            let renewal = ca::ceremony::renew(dir.key_store()?, dir.store().await?, dir.policies()?, &ca_name).await?;
            let r = &renewal.record;
            println!("Renewed {} ({}): {} \"{}\", key {}", r.ca, r.performed_at, r.generation, renewal.common_name, renewal.key);
            println!("  new issuance: {}; OCSP responder {}", r.generation, ca::names::ocsp_responder(&r.generation));
            println!(
                "  {} keeps answering OCSP and publishing CRLs for what it issued (until {} at the latest)",
                r.replaces,
                crate::ca_cmd::date(renewal.replaced_until)
            );
            println!("Restart `hawiya serve` to issue from and answer for the new generation; `hawiya ca certs` writes its certificates.");
            Ok(())
        }
    }
}
