//! Disaster recovery end to end: `hawiya backup` of a serving deployment, the machine lost,
//! `hawiya restore` on a fresh directory, and the service as it was; the refusals of a
//! restore; and PostgreSQL's point-in-time recovery (base backup + WAL archive), as the
//! README's production guide tells operators to run it.
// Test code: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use hawiya_e2e::web::{Browser, param};
use hawiya_e2e::{Db, Deployment, HOST, Keys, OPERATOR_SECRET, P256, csr, database_on, free_port, output_text, run};
use serde_json::Value;

const CITIZEN: &str = "9861234568";
const PASSWORD: &str = "correct horse battery 2026";
const CB: &str = "https://rp.example.jo/cb";

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8")
}

fn http(d: &Deployment) -> reqwest::Client {
    let addr: SocketAddr = format!("127.0.0.1:{}", d.port).parse().expect("addr");
    idp::backchannel::client_builder().expect("builder").resolve(HOST, addr).timeout(Duration::from_secs(30)).build().expect("client")
}

fn authorize_url(d: &Deployment) -> String {
    let mut url = url::Url::parse(&format!("{}/authorize", d.base)).expect("url");
    url.query_pairs_mut()
        .append_pair("client_id", "civil-status")
        .append_pair("redirect_uri", CB)
        .append_pair("response_type", "code")
        .append_pair("scope", "openid profile")
        .append_pair("state", "st-1")
        .append_pair("nonce", "n-1");
    url.into()
}

async fn token(d: &Deployment, secret: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let r = http(d).post(format!("{}/token", d.base)).basic_auth("civil-status", Some(secret)).form(form).send().await.expect("token");
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

/// The citizen logs in at `civil-status`; the tokens.
async fn login(d: &Deployment, secret: &str) -> Value {
    let mut b = Browser::new(http(d), &d.base);
    let location = b.login(&authorize_url(d), CITIZEN, PASSWORD).await;
    let code = param(&location, "code").unwrap_or_else(|| panic!("no code in {location}"));
    let (status, tokens) = token(d, secret, &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", CB)]).await;
    assert_eq!(status, 200, "{tokens}");
    tokens
}

/// Every file under `dir`, relative to it, with its contents.
fn files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push((path.strip_prefix(dir).expect("inside").to_owned(), std::fs::read(&path).expect("read")));
            }
        }
    }
    out.sort();
    out
}

/// Copies a backup directory (`cp -a`).
fn copy_dir(from: &Path, to: &Path) {
    let out = run(Command::new("cp").arg("-a").arg(from).arg(to));
    assert!(out.status.success(), "cp: {}", output_text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disaster_recovery_drill() {
    let mut d = Deployment::new(Keys::Soft, Db::Sqlite);
    let secret = d.citizen_and_civil_status(CITIZEN, PASSWORD, CB);
    d.serve();
    let (good, _) = d.issue_citizen("citizen-signature", &csr(d.dir.path(), "good", P256), "good.pem");
    let (revoked, _) = d.issue_citizen("citizen-signature", &csr(d.dir.path(), "revoked", P256), "revoked.pem");
    d.ok(&["ca", "revoke", "--serial", &revoked, "--reason", "keyCompromise"]);
    let tokens = login(&d, &secret).await;
    let refresh_token = tokens["refresh_token"].as_str().expect("a refresh token").to_owned();
    assert!(d.ocsp("good.pem", &[]).contains("good.pem: good") && d.ocsp("revoked.pem", &[]).contains("revoked.pem: revoked"));
    let certificates = d.snapshot();
    assert!(certificates.contains(&good) && certificates.contains(&revoked), "{certificates}");

    // The operator secret where it must not be: the demo's file, another file holding it.
    let data = d.data.clone();
    std::fs::write(data.join("operator-secret"), OPERATOR_SECRET).expect("write");
    std::fs::create_dir(data.join("notes")).expect("dir");
    std::fs::write(data.join("notes/secret.txt"), format!("{OPERATOR_SECRET}\n")).expect("write");

    // The backup, while the server serves citizens who log in (each login writes audit
    // entries and a refresh token).
    let backup = d.path("backup");
    let mut command = d.command(&["backup", "--data", p(&data), "--out", p(&backup)]);
    let running = tokio::task::spawn_blocking(move || run(&mut command));
    let mut logins = 0;
    while !running.is_finished() {
        login(&d, &secret).await;
        logins += 1;
    }
    let out = running.await.expect("backup");
    assert!(out.status.success(), "hawiya backup: {}", output_text(&out));
    assert!(logins > 0);
    let out = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.contains(&format!("Not copied: {} holds the operator secret.", data.join("notes/secret.txt").display())), "{out}");
    assert!(out.contains(&format!("Backed up {} into {}: ", data.display(), backup.display())), "{out}");
    let manifest: Value = serde_json::from_slice(&std::fs::read(backup.join("manifest.json")).expect("manifest")).expect("json");
    let listed: Vec<&str> = manifest["files"].as_array().expect("files").iter().map(|f| f["path"].as_str().expect("path")).collect();
    for expected in ["hawiya.toml", "hawiya.db", "provider-secret", "keys/keystore.json"] {
        assert!(listed.contains(&expected), "{expected} in the backup: {listed:?}");
    }
    assert!(listed.iter().any(|f| f.starts_with("keys/") && f.ends_with(".key")), "the sealed keys: {listed:?}");
    assert_eq!((manifest["format"].as_u64(), manifest["store"].as_str(), manifest["key_store"].as_str()), (Some(1), Some("sqlite"), Some("soft")));
    let head = manifest["audit_head"]["seq"].as_u64().expect("the audit log's head");
    assert!(head > 5, "citizens, certificates, the login: {manifest}");
    assert!(!listed.contains(&"operator-secret") && !listed.contains(&"notes/secret.txt"), "{listed:?}");
    let copied = files(&backup);
    assert_eq!(copied.len(), listed.len() + 1, "the files and the manifest, nothing else: {listed:?}");
    for (path, bytes) in &copied {
        assert!(!bytes.windows(OPERATOR_SECRET.len()).any(|w| w == OPERATOR_SECRET.as_bytes()), "{} holds the operator secret", path.display());
    }
    // The live log records the backup (after the copy's last entry).
    let exported = d.ok(&["audit", "export", "--data", p(&data)]);
    assert!(exported.contains("\"event\":\"backup.made\""), "backup.made in the live audit log");

    // The machine is lost.
    d.stop();
    std::fs::remove_dir_all(&data).expect("the data directory destroyed");

    // Refusals leave the target as it was.
    let target = d.path("restored");
    let mut tampered = d.path("tampered");
    copy_dir(&backup, &tampered);
    let key = listed.iter().find(|f| f.ends_with(".key")).expect("a key file");
    let mut bytes = std::fs::read(tampered.join(key)).expect("read");
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(tampered.join(key), bytes).expect("tamper");
    let e = d.fails(&["restore", "--from", p(&tampered), "--data", p(&target)]);
    assert_eq!(e, format!("error: {}: changed since the backup (its size or SHA-256 is not the manifest's); nothing restored", tampered.join(key).display()));
    assert!(!target.exists(), "a refused restore writes nothing");
    std::fs::remove_file(tampered.join(key)).expect("remove");
    let e = d.fails(&["restore", "--from", p(&tampered), "--data", p(&target)]);
    assert_eq!(e, format!("error: {}: missing from the backup; nothing restored", tampered.join(key).display()));
    assert!(!target.exists());
    tampered = d.path("unfinished");
    copy_dir(&backup, &tampered);
    std::fs::remove_file(tampered.join("manifest.json")).expect("remove");
    let e = d.fails(&["restore", "--from", p(&tampered), "--data", p(&target)]);
    assert_eq!(e, format!("error: {} is missing: {} is not a finished backup; nothing restored", tampered.join("manifest.json").display(), tampered.display()));
    assert!(!target.exists());
    let occupied = d.path("occupied");
    std::fs::create_dir(&occupied).expect("dir");
    std::fs::write(occupied.join("notes.txt"), "keep me").expect("write");
    let e = d.fails(&["restore", "--from", p(&backup), "--data", p(&occupied)]);
    assert_eq!(e, format!("error: {} is not empty: a restore goes into a new or empty directory", occupied.display()));
    assert_eq!(files(&occupied), vec![(PathBuf::from("notes.txt"), b"keep me".to_vec())], "a non-empty target is left alone");

    // A manifest whose audit head is not the copy's: the files are written, then removed.
    let forged = d.path("forged");
    copy_dir(&backup, &forged);
    let mut other = manifest.clone();
    other["audit_head"]["seq"] = (head - 1).into();
    std::fs::write(forged.join("manifest.json"), other.to_string()).expect("forge");
    let e = d.fails(&["restore", "--from", p(&forged), "--data", p(&target)]);
    assert_eq!(e, format!("error: the restored audit log's entry {} is not the one the manifest names (another hash); nothing restored", head - 1));
    assert!(!target.exists(), "what a failed restore wrote is removed");
    std::fs::create_dir(&target).expect("an empty target");
    let e = d.fails(&["restore", "--from", p(&forged), "--data", p(&target)]);
    assert!(e.ends_with("; nothing restored"), "{e}");
    assert!(files(&target).is_empty() && target.is_dir(), "an empty target stays, empty");

    // Restored on a fresh directory: the service as it was at the backup.
    let out = d.ok(&["restore", "--from", p(&backup), "--data", p(&target)]);
    assert!(out.contains(&format!("the audit log verifies up to entry {head}")), "{out}");
    d.data = target.clone();
    d.serve();
    assert_eq!(d.snapshot(), certificates, "every certificate and its status");
    let answer = d.ocsp("good.pem", &[]);
    assert!(answer.contains("Response verify OK") && answer.contains("good.pem: good"), "{answer}");
    let answer = d.ocsp("revoked.pem", &[]);
    assert!(answer.contains("Response verify OK") && answer.contains("revoked.pem: revoked"), "{answer}");
    let (status, refreshed) = token(&d, &secret, &[("grant_type", "refresh_token"), ("refresh_token", &refresh_token)]).await;
    assert_eq!(status, 200, "the refresh token from before the backup still refreshes: {refreshed}");
    let again = login(&d, &secret).await;
    assert!(again["id_token"].is_string(), "{again}");
    let verified = d.ok(&["audit", "verify", "--data", p(&target)]);
    assert!(verified.starts_with("The audit log is intact: "), "{verified}");
    let exported = d.ok(&["audit", "export", "--data", p(&target)]);
    assert!(exported.contains("\"event\":\"backup.restored\""), "backup.restored in the restored audit log");
}

#[test]
fn keys_in_an_hsm_stay_there() {
    let mut d = Deployment::new(Keys::Pkcs11, Db::Sqlite);
    let (serial, _) = d.issue_citizen("citizen-signature", &csr(d.dir.path(), "sig", P256), "sig.pem");
    let backup = d.path("backup");
    let out = d.ok(&["backup", "--data", p(&d.data), "--out", p(&backup)]);
    assert!(out.contains("The keys stay in the HSM (PKCS#11 token "), "{out}");
    let manifest: Value = serde_json::from_slice(&std::fs::read(backup.join("manifest.json")).expect("manifest")).expect("json");
    assert_eq!(manifest["key_store"], "pkcs11");
    let listed: Vec<&str> = manifest["files"].as_array().expect("files").iter().map(|f| f["path"].as_str().expect("path")).collect();
    assert!(listed.contains(&"hawiya.db") && !listed.iter().any(|f| f.starts_with("keys/")), "{listed:?}");
    let target = d.path("restored");
    d.ok(&["restore", "--from", p(&backup), "--data", p(&target)]);
    d.data = target;
    assert!(d.snapshot().contains(&serial));
    d.serve();
    assert!(d.ocsp("sig.pem", &[]).contains("sig.pem: good"), "the HSM's responder key signs for the restored store");
}

/// The README's `archive_command`: a segment appears in the archive whole (copied under
/// another name, then renamed), and never replaces one already there.
fn archive_command(archive: &Path) -> String {
    let a = archive.display();
    format!("test ! -f {a}/%f && cp %p {a}/%f.part && mv {a}/%f.part {a}/%f")
}

/// A throw-away PostgreSQL server that archives its WAL, for the point-in-time recovery.
struct Postgres {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
}

impl Postgres {
    /// `runuser -u postgres` when the tests run as root (PostgreSQL refuses root).
    fn command(bin: &Path, tool: &str) -> Command {
        if run(Command::new("id").arg("-u")).stdout.starts_with(b"0\n") {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(bin.join(tool));
            c
        } else {
            Command::new(bin.join(tool))
        }
    }

    fn tool(&self, tool: &str) -> Command {
        Self::command(&self.bin, tool)
    }

    /// Starts the cluster in `data` (made by initdb, or restored) on a fresh port.
    fn start(bin: &Path, dir: &Path, data: PathBuf) -> Self {
        let port = free_port();
        let archive = dir.join("archive");
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {port} -k {} -c fsync=off -c wal_level=replica -c archive_mode=on -c archive_command='{}'",
            dir.display(),
            archive_command(&archive)
        );
        let log = data.with_extension("log");
        let out = run(Self::command(bin, "pg_ctl").arg("-D").arg(&data).arg("-l").arg(&log).args(["-w", "-t", "30", "-o", &options, "start"]));
        assert!(out.status.success(), "pg_ctl start: {} {}", output_text(&out), std::fs::read_to_string(&log).unwrap_or_default());
        Postgres { bin: bin.to_owned(), data, port }
    }

    fn admin(&self) -> String {
        format!("host=127.0.0.1 port={} user=postgres sslmode=disable", self.port)
    }

    fn sql(&self, query: &str) -> String {
        let out = run(self.tool("psql").args([&self.admin(), "-At", "-c", query]));
        assert!(out.status.success(), "psql {query}: {}", output_text(&out));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = run(self.tool("pg_ctl").arg("-D").arg(&self.data).args(["-m", "immediate", "stop"]));
    }
}

/// The README's procedure: a base backup, WAL archived continuously, a restore of both to a
/// stated moment, with `hawiya backup` / `restore` for the configuration and the keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_point_in_time_recovery() {
    let started = Instant::now();
    let bin = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL installed")
        .map(|e| e.expect("entry").path().join("bin"))
        .max_by_key(|b| b.to_string_lossy().split('/').nth(4).and_then(|v| v.parse::<u32>().ok()).unwrap_or(0))
        .expect("a PostgreSQL version");
    let scratch = tempfile::tempdir().expect("tempdir");
    let dir = scratch.path().join("pg");
    std::fs::create_dir_all(dir.join("archive")).expect("archive dir");
    // PostgreSQL runs as its own user when the tests run as root: it must reach its files.
    let _ = run(Command::new("chmod").arg("755").arg(scratch.path()));
    let _ = run(Command::new("chown").arg("-R").arg("postgres:").arg(&dir));
    let out = run(Postgres::command(&bin, "initdb").arg("-D").arg(dir.join("primary")).args(["-U", "postgres", "-A", "trust", "--no-sync"]));
    assert!(out.status.success(), "initdb: {}", output_text(&out));
    let primary = Postgres::start(&bin, &dir, dir.join("primary"));
    let url = database_on(&primary.admin());
    let database = url.rsplit_once("dbname=").expect("dbname").1.to_owned();

    let mut d = Deployment::with_database(Keys::Soft, Some(url));
    let backup = d.path("backup");
    let out = d.ok(&["backup", "--data", p(&d.data), "--out", p(&backup)]);
    assert!(out.contains("The PostgreSQL database is not in it: back it up with pg_basebackup and WAL archiving"), "{out}");
    let manifest = std::fs::read_to_string(backup.join("manifest.json")).expect("manifest");
    assert!(manifest.contains("\"store\": \"postgres\"") && !manifest.contains("hawiya.db"), "{manifest}");

    let base = dir.join("base");
    let out =
        run(primary.tool("pg_basebackup").args(["-h", "127.0.0.1", "-p", &primary.port.to_string(), "-U", "postgres", "--checkpoint=fast", "-D"]).arg(&base));
    assert!(out.status.success(), "pg_basebackup: {}", output_text(&out));

    // Rows before the moment, the moment, rows after it.
    let (before, _) = d.issue_citizen("citizen-signature", &csr(d.dir.path(), "before", P256), "before.pem");
    std::thread::sleep(Duration::from_millis(1100));
    let moment = primary.sql("SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'");
    std::thread::sleep(Duration::from_millis(1100));
    let (after, _) = d.issue_citizen("citizen-signature", &csr(d.dir.path(), "after", P256), "after.pem");
    let live = d.snapshot();
    assert!(live.contains(&before) && live.contains(&after), "{live}");
    let segment = primary.sql("SELECT pg_walfile_name(pg_switch_wal())");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !dir.join("archive").join(&segment).exists() {
        assert!(Instant::now() < deadline, "WAL segment {segment} was not archived");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The disaster.
    drop(primary);

    // The base backup, the archived WAL, recovery to the moment.
    let restored = dir.join("restored");
    copy_dir(&base, &restored);
    std::fs::write(restored.join("recovery.signal"), "").expect("recovery.signal");
    let mut auto = std::fs::read_to_string(restored.join("postgresql.auto.conf")).unwrap_or_default();
    auto.push_str(&format!(
        "restore_command = 'cp {}/%f %p'\nrecovery_target_time = '{moment}'\nrecovery_target_action = 'promote'\n",
        dir.join("archive").display()
    ));
    std::fs::write(restored.join("postgresql.auto.conf"), auto).expect("recovery settings");
    let _ = run(Command::new("chown").arg("-R").arg("postgres:").arg(&restored));
    let _ = run(Command::new("chmod").arg("700").arg(&restored));
    let recovered = Postgres::start(&bin, &dir, restored);
    let deadline = Instant::now() + Duration::from_secs(30);
    while recovered.sql("SELECT pg_is_in_recovery()") != "f" {
        assert!(Instant::now() < deadline, "recovery did not end");
        std::thread::sleep(Duration::from_millis(100));
    }

    // The configuration and keys from `hawiya backup`, the database from PostgreSQL.
    let target = d.path("restored-data");
    let out = d.ok(&["restore", "--from", p(&backup), "--data", p(&target)]);
    assert!(out.contains("The PostgreSQL database is restored apart"), "{out}");
    d.data = target.clone();
    d.set_env("HAWIYA_DATABASE_URL", &format!("{} dbname={database}", recovered.admin()));
    let listed = d.snapshot();
    assert!(listed.contains(&before), "the certificate issued before the moment is there: {listed}");
    assert!(!listed.contains(&after), "the certificate issued after the moment is not: {listed}");
    let verified = d.ok(&["audit", "verify", "--data", p(&target)]);
    assert!(verified.starts_with("The audit log is intact: "), "{verified}");
    let exported = d.ok(&["audit", "export", "--data", p(&target)]);
    assert!(exported.contains(&before.to_lowercase()) || exported.contains(&before), "the issuance before the moment is in the audit log");
    assert!(!exported.contains(&after.to_lowercase()) && !exported.contains(&after), "the issuance after the moment is not");
    assert!(started.elapsed() < Duration::from_secs(60), "the drill took {:?}", started.elapsed());
}
