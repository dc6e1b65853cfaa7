//! `hawiya ca …`: the ceremony and the registration officer's CA operations.

use std::path::{Path, PathBuf};

use ca::{Authority, IssueRequest, Subject};
use clap::{Args, Subcommand};
use store::{CertificateStatus, RevocationReason, Serial};

use crate::CommandResult;
use crate::config::{CeremonyFile, DataDir};

#[derive(Args)]
pub struct DataArg {
    /// The data directory.
    #[arg(long)]
    data: PathBuf,
}

#[derive(Subcommand)]
pub enum CaCommand {
    /// Runs the key ceremony: creates the keys and the whole CA hierarchy.
    Init {
        #[command(flatten)]
        data: DataArg,
        /// The ceremony file (default: the shipped default ceremony, country JO, soft keys).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Overrides the ceremony's PKI publication base, written into every certificate
        /// (plain http://; the OpenID Connect issuer is `serve --issuer`).
        #[arg(long)]
        base_url: Option<String>,
    },
    /// Writes the hierarchy's certificates as PEM: root.pem, citizen-authentication-ca.pem,
    /// citizen-signing-ca.pem, services-ca.pem, the OCSP responders' and TSA's, and those of
    /// every renewed generation (citizen-authentication-ca-2.pem, …).
    Certs {
        #[command(flatten)]
        data: DataArg,
        /// The output directory.
        #[arg(long)]
        out: PathBuf,
    },
    /// Issues a certificate from a PKCS#10 request for an identity proven in person.
    Issue {
        #[command(flatten)]
        data: DataArg,
        /// The profile: citizen-authentication, citizen-signature, timestamping, …
        #[arg(long)]
        profile: String,
        /// The request, PEM or DER.
        #[arg(long)]
        csr: PathBuf,
        /// Given name (Latin script), for citizens.
        #[arg(long)]
        given_name: Option<String>,
        /// Surname (Latin script), for citizens.
        #[arg(long)]
        surname: Option<String>,
        /// National identity number, for citizens.
        #[arg(long)]
        national_id: Option<policies::NationalId>,
        /// Country (ISO 3166-1 alpha-2; default: the hierarchy's).
        #[arg(long)]
        country: Option<String>,
        /// Organization, for organization profiles.
        #[arg(long)]
        organization: Option<String>,
        /// Common name, for organization profiles.
        #[arg(long)]
        common_name: Option<String>,
        /// Where to write the certificate (PEM).
        #[arg(long)]
        out: PathBuf,
    },
    /// Revokes a certificate (`--reason certificateHold` suspends it).
    Revoke {
        #[command(flatten)]
        data: DataArg,
        /// The serial number in hex (colons allowed).
        #[arg(long)]
        serial: String,
        /// An RFC 5280 reason: unspecified, keyCompromise, cACompromise, affiliationChanged,
        /// superseded, cessationOfOperation, certificateHold, privilegeWithdrawn, aACompromise.
        #[arg(long)]
        reason: String,
    },
    /// Lifts a hold (certificateHold): the certificate is valid again.
    Release {
        #[command(flatten)]
        data: DataArg,
        /// The serial number in hex.
        #[arg(long)]
        serial: String,
    },
    /// Signs and writes a fresh CRL of one CA.
    Crl {
        #[command(flatten)]
        data: DataArg,
        /// The CA: root, citizen-authentication-ca, citizen-signing-ca, services-ca, or a
        /// renewed generation (citizen-authentication-ca-2, …).
        #[arg(long = "ca")]
        ca_name: String,
        /// Where to write it (DER).
        #[arg(long)]
        out: PathBuf,
    },
    /// Lists issued certificates with their status.
    List {
        #[command(flatten)]
        data: DataArg,
        /// Only those of this issuing CA.
        #[arg(long)]
        issuer: Option<String>,
        /// At most this many, newest first.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
    },
}

/// Runs the ceremony into a new data directory.
pub async fn init(data: &Path, ceremony: CeremonyFile) -> Result<Authority, Box<dyn std::error::Error>> {
    // A ceremony that would be refused creates nothing, not even the directory.
    ceremony.ceremony.check()?;
    if DataDir::exists(data) {
        let dir = DataDir::open(data)?;
        if dir.store().await?.ceremony().await?.is_some() {
            return Err(format!("{} already holds a CA hierarchy; refusing to run another ceremony", data.display()).into());
        }
    }
    let existing = DataDir::exists(data);
    let dir = if existing { DataDir::open(data)? } else { DataDir::new(data, ceremony.key_store, ceremony.store) };
    // Open everything first: a missing secret or PIN, or an unreachable database, leaves
    // nothing behind.
    std::fs::create_dir_all(data).map_err(|e| format!("{}: {e}", data.display()))?;
    let (keys, store, policies) = (dir.key_store()?, dir.store().await?, dir.policies()?);
    if !existing {
        dir.save()?;
    }
    Ok(ca::ceremony::run(&ceremony.ceremony, keys, store, policies).await?)
}

async fn authority(data: &DataArg) -> Result<Authority, Box<dyn std::error::Error>> {
    let dir = DataDir::open(&data.data)?;
    Ok(Authority::load(dir.store().await?, dir.key_store()?, dir.policies()?).await?)
}

/// Writes `contents` to `path` whole or not at all: a temporary file next to it, synced,
/// then renamed over it, so that a process killed half-way never leaves half a certificate.
fn write(path: &Path, contents: &[u8]) -> Result<(), String> {
    use std::io::Write;
    let fail = |e: std::io::Error| format!("{}: {e}", path.display());
    let name = path.file_name().ok_or_else(|| format!("{}: not a file name", path.display()))?;
    let tmp = path.with_file_name(format!(".{}.{}.tmp", name.to_string_lossy(), std::process::id()));
    let result = std::fs::File::create(&tmp).and_then(|mut f| f.write_all(contents).and_then(|()| f.sync_all())).and_then(|()| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(fail)
}

fn serial(s: &str) -> Result<Serial, String> {
    s.parse().map_err(|e: String| format!("--serial: {e}"))
}

fn status_text(status: &CertificateStatus) -> String {
    match status {
        CertificateStatus::Good => "good".into(),
        CertificateStatus::Revoked { reason: RevocationReason::CertificateHold, at } => format!("on hold since {}", date(*at)),
        CertificateStatus::Revoked { reason, at } => format!("revoked ({reason}) {}", date(*at)),
    }
}

pub(crate) fn date(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| unix.to_string())
}

pub async fn run(command: CaCommand) -> CommandResult {
    match command {
        CaCommand::Init { data, config, base_url } => {
            let mut ceremony = CeremonyFile::load(config.as_deref())?;
            if let Some(url) = base_url {
                ceremony.ceremony.base_url = url;
            }
            let authority = init(&data.data, ceremony).await?;
            println!("Ceremony complete ({}), country {}:", authority.ceremony().performed_at, authority.ceremony().country);
            for a in &authority.ceremony().authorities {
                println!("  {:<34} {:<24} key {}", a.name, a.profile, a.key);
            }
            println!("Certificates point at {}", authority.ceremony().base_url);
            Ok(())
        }
        CaCommand::Certs { data, out } => {
            let authority = authority(&data).await?;
            std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
            // The CAs, then the service identities (OCSP responders, TSA) of the ceremony.
            for a in &authority.ceremony().authorities {
                let name = a.name.as_str();
                let path = out.join(format!("{name}.pem"));
                write(&path, ca::authority::pem("CERTIFICATE", authority.certificate(name)?).as_bytes())?;
                println!("{}", path.display());
            }
            Ok(())
        }
        CaCommand::Issue { data, profile, csr, given_name, surname, national_id, country, organization, common_name, out } => {
            let csr = std::fs::read(&csr).map_err(|e| format!("{}: {e}", csr.display()))?;
            let authority = authority(&data).await?;
            let country = country.unwrap_or_else(|| authority.ceremony().country.clone());
            let subject = match (given_name, surname, national_id, organization, common_name) {
                (Some(given_name), Some(surname), Some(national_id), None, None) => Subject::NaturalPerson { given_name, surname, national_id, country },
                (None, None, None, Some(organization), Some(common_name)) => Subject::Organization { country, organization, common_name },
                _ => {
                    return Err("give --given-name, --surname and --national-id for a citizen, or --organization and --common-name for an organization".into());
                }
            };
            if out.exists() {
                return Err(format!("{} exists; refusing to overwrite it", out.display()).into());
            }
            let issued = authority.issue(&IssueRequest { profile, csr, subject }).await?;
            write(&out, issued.pem().as_bytes())?;
            println!("issued {} by {} -> {}", issued.serial, issued.issuer, out.display());
            Ok(())
        }
        CaCommand::Revoke { data, serial: s, reason } => {
            let serial = serial(&s)?;
            let reason: RevocationReason = reason.parse().map_err(|e: String| format!("--reason: {e}"))?;
            let record = authority(&data).await?.revoke(&serial, reason).await?;
            println!("{serial}: {}", status_text(&record.status));
            Ok(())
        }
        CaCommand::Release { data, serial: s } => {
            let serial = serial(&s)?;
            let record = authority(&data).await?.release(&serial).await?;
            println!("{serial}: {}", status_text(&record.status));
            Ok(())
        }
        CaCommand::Crl { data, ca_name, out } => {
            let crl = authority(&data).await?.publish_crl(&ca_name).await?;
            write(&out, &crl.der)?;
            println!("CRL {} of {ca_name} -> {}", crl.number, out.display());
            Ok(())
        }
        CaCommand::List { data, issuer, limit } => {
            let dir = DataDir::open(&data.data)?;
            let records = dir.store().await?.list(issuer.as_deref(), limit).await?;
            // A closed pipe (`| head`) ends the listing quietly.
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{:<34} {:<28} {:<24} {:<22} {:<36} subject", "serial", "issuer", "profile", "not after", "status");
            for r in records {
                let c = &r.certificate;
                let line = writeln!(
                    out,
                    "{:<34} {:<28} {:<24} {:<22} {:<36} {}",
                    c.serial.to_string(),
                    c.issuer,
                    c.profile,
                    date(c.not_after),
                    status_text(&r.status),
                    c.subject
                );
                if line.is_err() {
                    break;
                }
            }
            Ok(())
        }
    }
}
