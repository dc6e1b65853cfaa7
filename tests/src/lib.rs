//! Fixtures for Hawiya's tests: the real components `./scripts/test` provides (SoftHSM2,
//! PostgreSQL, OpenSSL, pkilint) and a [`Deployment`] of the real `hawiya` binary.
//!
//! A missing component is a test failure that says what to install, never a silent skip.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use hsm_shim::pkcs11::{Pin, initialize_token};

pub mod client_key;
pub mod metrics;
pub mod smart_id;
pub mod web;

pub use client_key::ClientKey;

/// The user PIN of every test token.
pub const PIN: &str = "1234";
/// The operator secret of every test soft key store.
pub const OPERATOR_SECRET: &str = "test operator secret, not for production";
/// The host name test certificates point at; curl and OpenSSL are told it is 127.0.0.1.
pub const HOST: &str = "pki.hawiya.jo";

fn random_suffix() -> String {
    let mut bytes = [0u8; 6];
    std::fs::File::open("/dev/urandom").and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes)).expect("urandom");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The SoftHSM2 module, after checking that `./scripts/test` set up a token directory.
pub fn softhsm_module() -> PathBuf {
    assert!(
        std::env::var_os("SOFTHSM2_CONF").is_some(),
        "SOFTHSM2_CONF is not set: run the tests through ./scripts/test (installs softhsm2 and makes a throw-away token directory)"
    );
    let module = std::env::var_os("HAWIYA_TEST_PKCS11_MODULE").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/usr/lib/softhsm/libsofthsm2.so"));
    assert!(module.exists(), "SoftHSM2 module {} not found: apt-get install softhsm2", module.display());
    module
}

/// A fresh token initialised from this process (visible to it even after C_Initialize).
pub fn fresh_token() -> (PathBuf, String) {
    let module = softhsm_module();
    let label = format!("t{}", random_suffix());
    initialize_token(&module, &label, &Pin::new("so-pin-5678".into()), &Pin::new(PIN.into())).expect("initialise a SoftHSM2 token");
    (module, label)
}

/// A fresh database on the throw-away PostgreSQL `./scripts/test` started; its URL. That
/// server is plaintext on loopback: the URL says `sslmode=disable`, which Hawiya requires to
/// connect without TLS (an older `HAWIYA_TEST_POSTGRES_URL` without it gets it added).
pub fn postgres_database() -> String {
    let admin = std::env::var("HAWIYA_TEST_POSTGRES_URL").unwrap_or_else(|_| {
        panic!("HAWIYA_TEST_POSTGRES_URL is not set: run the tests through ./scripts/test (installs postgresql and starts a throw-away server)")
    });
    let admin = if admin.contains("sslmode=") { admin } else { format!("{admin} sslmode=disable") };
    database_on(&admin)
}

/// A fresh database on the throw-away TLS-only PostgreSQL `./scripts/test` started; its
/// connection string (`sslmode=verify-full sslrootcert=…/ca.pem`, see [`other_ca`]).
pub fn postgres_tls_database() -> String {
    let admin = std::env::var("HAWIYA_TEST_POSTGRES_TLS_URL").unwrap_or_else(|_| {
        panic!("HAWIYA_TEST_POSTGRES_TLS_URL is not set: run the tests through ./scripts/test (starts a throw-away PostgreSQL speaking TLS only)")
    });
    database_on(&admin)
}

/// A fresh database on the PostgreSQL server `admin` (a libpq connection string of a
/// superuser); its connection string.
pub fn database_on(admin: &str) -> String {
    let name = format!("hawiya_{}", random_suffix());
    let out = Command::new("psql").args([admin, "-q", "-c", &format!("CREATE DATABASE {name}")]).output().expect("psql (apt-get install postgresql-client)");
    assert!(out.status.success(), "creating a database failed: {}", String::from_utf8_lossy(&out.stderr));
    format!("{admin} dbname={name}")
}

/// The throw-away Redis `./scripts/test` started; its URL.
pub fn redis_url() -> String {
    std::env::var("HAWIYA_TEST_REDIS_URL").unwrap_or_else(|_| {
        panic!("HAWIYA_TEST_REDIS_URL is not set: run the tests through ./scripts/test (installs redis-server and starts a throw-away one)")
    })
}

/// The throw-away TLS-only Redis `./scripts/test` started; its URL
/// (`rediss://127.0.0.1:port/?cacert=…/ca.pem`).
pub fn redis_tls_url() -> String {
    std::env::var("HAWIYA_TEST_REDIS_TLS_URL")
        .unwrap_or_else(|_| panic!("HAWIYA_TEST_REDIS_TLS_URL is not set: run the tests through ./scripts/test (starts a throw-away Redis speaking TLS only)"))
}

/// `url` trusting the CA that issued nothing, which `make_test_tls` (scripts/env.sh) writes
/// next to the one that issued the server's certificate.
pub fn other_ca(url: &str) -> String {
    assert!(url.contains("/ca.pem"), "the test TLS URL names no ca.pem: {url}");
    url.replace("/ca.pem", "/other-ca.pem")
}

/// A key prefix no other test uses.
pub fn unique_prefix() -> String {
    format!("test-{}:", random_suffix())
}

/// The `hawiya` binary that `./scripts/test` built (or the one next to this test).
pub fn hawiya_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("HAWIYA_BIN") {
        return PathBuf::from(bin);
    }
    let exe = std::env::current_exe().expect("current exe");
    let bin = exe.parent().and_then(Path::parent).expect("target dir").join("hawiya");
    assert!(bin.exists(), "{} not built: run ./scripts/test (it builds the workspace first)", bin.display());
    bin
}

/// An HTTP client whose requests for [`HOST`] go to the server on loopback `port` (as to an
/// HTTP proxy: the URL and the Host header stay the issuer's, as behind a load balancer);
/// other hosts are reached directly. reqwest's `resolve` cannot do this: a port in the URL
/// always wins over the resolved address's, so every replica would be the URL's.
pub fn client_to(port: u16) -> reqwest::Client {
    let replica = url::Url::parse(&format!("http://127.0.0.1:{port}")).expect("url");
    let proxy = reqwest::Proxy::custom(move |url| (url.host_str() == Some(HOST)).then(|| replica.clone()));
    idp::backchannel::client_builder().expect("builder").proxy(proxy).timeout(Duration::from_secs(30)).build().expect("client")
}

/// A free loopback port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// Runs a command and returns its output, failing the test if it cannot start.
pub fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// Runs `openssl` with `args` in `dir`.
pub fn openssl(dir: &Path, args: &[&str]) -> Output {
    run(Command::new("openssl").current_dir(dir).args(args))
}

/// Makes a key and a PKCS#10 request with OpenSSL (`newkey` as for `openssl req -newkey`).
pub fn csr(dir: &Path, name: &str, newkey: &[&str]) -> PathBuf {
    let key = format!("{name}.key");
    let csr = format!("{name}.csr");
    let mut args = vec!["req", "-new", "-nodes", "-subj", "/CN=ignored by the CA", "-keyout", &key, "-out", &csr];
    args.extend_from_slice(newkey);
    let out = openssl(dir, &args);
    assert!(out.status.success(), "openssl req: {}", String::from_utf8_lossy(&out.stderr));
    dir.join(csr)
}

/// P-256 key options for [`csr`].
pub const P256: &[&str] = &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"];

/// Runs a pkilint tool and returns its findings at WARNING or above (one per line).
pub fn pkilint(tool: &str, args: &[&str], file: &Path) -> Vec<String> {
    let out = run(Command::new(tool).arg("lint").args(args).args(["-s", "WARNING"]).arg(file));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.code().is_some() && !stderr.contains("Traceback"), "{tool} did not run (install pkilint: ./scripts/test does): {stderr}");
    // A usage error (an unknown certificate type, say) lints nothing: it must not pass as clean.
    assert!(out.status.code() != Some(2) && !stderr.contains("error: argument"), "{tool} refused its arguments {args:?}: {stderr}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("(WARNING)") || l.contains("(ERROR)") || l.contains("(FATAL)"))
        .map(str::to_owned)
        .collect()
}

/// Two fresh SoftHSM2 tokens standing in for a citizen's smart card, `smart-id-pin1` and
/// `smart-id-pin2` with user PINs `pin1` and `pin2`, in a token directory of their own under
/// `dir`; returns the SoftHSM2 configuration file that names them (for `SOFTHSM2_CONF`).
pub fn smart_card(dir: &Path, pin1: &str, pin2: &str) -> PathBuf {
    let tokens = dir.join("card/tokens");
    std::fs::create_dir_all(&tokens).expect("token dir");
    let conf = dir.join("card/softhsm2.conf");
    std::fs::write(&conf, format!("directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n", tokens.display())).expect("conf");
    for (label, pin) in [("smart-id-pin1", pin1), ("smart-id-pin2", pin2)] {
        let o = run(Command::new("softhsm2-util").env("SOFTHSM2_CONF", &conf).args([
            "--init-token",
            "--free",
            "--label",
            label,
            "--so-pin",
            "87654321",
            "--pin",
            pin,
        ]));
        assert!(o.status.success(), "softhsm2-util: {}", String::from_utf8_lossy(&o.stderr));
    }
    conf
}

/// Where keys go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keys {
    /// The soft key store.
    Soft,
    /// A SoftHSM2 token through PKCS#11.
    Pkcs11,
}

/// Where records go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Db {
    /// SQLite in the data directory.
    Sqlite,
    /// A fresh PostgreSQL database.
    Postgres,
    /// A fresh database on the TLS-only PostgreSQL, the server verified (`verify-full`).
    PostgresTls,
}

/// An initialised data directory and, once [`Deployment::serve`] is called, its server.
pub struct Deployment {
    pub dir: tempfile::TempDir,
    pub data: PathBuf,
    pub port: u16,
    pub base: String,
    env: Vec<(String, String)>,
    servers: Vec<Child>,
}

impl Deployment {
    /// Runs the default ceremony (country JO) on the chosen backends, with certificates
    /// pointing at `http://pki.hawiya.jo:<free port>`.
    pub fn new(keys: Keys, db: Db) -> Self {
        let url = match db {
            Db::Sqlite => None,
            Db::Postgres => Some(postgres_database()),
            Db::PostgresTls => Some(postgres_tls_database()),
        };
        Self::with_database(keys, url)
    }

    /// Like [`Deployment::new`], on the PostgreSQL database `url` (`None`: SQLite).
    pub fn with_database(keys: Keys, url: Option<String>) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let base = format!("http://{HOST}:{port}");
        let mut env = vec![("HAWIYA_OPERATOR_SECRET".to_owned(), OPERATOR_SECRET.to_owned())];
        let key_store = match keys {
            Keys::Soft => "[key_store]\nkind = \"soft\"\n".to_owned(),
            Keys::Pkcs11 => {
                let module = softhsm_module();
                // A token directory of its own: SoftHSM2's file store does not bear other
                // processes creating or opening tokens in the same directory meanwhile
                // (SoftHSMv2 issue 757).
                let tokens = dir.path().join("softhsm/tokens");
                std::fs::create_dir_all(&tokens).expect("token directory");
                let conf = dir.path().join("softhsm/softhsm2.conf");
                std::fs::write(&conf, format!("directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n", tokens.display()))
                    .expect("softhsm2.conf");
                let token = format!("t{}", random_suffix());
                let out = run(Command::new("softhsm2-util").env("SOFTHSM2_CONF", &conf).args([
                    "--init-token",
                    "--free",
                    "--label",
                    &token,
                    "--so-pin",
                    "5678",
                    "--pin",
                    PIN,
                ]));
                assert!(out.status.success(), "softhsm2-util: {}", String::from_utf8_lossy(&out.stderr));
                env.push(("SOFTHSM2_CONF".into(), conf.display().to_string()));
                env.push(("HAWIYA_PKCS11_PIN".into(), PIN.into()));
                format!("[key_store]\nkind = \"pkcs11\"\nmodule = \"{}\"\ntoken = \"{token}\"\n", module.display())
            }
        };
        let store = match url {
            None => "[store]\nkind = \"sqlite\"\n".to_owned(),
            Some(url) => {
                env.push(("HAWIYA_DATABASE_URL".into(), url));
                "[store]\nkind = \"postgres\"\n".to_owned()
            }
        };
        let default = include_str!("../../deploy/ceremony/default.toml");
        let ceremony = default.split("\n[key_store]").next().expect("ceremony part").to_owned();
        let config = format!("{ceremony}\n{key_store}\n{store}");
        std::fs::write(dir.path().join("ceremony.toml"), config).expect("write ceremony");
        let data = dir.path().join("data");
        let d = Deployment { data, port, base, env, servers: Vec::new(), dir };
        d.ok(&["ca", "init", "--config", d.path("ceremony.toml").to_str().expect("utf-8"), "--base-url", &d.base.clone()]);
        d.ok(&["ca", "certs", "--out", d.path("certs").to_str().expect("utf-8")]);
        d
    }

    /// A path in the test's directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A `hawiya` command with this deployment's environment; `--data` is added after the
    /// subcommand words for commands that take it.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(hawiya_bin());
        cmd.current_dir(self.dir.path()).envs(self.env.iter().map(|(k, v)| (k, v)));
        let words = args.iter().take_while(|a| !a.starts_with("--")).count();
        cmd.args(&args[..words]);
        if matches!(args.first(), Some(&"ca" | &"serve" | &"citizen" | &"client" | &"keys" | &"ra")) {
            cmd.arg("--data").arg(&self.data);
        }
        cmd.args(&args[words..]);
        cmd
    }

    /// POSTs the file `body` (a path in the test's directory) as `content_type` with curl;
    /// the status code and the body of the answer.
    pub fn post(&self, url: &str, content_type: &str, body: &str) -> (u16, Vec<u8>) {
        let resolve = format!("{HOST}:{}:127.0.0.1", self.port);
        let answer = self.path(&format!("answer-{}", random_suffix()));
        let out = run(Command::new("curl")
            .current_dir(self.dir.path())
            .args(["-s", "--data-binary", &format!("@{body}"), "-H", &format!("Content-Type: {content_type}"), "-o"])
            .arg(&answer)
            .args(["-w", "%{http_code}", "--resolve", &resolve, url]));
        assert!(out.status.success(), "curl {url}: {}", String::from_utf8_lossy(&out.stderr));
        let code = String::from_utf8_lossy(&out.stdout).trim().parse().expect("status code");
        (code, std::fs::read(&answer).unwrap_or_default())
    }

    /// Runs `hawiya` and returns its stdout; fails the test if it fails.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = run(&mut self.command(args));
        assert!(out.status.success(), "hawiya {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `hawiya` with `input` on standard input, expects success, and returns stdout.
    pub fn ok_with_input(&self, args: &[&str], input: &str) -> String {
        use std::io::Write;
        let mut child = self.command(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn hawiya");
        child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write stdin");
        let out = child.wait_with_output().expect("wait");
        assert!(out.status.success(), "hawiya {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `hawiya`, expects it to fail with exactly one line on stderr, and returns it.
    pub fn fails(&self, args: &[&str]) -> String {
        self.fails_with_input(args, "")
    }

    /// Like [`Deployment::fails`], with `input` on standard input.
    pub fn fails_with_input(&self, args: &[&str], input: &str) -> String {
        use std::io::Write;
        let mut child = self.command(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn hawiya");
        // A command refused before it reads its input closes the pipe: that is no failure here.
        let _ = child.stdin.take().expect("stdin").write_all(input.as_bytes());
        let out = child.wait_with_output().expect("wait");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success(), "hawiya {args:?} succeeded but should have failed");
        let lines: Vec<_> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "hawiya {args:?} must fail with one line, got: {stderr}");
        lines[0].to_owned()
    }

    /// Adds the citizen Sami Khalil (سامي خليل) with `national_id` and a password only.
    pub fn add_password_citizen(&self, national_id: &str, password: &str) {
        let args = [
            "citizen",
            "add",
            "--national-id",
            national_id,
            "--given-name-ar",
            "سامي",
            "--family-name-ar",
            "خليل",
            "--given-name-en",
            "Sami",
            "--family-name-en",
            "Khalil",
        ];
        self.ok_with_input(&args, &format!("{password}\n"));
    }

    /// A password-only citizen ([`Deployment::add_password_citizen`]) and the `civil-status`
    /// service (client_secret_basic, `redirect_uri`); its client secret.
    pub fn citizen_and_civil_status(&self, national_id: &str, password: &str, redirect_uri: &str) -> String {
        self.add_password_citizen(national_id, password);
        let out = self.ok(&["client", "add", "--id", "civil-status", "--redirect-uri", redirect_uri, "--auth-method", "client_secret_basic"]);
        out.lines().find_map(|l| l.strip_prefix("client_secret: ")).expect("secret printed").to_owned()
    }

    /// Everything the store holds that a command could change: every certificate and its
    /// status.
    pub fn snapshot(&self) -> String {
        self.ok(&["ca", "list", "--limit", "100000000"])
    }

    /// Issues a citizen certificate; returns (serial, certificate path).
    pub fn issue_citizen(&self, profile: &str, csr: &Path, out: &str) -> (String, PathBuf) {
        let out_path = self.path(out);
        let stdout = self.ok(&[
            "ca",
            "issue",
            "--profile",
            profile,
            "--csr",
            csr.to_str().expect("utf-8"),
            "--given-name",
            "Layla",
            "--surname",
            "Haddad",
            "--national-id",
            "9861234567",
            "--out",
            out_path.to_str().expect("utf-8"),
        ]);
        let serial = stdout.split_whitespace().nth(1).expect("serial in output").to_owned();
        (serial, out_path)
    }

    /// Kills every server of this deployment (SIGKILL) and waits for them to end.
    pub fn stop(&mut self) {
        for mut child in self.servers.drain(..) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts `hawiya serve` and waits until it answers.
    pub fn serve(&mut self) {
        let child = self.serve_on(self.port);
        self.servers.push(child);
    }

    /// Stops every server of this deployment and starts one again on its port (as an operator
    /// does after `hawiya keys renew-ca`); waits until it answers.
    pub fn restart(&mut self) {
        for mut child in self.servers.drain(..) {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.serve();
    }

    /// Starts another `hawiya serve` of the same data directory on `port` (a replica) and
    /// waits until it answers; it stops with the deployment.
    pub fn replica(&mut self, port: u16) {
        let child = self.serve_on(port);
        self.servers.push(child);
    }

    /// Kills every server of the deployment with SIGKILL (a crash: nothing is flushed or
    /// finished) and waits for them to be gone; [`Deployment::serve`] starts it again.
    pub fn kill_servers(&mut self) {
        for mut child in self.servers.drain(..) {
            child.kill().expect("SIGKILL");
            child.wait().expect("wait");
        }
    }

    /// Kills (SIGKILL, as a crash would) the `index`-th server started, in the order
    /// [`Deployment::serve`] and [`Deployment::replica`] were called, and waits for it to end.
    pub fn kill_server(&mut self, index: usize) {
        let child = &mut self.servers[index];
        child.kill().expect("kill -9 a hawiya serve");
        child.wait().expect("wait for the killed hawiya serve");
    }

    /// Whether the `index`-th server started is still running.
    pub fn server_running(&mut self, index: usize) -> bool {
        matches!(self.servers[index].try_wait(), Ok(None))
    }

    /// Starts `hawiya serve` with what it logs (stderr) going to the file `log`, and waits
    /// until it answers.
    pub fn serve_logging_to(&mut self, log: &Path) {
        let file = std::fs::File::create(log).expect("log file");
        let child = self.serve_with(self.port, Stdio::from(file));
        self.servers.push(child);
    }

    fn serve_on(&self, port: u16) -> Child {
        self.serve_with(port, Stdio::null())
    }

    fn serve_with(&self, port: u16, stderr: Stdio) -> Child {
        let listen = format!("127.0.0.1:{port}");
        let child = self.command(&["serve", "--listen", &listen]).stdout(Stdio::null()).stderr(stderr).spawn().expect("spawn hawiya serve");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&listen).is_err() {
            assert!(Instant::now() < deadline, "hawiya serve did not start listening on {listen}");
            std::thread::sleep(Duration::from_millis(50));
        }
        child
    }

    /// Serves with a copy of the shipped policies (in the test's directory) to which the
    /// service policy files `services` (file name, text) are added: call before serving.
    pub fn add_services(&self, services: &[(&str, &str)]) {
        let dir = self.path("policies");
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
        let out = run(Command::new("cp").arg("-r").arg(&repo).arg(&dir));
        assert!(out.status.success(), "cp policies: {}", output_text(&out));
        for (file, text) in services {
            std::fs::write(dir.join("services").join(file), text).expect("write a service policy");
        }
        let config = self.data.join("hawiya.toml");
        let text = std::fs::read_to_string(&config).expect("config");
        let text = text.replacen("version = 1\n", &format!("version = 1\npolicies = {:?}\n", dir.display().to_string()), 1);
        std::fs::write(&config, text).expect("config");
    }

    /// Sets an environment variable for every later `hawiya` command of this deployment.
    pub fn set_env(&mut self, name: &str, value: &str) {
        self.env.push((name.to_owned(), value.to_owned()));
    }

    /// The value this deployment's commands get for the environment variable `name` (the
    /// last one set).
    pub fn env(&self, name: &str) -> Option<String> {
        self.env.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    /// What `openssl ocsp` hears from this deployment's responder about the certificate
    /// file `cert` (a path in the test's directory) issued by the Citizen Signing CA, with a
    /// nonce, the response checked against the root, `extra` arguments added; its stdout
    /// and stderr.
    pub fn ocsp(&self, cert: &str, extra: &[&str]) -> String {
        let certs = self.path("certs");
        let (issuer, root) = (certs.join("citizen-signing-ca.pem"), certs.join("root.pem"));
        let (url, host) = (format!("http://127.0.0.1:{}/ocsp", self.port), format!("Host={HOST}:{}", self.port));
        let mut args = vec!["ocsp", "-issuer", issuer.to_str().expect("utf-8"), "-cert", cert, "-url", &url, "-header", &host];
        args.extend(["-CAfile", root.to_str().expect("utf-8"), "-nonce"]);
        args.extend(extra);
        output_text(&openssl(self.dir.path(), &args))
    }

    /// Fetches a URL of this deployment (as written in certificates) with curl; the
    /// status code and body.
    pub fn fetch(&self, url: &str) -> (u16, Vec<u8>) {
        let resolve = format!("{HOST}:{}:127.0.0.1", self.port);
        let body = self.path(&format!("fetch-{}", random_suffix()));
        let out = run(Command::new("curl").args(["-s", "-o"]).arg(&body).args(["-w", "%{http_code}", "--resolve", &resolve, url]));
        assert!(out.status.success(), "curl {url}: {}", String::from_utf8_lossy(&out.stderr));
        let code = String::from_utf8_lossy(&out.stdout).trim().parse().expect("status code");
        (code, std::fs::read(&body).unwrap_or_default())
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A one-page PDF with "Hawiya" in Helvetica, a classic xref table, its offsets computed.
pub fn sample_pdf() -> Vec<u8> {
    let content = b"BT /F1 24 Tf 40 40 Td (Hawiya) Tj ET";
    let objects: Vec<Vec<u8>> = vec![
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_vec(),
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 100] /Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>".to_vec(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_vec(),
        [format!("<< /Length {} >>\nstream\n", content.len()).as_bytes(), content, b"\nendstream"].concat(),
    ];
    esign::pdf::write_document(&objects)
}

/// pdfsig's report with an NSS database that trusts the national root only.
pub fn pdfsig(d: &Deployment, path: &Path) -> String {
    let db = d.path("nss");
    if !db.exists() {
        std::fs::create_dir(&db).unwrap();
        let out = run(Command::new("certutil").args(["-N", "--empty-password", "-d"]).arg(&db));
        assert!(out.status.success(), "certutil -N ({}): install libnss3-tools", output_text(&out));
        let out = run(Command::new("certutil").args(["-A", "-n", "Hawiya Root", "-t", "CT,C,C", "-i"]).arg(d.path("certs/root.pem")).arg("-d").arg(&db));
        assert!(out.status.success(), "certutil -A: {}", output_text(&out));
    }
    let out = run(Command::new("pdfsig").arg("-nssdir").arg(&db).arg("-no-ocsp").arg(path));
    output_text(&out)
}

/// Standard output and error of a finished command, together.
pub fn output_text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// Checks responses recorded by a test (`{method, path, status, content_type, body}`, or
/// `{schema, body}` for a value of a named component schema) against the OpenAPI document
/// `spec` (a path from the repository root, e.g. `idp/openapi/esign-v1.yaml`), with
/// `tests/openapi/check_responses.py` (jsonschema and PyYAML, from scripts/env.sh).
pub fn check_against_openapi(spec: &str, recorded: &[serde_json::Value], dir: &Path) {
    let file = dir.join(format!("responses-{}.json", random_suffix()));
    std::fs::write(&file, serde_json::Value::Array(recorded.to_vec()).to_string()).expect("write the recorded responses");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = run(Command::new("python3").arg(root.join("tests/openapi/check_responses.py")).arg(root.join(spec)).arg(&file));
    let text = output_text(&out);
    assert!(!text.contains("No module named"), "jsonschema or PyYAML missing: run scripts/env.sh (ensure_test_dependencies): {text}");
    assert!(out.status.success(), "responses that drift from {spec}:\n{text}");
}

/// `hawiya verify --format json` on `signed` (with its `detached` content), the deployment's
/// own hierarchy trusted: the exit status and the JSON report.
pub fn hawiya_verify(d: &Deployment, signed: &Path, detached: Option<&Path>, extra: &[&str]) -> (i32, serde_json::Value) {
    let mut command = d.command(&["verify"]);
    command.arg(signed).arg("--data").arg(&d.data).args(["--format", "json"]).args(extra);
    if let Some(content) = detached {
        command.arg("--detached").arg(content);
    }
    let out = command.output().expect("hawiya verify");
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("hawiya verify's report ({e}): {}", output_text(&out)));
    (out.status.code().unwrap_or(-1), report)
}

/// One line per signature of a `hawiya verify` report: `<indication> <sub-indication or -> <format> <qualification>`.
pub fn verdicts(report: &serde_json::Value) -> String {
    let field = |s: &serde_json::Value, k: &str| s[k].as_str().unwrap_or("-").to_owned();
    report["signatures"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| format!("{} {} {} {}\n", field(s, "indication"), field(s, "sub_indication"), field(s, "format"), field(s, "qualification")))
        .collect()
}

/// The EU's reference AdES validator, DSS, as `scripts/env.sh` (`ensure_test_dependencies`)
/// builds it from `tests/dss`.
pub fn dss_jar() -> PathBuf {
    let jar = Path::new(env!("CARGO_MANIFEST_DIR")).join("dss/target/hawiya-dss.jar");
    assert!(jar.exists(), "{} is missing: run scripts/env.sh (ensure_test_dependencies) to build it (mvn -f tests/dss/pom.xml package)", jar.display());
    jar
}

/// DSS's verdict on `signed` (a PDF, or a `.p7s` with its `detached` content): one line per
/// signature, `<indication> <sub-indication or -> <format>` (`TOTAL_PASSED -
/// PAdES-BASELINE-LT`), with the national root (`certs/root.pem`) the only trust anchor, DSS's
/// default validation policy and nothing fetched: only the evidence the file embeds counts.
/// DSS's errors, warnings and timestamp verdicts go to the test's stderr (shown when it
/// fails), its XML reports to `dss-<file name>/` in the deployment's directory.
pub fn dss(d: &Deployment, signed: &Path, detached: Option<&Path>) -> String {
    let reports = d.path(&format!("dss-{}", signed.file_name().expect("a file").to_string_lossy()));
    let run = dss_with_trust(&d.path("certs/root.pem"), &reports, signed, detached);
    eprintln!("DSS on {}:\n{}", signed.display(), run.log);
    run.verdict
}

/// What [`dss_with_trust`] printed.
pub struct DssRun {
    /// One line per signature, `<indication> <sub-indication or -> <format>`; for a file with
    /// no signature but timestamps (a detached RFC 3161 token), one `<indication>
    /// <sub-indication or -> TIMESTAMP` line per timestamp; empty when DSS found neither.
    pub verdict: String,
    /// DSS's errors and warnings (with their message keys, `[BBB_FC_DSCNUOM_ANS]`) and its
    /// timestamps' verdicts.
    pub log: String,
}

/// DSS on `signed` (with its `detached` content, if any) with `trust` (PEM or DER) the only
/// trust anchor, DSS's default validation policy and nothing fetched; its XML reports go to
/// `reports`. Panics if DSS itself fails (not if it judges the signature bad).
pub fn dss_with_trust(trust: &Path, reports: &Path, signed: &Path, detached: Option<&Path>) -> DssRun {
    let mut command = Command::new("java");
    command.arg("-jar").arg(dss_jar()).arg("--trust").arg(trust).arg("--reports").arg(reports);
    if let Some(content) = detached {
        command.arg("--detached-content").arg(content);
    }
    let out = command.arg(signed).output().expect("java (apt-get install default-jre-headless; scripts/env.sh installs it)");
    assert!(out.status.success(), "DSS failed on {}: {}", signed.display(), output_text(&out));
    DssRun { verdict: String::from_utf8_lossy(&out.stdout).into_owned(), log: String::from_utf8_lossy(&out.stderr).into_owned() }
}

/// A tool of the Python environment `scripts/env.sh` (`ensure_test_dependencies`) makes,
/// where pyHanko lives: `$HAWIYA_VENV/bin/<name>`, by default under `~/.cache/hawiya/venv`.
pub fn venv_tool(name: &str) -> PathBuf {
    let venv = match std::env::var_os("HAWIYA_VENV") {
        Some(venv) => PathBuf::from(venv),
        None => Path::new(&std::env::var("HOME").expect("HOME is set")).join(".cache/hawiya/venv"),
    };
    let path = venv.join("bin").join(name);
    assert!(path.exists(), "{} is missing: run scripts/env.sh (ensure_test_dependencies) to install pyHanko", path.display());
    path
}
