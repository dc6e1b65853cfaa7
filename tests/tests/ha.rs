//! High availability, tested by killing things (issue 12, section 3), with real processes
//! on loopback: a PostgreSQL primary with a synchronous streaming-replication standby, two
//! `hawiya serve` replicas sharing it and Redis, a steady load; then `kill -9`.
// Test code: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hawiya_e2e::web::{Browser, param};
use hawiya_e2e::{Db, Deployment, Keys, P256, client_to, csr, free_port, openssl, redis_url, run, unique_prefix};
use serde_json::Value;

const CITIZEN: &str = "9861234568";
const PASSWORD: &str = "correct horse battery 2026";
const CB: &str = "https://rp.example.jo/cb";
/// `tryLater` (RFC 6960 4.2.1): the whole OCSPResponse, without responseBytes.
const OCSP_TRY_LATER: &[u8] = &[0x30, 0x03, 0x0a, 0x01, 0x03];

/// A PostgreSQL primary and a synchronous streaming-replication standby (`pg_basebackup
/// -R`), each on a free loopback port, in a directory of their own.
struct Cluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    primary: u16,
    standby: u16,
}

/// A PostgreSQL tool, run as the `postgres` user when the tests run as root (the server
/// refuses to run as root).
fn pg_tool(bin: &Path, tool: &str) -> Command {
    let path = bin.join(tool);
    if run(Command::new("id").arg("-u")).stdout.trim_ascii() == b"0" {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(path);
        cmd
    } else {
        Command::new(path)
    }
}

fn must(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(out.status.success(), "{cmd:?}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn append(file: &Path, text: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().append(true).open(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    f.write_all(text.as_bytes()).expect("append to the PostgreSQL configuration");
}

impl Cluster {
    fn start() -> Self {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL server binaries (apt-get install postgresql)")
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|b| b.join("initdb").exists())
            .max_by_key(|b| b.parent().and_then(|v| v.file_name()).and_then(|v| v.to_str()).and_then(|v| v.parse::<u32>().ok()))
            .expect("an initdb under /usr/lib/postgresql/*/bin");
        let dir = tempfile::tempdir().expect("tempdir");
        if run(Command::new("id").arg("-u")).stdout.trim_ascii() == b"0" {
            must(Command::new("chown").arg("postgres:").arg(dir.path()));
        }
        let (primary, standby) = (free_port(), free_port());
        let c = Cluster { bin, primary, standby, dir };
        let (p, s) = (c.data("primary"), c.data("standby"));
        must(pg_tool(&c.bin, "initdb").arg("-D").arg(&p).args(["-U", "postgres", "-A", "trust", "--no-sync"]));
        // Synchronous replication: a commit is acknowledged once the standby has it.
        append(
            &p.join("postgresql.conf"),
            &format!(
                "\nlisten_addresses = '127.0.0.1'\nport = {primary}\nunix_socket_directories = '{}'\nsynchronous_commit = on\nsynchronous_standby_names = 'standby1'\nmax_connections = 100\n",
                c.dir.path().display()
            ),
        );
        must(pg_tool(&c.bin, "pg_ctl").arg("-D").arg(&p).arg("-l").arg(c.dir.path().join("primary.log")).args(["-w", "start"]));
        must(
            pg_tool(&c.bin, "pg_basebackup")
                .args(["-h", "127.0.0.1", "-p", &primary.to_string(), "-U", "postgres", "-R", "-X", "stream", "-c", "fast", "-D"])
                .arg(&s),
        );
        // The standby alone after its promotion: it waits for no standby of its own.
        append(&s.join("postgresql.conf"), &format!("\nport = {standby}\nsynchronous_standby_names = ''\n"));
        append(&s.join("postgresql.auto.conf"), &format!("\nprimary_conninfo = 'host=127.0.0.1 port={primary} user=postgres application_name=standby1'\n"));
        must(pg_tool(&c.bin, "pg_ctl").arg("-D").arg(&s).arg("-l").arg(c.dir.path().join("standby.log")).args(["-w", "start"]));
        let deadline = Instant::now() + Duration::from_secs(30);
        while c.psql(primary, "SELECT sync_state FROM pg_stat_replication WHERE application_name = 'standby1'").trim() != "sync" {
            assert!(Instant::now() < deadline, "the standby did not become synchronous");
            std::thread::sleep(Duration::from_millis(100));
        }
        c.psql(primary, "CREATE DATABASE hawiya");
        c
    }

    fn data(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn psql(&self, port: u16, sql: &str) -> String {
        self.psql_in(port, "postgres", sql)
    }

    fn psql_in(&self, port: u16, db: &str, sql: &str) -> String {
        must(pg_tool(&self.bin, "psql").args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres", "-d", db, "-At", "-c", sql]))
    }

    /// Both servers, the one accepting writes chosen by libpq's rule.
    fn url(&self) -> String {
        format!(
            "host=127.0.0.1,127.0.0.1 port={},{} user=postgres dbname=hawiya sslmode=disable target_session_attrs=read-write connect_timeout=2",
            self.primary, self.standby
        )
    }

    /// `kill -9` of the primary's postmaster and of every process it started, as if its
    /// machine had died.
    fn kill_primary(&self) {
        let pid_file = std::fs::read_to_string(self.data("primary").join("postmaster.pid")).expect("postmaster.pid");
        let pid = pid_file.lines().next().expect("the postmaster's pid").trim().to_owned();
        let children = must(Command::new("ps").args(["-o", "pid=", "--ppid", &pid]));
        must(Command::new("kill").args(["-9", &pid]));
        for child in children.split_whitespace() {
            // Gone already if the postmaster's death reached it first.
            let _ = run(Command::new("kill").args(["-9", child]));
        }
    }

    fn promote_standby(&self) {
        must(pg_tool(&self.bin, "pg_ctl").arg("-D").arg(self.data("standby")).args(["-w", "promote"]));
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for name in ["primary", "standby"] {
            let _ = run(pg_tool(&self.bin, "pg_ctl").arg("-D").arg(self.data(name)).args(["-m", "immediate", "stop"]));
        }
    }
}

fn authorize_url(issuer: &str) -> String {
    let mut url = url::Url::parse(&format!("{issuer}/authorize")).expect("url");
    url.query_pairs_mut()
        .append_pair("client_id", "civil-status")
        .append_pair("redirect_uri", CB)
        .append_pair("response_type", "code")
        .append_pair("scope", "openid profile")
        .append_pair("state", "st-1")
        .append_pair("nonce", "n-1");
    url.into()
}

/// Logs the citizen in through `http` and exchanges the code: the tokens.
async fn log_in(http: reqwest::Client, issuer: &str, secret: &str) -> Value {
    let mut b = Browser::new(http.clone(), issuer);
    let location = b.login(&authorize_url(issuer), CITIZEN, PASSWORD).await;
    let code = param(&location, "code").unwrap_or_else(|| panic!("no code in {location}"));
    let r = http
        .post(format!("{issuer}/token"))
        .basic_auth("civil-status", Some(secret))
        .form(&[("grant_type", "authorization_code"), ("code", code.as_str()), ("redirect_uri", CB)])
        .send()
        .await
        .expect("token");
    assert_eq!(r.status(), 200);
    r.json().await.expect("tokens")
}

/// What a load saw: answers that did their work, clean refusals for the outage (503,
/// `Retry-After`, the protocol's "try later"), and anything else.
#[derive(Default)]
struct Tally {
    ok: u64,
    unavailable: u64,
    wrong: Vec<String>,
    /// When the last answer that did its work came.
    last_ok: Option<Instant>,
}

impl Tally {
    fn summary(&self) -> String {
        format!("{} done (the last {:?} ago), {} clean 503s, other answers: {:?}", self.ok, self.last_ok.map(|at| at.elapsed()), self.unavailable, self.wrong)
    }

    fn ok(&mut self) {
        self.ok += 1;
        self.last_ok = Some(Instant::now());
    }
}

/// Whether `r` is the clean refusal of a request met by the outage: 503 with `Retry-After`.
fn is_503(r: &reqwest::Response) -> bool {
    r.status() == 503 && r.headers().get("retry-after").is_some()
}

/// How a refresh chain ended.
struct Chain {
    /// The last refresh token acknowledged (received in a 200).
    acknowledged: String,
    /// Whether the chain ended because a rotation the outage left unacknowledged had been
    /// committed: the token retried after a 503 was found used, and reuse detection
    /// revoked the family.
    in_doubt_rotation: bool,
}

/// The family and generation a refresh token names (`family.generation.mac`).
fn family_and_generation(token: &str) -> (String, i64) {
    let mut parts = token.split('.');
    let family = parts.next().expect("family").to_owned();
    (family, parts.next().expect("generation").parse().expect("a number"))
}

/// Refreshes over and over through `http`, each rotation's new token replacing the old one
/// once the answer is received (acknowledged); a 503 is retried with the same token, as a
/// client does.
async fn refresh_chain(http: &reqwest::Client, issuer: &str, secret: &str, mut token: String, stop: &AtomicBool, tally: &Mutex<Tally>) -> Chain {
    let mut after_503 = false;
    while !stop.load(Ordering::Relaxed) {
        let form = [("grant_type", "refresh_token"), ("refresh_token", token.as_str())];
        let sent = http.post(format!("{issuer}/token")).basic_auth("civil-status", Some(secret)).form(&form).send().await;
        match sent {
            Ok(r) if r.status() == 200 => {
                let body: Value = r.json().await.expect("tokens");
                token = body["refresh_token"].as_str().expect("a rotated refresh token").to_owned();
                tally.lock().unwrap().ok();
                after_503 = false;
            }
            Ok(r) if is_503(&r) => {
                let body: Value = r.json().await.unwrap_or(Value::Null);
                let mut t = tally.lock().unwrap();
                if body["error"] == "temporarily_unavailable" {
                    t.unavailable += 1
                } else {
                    t.wrong.push(format!("refresh: 503 with {body}"))
                }
                after_503 = true;
            }
            Ok(r) => {
                let status = r.status();
                let body: Value = r.json().await.unwrap_or(Value::Null);
                if after_503 && status == 400 && body["error_description"].as_str().is_some_and(|d| d.contains("already used")) {
                    return Chain { acknowledged: token, in_doubt_rotation: true };
                }
                tally.lock().unwrap().wrong.push(format!("refresh: {status} {body}"));
            }
            Err(e) => tally.lock().unwrap().wrong.push(format!("refresh: {e}")),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Chain { acknowledged: token, in_doubt_rotation: false }
}

/// Asks OCSP about one certificate over and over through `http`.
async fn ocsp_load(http: &reqwest::Client, issuer: &str, request: &[u8], stop: &AtomicBool, tally: &Mutex<Tally>) {
    while !stop.load(Ordering::Relaxed) {
        let sent = http.post(format!("{issuer}/ocsp")).header("content-type", "application/ocsp-request").body(request.to_vec()).send().await;
        match sent {
            Ok(r) if r.status() == 200 => {
                let body = r.bytes().await.expect("body");
                // OCSPResponse { responseStatus successful (0), responseBytes }.
                if body.len() > 100 && body.windows(3).take(8).any(|w| w == [0x0a, 0x01, 0x00]) {
                    tally.lock().unwrap().ok();
                } else {
                    tally.lock().unwrap().wrong.push(format!("OCSP: 200 with {body:02x?}"));
                }
            }
            Ok(r) if is_503(&r) => {
                let body = r.bytes().await.expect("body");
                let mut t = tally.lock().unwrap();
                if body.as_ref() == OCSP_TRY_LATER { t.unavailable += 1 } else { t.wrong.push(format!("OCSP: 503 with {body:02x?}")) }
            }
            Ok(r) => tally.lock().unwrap().wrong.push(format!("OCSP: {}", r.status())),
            Err(e) => tally.lock().unwrap().wrong.push(format!("OCSP: {e}")),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A certificate `hawiya ca issue` acknowledged: its serial, file, and when.
struct Issued {
    serial: String,
    file: PathBuf,
    at: Instant,
}

/// Issues certificates with `hawiya ca issue` (its own connection, the same multi-host
/// string) over and over; those it acknowledged (exit 0), and the errors of the others.
async fn issuance_load(d: &Deployment, csr: &Path, stop: &AtomicBool) -> (Vec<Issued>, Vec<String>) {
    let (mut issued, mut refused) = (Vec::new(), Vec::new());
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let out = d.path(&format!("issued-{n}.pem"));
        let mut cmd = d.command(&[
            "ca",
            "issue",
            "--profile",
            "citizen-signature",
            "--csr",
            csr.to_str().expect("utf-8"),
            "--given-name",
            "Sami",
            "--surname",
            "Khalil",
            "--national-id",
            CITIZEN,
            "--out",
            out.to_str().expect("utf-8"),
        ]);
        cmd.stdin(std::process::Stdio::null());
        let output = tokio::process::Command::from(cmd).output().await.expect("hawiya ca issue");
        if output.status.success() {
            let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
            issued.push(Issued { serial: stdout.split_whitespace().nth(1).expect("serial in output").to_owned(), file: out, at: Instant::now() });
        } else {
            refused.push(String::from_utf8_lossy(&output.stderr).trim().to_owned());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    (issued, refused)
}

/// kill -9 the PostgreSQL primary under load and promote the synchronous standby: both
/// replicas answer again within seconds without a restart, everything acknowledged before
/// the kill is there, and in between every answer is a clean 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_primary_killed_under_load_fails_over_to_the_standby() {
    let cluster = Cluster::start();
    let mut d = Deployment::with_database(Keys::Soft, Some(cluster.url()));
    let secret = d.citizen_and_civil_status(CITIZEN, PASSWORD, CB);
    d.set_env("HAWIYA_REDIS_URL", &redis_url());
    d.set_env("HAWIYA_REDIS_PREFIX", &unique_prefix());
    // Checkpoints every second: the chain verified at the end is signed up to the outage.
    d.set_env("HAWIYA_AUDIT_CHECKPOINT", "1,50");
    let second = free_port();
    d.serve();
    d.replica(second);
    let issuer = d.base.clone();
    let (a, b) = (client_to(d.port), client_to(second));

    let csr = csr(d.dir.path(), "load", P256);
    let (_, first_cert) = d.issue_citizen("citizen-signature", &csr, "first.pem");
    let answer = d.ocsp(first_cert.to_str().expect("utf-8"), &[]);
    assert!(answer.contains(": good"), "{answer}");
    let ocsp_request = openssl(
        d.dir.path(),
        &["ocsp", "-issuer", "certs/citizen-signing-ca.pem", "-cert", first_cert.to_str().expect("utf-8"), "-no_nonce", "-reqout", "ocsp.req"],
    );
    assert!(ocsp_request.status.success(), "{}", String::from_utf8_lossy(&ocsp_request.stderr));
    let ocsp_request = std::fs::read(d.path("ocsp.req")).expect("ocsp.req");
    let tokens_a = log_in(a.clone(), &issuer, &secret).await;
    let tokens_b = log_in(b.clone(), &issuer, &secret).await;

    let stop = AtomicBool::new(false);
    let (refresh_a, refresh_b) = (Mutex::new(Tally::default()), Mutex::new(Tally::default()));
    let (ocsp_a, ocsp_b) = (Mutex::new(Tally::default()), Mutex::new(Tally::default()));
    let rt_a = tokens_a["refresh_token"].as_str().expect("rt").to_owned();
    let rt_b = tokens_b["refresh_token"].as_str().expect("rt").to_owned();
    let mut timeline = String::new();
    let (mut killed, mut promoted) = (None, None);
    let scenario = async {
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!([&refresh_a, &refresh_b, &ocsp_a, &ocsp_b].iter().all(|t| t.lock().unwrap().ok > 0), "the load runs");
        let mut citizen = Browser::new(a.clone(), &issuer);
        let r = citizen.get(&authorize_url(&issuer)).await;
        let (login_page, _) = citizen.follow(r).await;
        assert_eq!(login_page.status, 200, "{}", login_page.body);
        cluster.kill_primary();
        let at_kill = *killed.insert(Instant::now());
        // A citizen logging in meanwhile gets the page that says to try again, in Arabic.
        let r = citizen.submit_login(&login_page.body, CITIZEN, PASSWORD, None).await;
        assert_eq!(r.status, 503, "{}", r.body);
        assert!(r.body.contains("حاول مرة أخرى بعد دقيقة") && r.body.contains(r#"dir="rtl""#), "{}", r.body);
        // The CRL (read from the store to check it is current) is refused the same way.
        let r = b.get(format!("{issuer}/crl/citizen-signing-ca.crl")).send().await.expect("CRL");
        assert!(is_503(&r) && r.headers().get("cache-control").is_some_and(|v| v == "no-store"), "the CRL during the outage: {r:?}");
        tokio::time::sleep(Duration::from_secs(2).saturating_sub(at_kill.elapsed())).await;
        cluster.promote_standby();
        let at_promotion = *promoted.insert(Instant::now());
        // Both replicas answer OCSP and refresh again, without a restart. (A refresh chain
        // may have ended on a rotation the outage left in doubt: see below.)
        let recovered = |t: &Mutex<Tally>| t.lock().unwrap().last_ok.is_some_and(|at| at > at_promotion);
        while !(recovered(&ocsp_a) && recovered(&ocsp_b) && (recovered(&refresh_a) || recovered(&refresh_b))) {
            assert!(
                at_promotion.elapsed() < Duration::from_secs(15),
                "the replicas did not recover within 15 s of the promotion: {}",
                [&refresh_a, &refresh_b, &ocsp_a, &ocsp_b].map(|t| t.lock().unwrap().summary()).join("; ")
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // The same form, posted again: nothing of the refused attempt stands in the way.
        let r = citizen.submit_login(&login_page.body, CITIZEN, PASSWORD, None).await;
        let location = citizen.through_consent(r).await;
        assert!(param(&location, "code").is_some(), "the login finishes after the failover: {location}");
        timeline = format!("killed, promoted {:?} later, recovered {:?} after the promotion", at_promotion - at_kill, at_promotion.elapsed());
        // Long enough for `hawiya ca issue` to acknowledge certificates on the new primary.
        tokio::time::sleep(Duration::from_secs(4)).await;
        stop.store(true, Ordering::Relaxed);
    };
    let ((), chain_a, chain_b, (), (), (issued, refused)) = tokio::join!(
        scenario,
        refresh_chain(&a, &issuer, &secret, rt_a, &stop, &refresh_a),
        refresh_chain(&b, &issuer, &secret, rt_b, &stop, &refresh_b),
        ocsp_load(&a, &issuer, &ocsp_request, &stop, &ocsp_a),
        ocsp_load(&b, &issuer, &ocsp_request, &stop, &ocsp_b),
        issuance_load(&d, &csr, &stop),
    );
    eprintln!("{timeline}");
    for (name, tally) in [("refresh via A", &refresh_a), ("refresh via B", &refresh_b), ("OCSP via A", &ocsp_a), ("OCSP via B", &ocsp_b)] {
        let t = tally.lock().unwrap();
        eprintln!("{name}: {} done, {} clean 503s", t.ok, t.unavailable);
        assert!(t.wrong.is_empty(), "{name}: answers other than success or a clean 503: {:?}", t.wrong);
    }
    let unavailable: u64 = [&refresh_a, &refresh_b, &ocsp_a, &ocsp_b].iter().map(|t| t.lock().unwrap().unavailable).sum();
    assert!(unavailable > 0, "the outage was met, and answered with clean 503s");
    let (killed, promoted) = (killed.expect("killed"), promoted.expect("promoted"));
    eprintln!("issuance: {} acknowledged, {} refused", issued.len(), refused.len());
    assert!(issued.iter().any(|c| c.at < killed) && issued.iter().any(|c| c.at > promoted), "certificates were issued before the kill and after the promotion");
    // An issuance that was not acknowledged failed because no server accepted writes.
    for e in &refused {
        assert!(e.contains("PostgreSQL"), "hawiya ca issue failed for another reason than the outage: {e}");
    }

    // Nothing acknowledged is lost: the promoted server has each family at the generation
    // last acknowledged, or one more when a rotation the outage cut off had been committed
    // (synchronous replication cannot tell the client). Then the chain goes on from its
    // last acknowledged token, or reuse detection has revoked the family.
    for (http, chain) in [(&a, chain_a), (&b, chain_b)] {
        let (family, acknowledged) = family_and_generation(&chain.acknowledged);
        let row = cluster.psql_in(cluster.standby, "hawiya", &format!("SELECT generation, revoked FROM refresh_families WHERE family = '{family}'"));
        let row = row.trim().to_owned();
        if chain.in_doubt_rotation {
            eprintln!("a rotation left in doubt by the outage had been committed; reuse detection revoked family {family}");
            assert_eq!(row, format!("{}|t", acknowledged + 1), "the committed rotation is there, and the family revoked");
            continue;
        }
        assert_eq!(row, format!("{acknowledged}|f"), "the last acknowledged rotation is the stored one");
        let r = http
            .post(format!("{issuer}/token"))
            .basic_auth("civil-status", Some(&secret))
            .form(&[("grant_type", "refresh_token"), ("refresh_token", chain.acknowledged.as_str())]);
        let r = r.send().await.expect("refresh");
        let status = r.status();
        assert_eq!(status, 200, "the last acknowledged refresh token works after the failover: {}", r.text().await.unwrap_or_default());
    }
    // …every acknowledged certificate is stored and good…
    let listed = d.ok(&["ca", "list", "--limit", "100000"]);
    for Issued { serial, file, .. } in &issued {
        assert!(listed.contains(serial.as_str()), "certificate {serial} acknowledged before or after the failover is in the store");
        let answer = d.ocsp(file.to_str().expect("utf-8"), &[]);
        assert!(answer.contains(": good") && answer.contains("Response verify OK"), "{serial}: {answer}");
    }
    // …and the audit chain the replicas appended concurrently verifies on the promoted server.
    let verified = d.ok(&["audit", "verify", "--data", d.data.to_str().expect("utf-8")]);
    assert!(verified.starts_with("The audit log is intact: "), "{verified}");
    assert!(d.server_running(0) && d.server_running(1), "neither replica was restarted or died");
}

/// kill -9 one replica in the middle of a login: the login started on it (authorize, the
/// login page) finishes on the other, which keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_started_on_a_killed_replica_finishes_on_the_other() {
    let mut d = Deployment::new(Keys::Soft, Db::Postgres);
    let secret = d.citizen_and_civil_status(CITIZEN, PASSWORD, CB);
    d.set_env("HAWIYA_REDIS_URL", &redis_url());
    d.set_env("HAWIYA_REDIS_PREFIX", &unique_prefix());
    let second = free_port();
    d.serve();
    d.replica(second);
    let issuer = d.base.clone();
    let mut on_a = Browser::new(client_to(d.port), &issuer);
    let r = on_a.get(&authorize_url(&issuer)).await;
    let (page, out) = on_a.follow(r).await;
    assert_eq!((page.status, out), (200, None), "the login page, on replica A: {}", page.body);
    assert!(page.body.contains(r#"action="/login""#), "{}", page.body);

    d.kill_server(0);
    assert!(client_to(d.port).get(format!("{issuer}/healthz")).send().await.is_err(), "replica A is gone");

    let mut on_b = Browser { cookies: on_a.cookies.clone(), ..Browser::new(client_to(second), &issuer) };
    let r = on_b.submit_login(&page.body, CITIZEN, PASSWORD, None).await;
    let location = on_b.through_consent(r).await;
    let code = param(&location, "code").unwrap_or_else(|| panic!("the login finished on replica B with a code: {location}"));
    let r = client_to(second)
        .post(format!("{issuer}/token"))
        .basic_auth("civil-status", Some(&secret))
        .form(&[("grant_type", "authorization_code"), ("code", code.as_str()), ("redirect_uri", CB)])
        .send()
        .await
        .expect("token");
    assert_eq!(r.status(), 200, "replica B redeems the code");
    // B keeps serving new logins on its own.
    let tokens = log_in(client_to(second), &issuer, &secret).await;
    assert!(tokens["id_token"].is_string());
    assert!(d.server_running(1), "replica B is still up");
}

/// A Redis server of the test's own, on a free loopback port, without persistence; killed
/// with SIGKILL when dropped.
struct Redis {
    port: u16,
    child: std::process::Child,
}

impl Redis {
    fn start_on(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string(), "--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server (apt-get install redis-server)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Redis { port, child }
    }

    fn kill(&mut self) {
        self.child.kill().expect("kill -9 redis-server");
        self.child.wait().expect("wait for redis-server");
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// kill -9 the Redis that holds sessions and login transactions: logins fail closed (the
/// "try again" page, 503), OCSP and CRLs, which do not need Redis, keep answering; a Redis
/// back on its address is used again without restarting the replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_logins_fail_closed_and_the_pki_keeps_answering() {
    let mut redis = Redis::start_on(free_port());
    let mut d = Deployment::new(Keys::Soft, Db::Postgres);
    let secret = d.citizen_and_civil_status(CITIZEN, PASSWORD, CB);
    d.set_env("HAWIYA_REDIS_URL", &format!("redis://127.0.0.1:{}/", redis.port));
    d.serve();
    let issuer = d.base.clone();
    let http = client_to(d.port);
    let (_, cert) = d.issue_citizen("citizen-signature", &csr(d.dir.path(), "r", P256), "r.pem");
    let mut citizen = Browser::new(http.clone(), &issuer);
    let r = citizen.get(&authorize_url(&issuer)).await;
    let (login_page, _) = citizen.follow(r).await;
    assert_eq!(login_page.status, 200, "{}", login_page.body);

    redis.kill();
    let r = citizen.submit_login(&login_page.body, CITIZEN, PASSWORD, None).await;
    assert_eq!(r.status, 503, "a login without Redis fails closed: {}", r.body);
    assert!(r.body.contains("حاول مرة أخرى بعد دقيقة"), "{}", r.body);
    assert!(!citizen.cookies.keys().any(|k| k.contains("session")), "no session cookie was set: {:?}", citizen.cookies.keys());
    // Alive, not ready (the load balancer stops sending it logins), and a new authorization
    // request fails closed within seconds.
    let health = |path: &'static str| client_to(d.port).get(format!("{issuer}{path}")).send();
    assert_eq!(health("/healthz").await.expect("healthz").status(), 200);
    assert_eq!(health("/readyz").await.expect("readyz").status(), 503);
    let asked = Instant::now();
    let r = client_to(d.port).get(authorize_url(&issuer)).send().await.expect("authorize");
    assert!(asked.elapsed() < Duration::from_secs(10), "refused within seconds, not after a hang: {:?}", asked.elapsed());
    let status = r.status();
    let location = r.headers().get("location").map(|l| l.to_str().expect("ascii").to_owned());
    let refused = status == 503 || location.as_deref().is_some_and(|l| l.starts_with(CB) && l.contains("error=temporarily_unavailable"));
    assert!(refused, "a new authorization request fails closed: {status} {location:?}");
    // The PKI does not need Redis.
    let answer = d.ocsp(cert.to_str().expect("utf-8"), &[]);
    assert!(answer.contains(": good") && answer.contains("Response verify OK"), "{answer}");
    let (code, _) = d.fetch(&format!("{}/crl/citizen-signing-ca.crl", d.base));
    assert_eq!(code, 200, "the CRL without Redis");

    // Redis back (empty: the transaction of the login begun before is gone): a new login
    // works on the same replica.
    let _redis = Redis::start_on(redis.port);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = http.get(authorize_url(&issuer)).send().await.expect("authorize");
        if r.status() == 303 && r.headers().get("location").is_some_and(|l| l.to_str().is_ok_and(|l| l.contains("/login"))) {
            break;
        }
        assert!(Instant::now() < deadline, "the replica did not use Redis again: {}", r.status());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let tokens = log_in(http, &issuer, &secret).await;
    assert!(tokens["refresh_token"].is_string());
}
