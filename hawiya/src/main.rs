//! `hawiya`: the one binary of Hawiya — the command line of operators and registration
//! officers, and the server that wires the CA's and the OpenID Connect provider's endpoints
//! into one axum app.
//!
//! Errors end the command with one line on stderr and a non-zero exit code.

mod audit;
mod backup;
mod ca_cmd;
mod config;
#[cfg(feature = "demo")]
mod demo;
#[cfg(feature = "demo")]
mod device;
mod enrolment;
mod health;
mod idp_cmd;
mod logging;
mod registration;
mod server;
mod signing;
mod verify;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc instead of glibc's allocator: the server allocates many small, short-lived
/// buffers per request on every worker thread, and glibc spent a sixth of the token
/// endpoint's CPU time in malloc and free (BENCHMARKS.md). Built without transparent huge
/// pages (`no_thp`): with them, each megabyte-sized buffer of a signing request (the
/// document, the signed file) faulted in fresh 2 MiB pages that the kernel zeroed, 30 % of
/// the server's CPU when agencies sign 1 MB PDFs (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Hawiya: national identity, PKI and single sign-on.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs everything on embedded defaults: creates the data directory (SQLite, soft key
    /// store, the default CA hierarchy, demo citizens and e-services) on first start, then
    /// serves it. Not in production builds (`--no-default-features`).
    #[cfg(feature = "demo")]
    Demo {
        /// The data directory.
        #[arg(long, default_value = "hawiya-data")]
        data: PathBuf,
        /// Where to listen (also the base URL in certificates on first start).
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Where to serve `/metrics` (Prometheus) for operators; not served by default.
        #[arg(long, env = "HAWIYA_METRICS_LISTEN")]
        metrics: Option<SocketAddr>,
    },
    /// Serves the public endpoints of an initialised data directory.
    Serve {
        /// The data directory.
        #[arg(long)]
        data: PathBuf,
        /// Where to listen.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Where to serve `/metrics` (Prometheus) for operators, apart from the public
        /// endpoints; not served by default.
        #[arg(long, env = "HAWIYA_METRICS_LISTEN")]
        metrics: Option<SocketAddr>,
        /// The OpenID Connect issuer, https:// in production (default: `issuer` in
        /// hawiya.toml, else the PKI publication base the certificates point at).
        #[arg(long, env = "HAWIYA_ISSUER")]
        issuer: Option<config::Issuer>,
    },
    /// The certificate authority.
    #[command(subcommand)]
    Ca(ca_cmd::CaCommand),
    /// Citizens (registration officers).
    #[command(subcommand)]
    Citizen(idp_cmd::CitizenCommand),
    /// Relying parties (e-services).
    #[command(subcommand)]
    Client(idp_cmd::ClientCommand),
    /// Key rollover: the provider's signing keys, the issuing CAs' renewal.
    #[command(subcommand)]
    Keys(idp_cmd::KeysCommand),
    /// Policy files.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Verifies a signed document (PAdES, CAdES, an RFC 3161 token) under a validation
    /// policy: exit status 0 TOTAL-PASSED, 1 TOTAL-FAILED, 2 INDETERMINATE, 3 a usage error.
    Verify(verify::VerifyArgs),
    /// The registration authority's API credentials.
    #[command(subcommand)]
    Ra(RaCommand),
    /// The audit log: verify its chain, export it.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Copies a data directory, while servers run, into a new directory with a manifest:
    /// the SQLite database as one moment saw it, the configuration and the soft key store's
    /// sealed files, never the operator secret.
    Backup {
        /// The data directory.
        #[arg(long)]
        data: PathBuf,
        /// The backup directory (new or empty, outside the data directory).
        #[arg(long)]
        out: PathBuf,
    },
    /// Restores a backup into a new or empty data directory, every file checked against the
    /// manifest first, then the store opened and its audit chain verified.
    Restore {
        /// The backup directory.
        #[arg(long)]
        from: PathBuf,
        /// The new data directory.
        #[arg(long)]
        data: PathBuf,
    },
    /// The reference smart-ID device: keys, certificates and approvals on this machine. Not
    /// in production builds (`--no-default-features`).
    #[cfg(feature = "demo")]
    #[command(subcommand)]
    Device(device::DeviceCommand),
}

#[derive(Subcommand)]
enum RaCommand {
    /// Adds a registration officer who may call the RA API; prints their token once.
    AddOfficer {
        /// The data directory.
        #[arg(long)]
        data: PathBuf,
        /// The officer's name (in the audit trail): 1 to 64 characters.
        #[arg(long)]
        name: config::OfficerName,
    },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Checks a policy directory (default: the shipped policies) and prints every problem.
    Check {
        /// The directory holding assurance.toml, methods.toml, tsa.toml, profiles/ and services/.
        dir: Option<PathBuf>,
    },
}

/// Parses the command line. A value that its type refuses (a national id, a birthdate, …)
/// ends the command with one line naming the option and the reason, like every other
/// refusal; other mistakes get clap's usage help.
fn parse_command_line() -> Result<Cli, ExitCode> {
    Cli::try_parse().map_err(|e| {
        // `hawiya verify` keeps 0 to 2 for its verdicts: its usage errors are 3.
        let usage = if std::env::args().nth(1).as_deref() == Some("verify") { 3 } else { 2 };
        if e.kind() == clap::error::ErrorKind::ValueValidation {
            let option = match e.get(clap::error::ContextKind::InvalidArg) {
                Some(clap::error::ContextValue::String(arg)) => arg.split(' ').next().unwrap_or_default().to_owned(),
                _ => String::new(),
            };
            if let Some(reason) = std::error::Error::source(&e) {
                eprintln!("error: {option}: {reason}");
                return ExitCode::from(usage);
            }
        }
        let _ = e.print();
        match e.exit_code() {
            0 => ExitCode::SUCCESS,
            _ => ExitCode::from(usage),
        }
    })
}

fn main() -> ExitCode {
    let cli = match parse_command_line() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    // The server logs at info (to a collector, in production); interactive commands, the demo
    // among them, only warn, so that what they print is not lost among log lines.
    let default_level = if matches!(cli.command, Command::Serve { .. }) { "info" } else { "warn" };
    match logging::LogFormat::from_env() {
        Ok(format) => logging::install(format, default_level),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Command::Verify(args) = cli.command {
        return match runtime.block_on(verify::run(args)) {
            Ok(code) => ExitCode::from(code),
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(3)
            }
        };
    }
    let result = runtime.block_on(async {
        let result = match cli.command {
            #[cfg(feature = "demo")]
            Command::Demo { data, listen, metrics } => demo::run(&data, listen, metrics).await,
            Command::Serve { data, listen, metrics, issuer } => server::serve(&data, listen, metrics, issuer).await,
            Command::Ca(command) => ca_cmd::run(command).await,
            Command::Citizen(command) => idp_cmd::citizen(command).await,
            Command::Client(command) => idp_cmd::client(command).await,
            Command::Keys(command) => idp_cmd::keys(command).await,
            Command::Policy(PolicyCommand::Check { dir }) => policy_check(dir).await,
            Command::Verify(_) => Ok(()),
            Command::Audit(command) => audit::run(command).await,
            Command::Backup { data, out } => backup::backup(&data, &out).await,
            Command::Restore { from, data } => backup::restore(&from, &data).await,
            Command::Ra(RaCommand::AddOfficer { data, name }) => {
                add_officer(&data, &name).await.map(|token| println!("RA token for {name} (shown once): {token}"))
            }
            #[cfg(feature = "demo")]
            Command::Device(command) => device::run(command).await,
        };
        logging::flush_audit().await;
        result
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Adds a registration officer to a data directory's configuration; returns their token.
pub(crate) async fn add_officer(data: &std::path::Path, name: &config::OfficerName) -> Result<String, Box<dyn std::error::Error>> {
    let mut dir = config::DataDir::open(data)?;
    if dir.config.ra_officers.iter().any(|o| o.name == *name) {
        return Err(format!("an officer named {name:?} exists already", name = name.as_str()).into());
    }
    // Opened first (it starts this command's audit recorder): no officer without its entry.
    dir.store().await?;
    let token = idp::provider::random_token()?;
    dir.config.ra_officers.push(config::RaOfficer { name: name.clone(), token_sha256: config::TokenSha256::of(&token) });
    dir.update()?;
    tracing::info!(target: "audit", event = "ra.officer_added", officer = name.as_str(), "registration officer added");
    Ok(token)
}

/// Errors of commands: already one line, fit for the terminal.
pub(crate) type CommandResult = Result<(), Box<dyn std::error::Error>>;

async fn policy_check(dir: Option<PathBuf>) -> CommandResult {
    let loaded = match &dir {
        Some(d) => policies::Policies::load(d),
        None => policies::Policies::shipped(),
    };
    match loaded {
        Ok(p) => {
            // Clients declared in service files must be usable registrations, their sector
            // identifiers listing their redirect URIs.
            let http = idp::backchannel::http_client()?;
            let mut problems: Vec<String> = p
                .services()
                .iter()
                .filter(|s| s.client_id == idp::provider::ACCOUNT_CLIENT)
                .map(|s| format!("a service file uses client id {}, which is the provider's own client (the citizens' account page)", s.client_id))
                .collect();
            for declared in p.services().iter().filter_map(|s| idp::clients::Client::declared(s, &p)) {
                match declared {
                    Ok(c) => {
                        if let Err(e) = idp::clients::check_sector_identifier(&http, &c.registration).await {
                            problems.push(format!("client {}: {e}", c.id));
                        }
                    }
                    Err(e) => problems.push(e.to_string()),
                }
            }
            if !problems.is_empty() {
                return Err(problems.join("\n").into());
            }
            println!(
                "ok: {} levels, {} methods, {} certificate profiles, {} e-services, {} validation policies (default {}), a trust list of {} authorities{}",
                p.levels().len(),
                p.methods().len(),
                p.profiles().count(),
                p.services().len(),
                p.validation_policies().len(),
                p.default_validation_policy().id,
                p.trust_list().authorities.len(),
                if p.trust_list().own_hierarchy { " and this deployment's own hierarchy" } else { "" }
            );
            Ok(())
        }
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("{e}");
            }
            Err(format!("{} problem(s) in the policy files", errors.0.len()).into())
        }
    }
}
