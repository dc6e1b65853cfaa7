//! The binary's other commands: `demo` (first start and restart), `policy check`, and what
//! registration officers enter — citizens through `hawiya citizen add` and the RA API,
//! national ids, officers in `hawiya.toml` — with the impossible and hostile values each must
//! refuse, storing nothing.
// Test code: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hawiya_e2e::{Db, Deployment, Keys, free_port, hawiya_bin, run};
use serde_json::{Value, json};

fn start_demo(data: &std::path::Path, port: u16) -> std::process::Child {
    let child = Command::new(hawiya_bin())
        .args(["demo", "--data"])
        .arg(data)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env_remove("HAWIYA_OPERATOR_SECRET")
        .env_remove("HAWIYA_OPERATOR_SECRET_FILE")
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn demo");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "demo did not start listening");
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

/// Stops the demo; what it printed on stdout and on stderr.
fn stop(child: std::process::Child) -> (String, String) {
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let out = child.wait_with_output().expect("wait");
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn fetch(port: u16, path: &str) -> Vec<u8> {
    let out = run(Command::new("curl").args(["-sf", &format!("http://127.0.0.1:{port}{path}")]));
    assert!(out.status.success(), "GET {path} failed");
    out.stdout
}

/// The demo's start-up summary: the URL to open, both citizens with their passwords, the
/// one-time-code secret, the smart-ID steps; and no log lines among them. Returns the secret.
fn assert_summary(printed: &str, logged: &str, port: u16) -> String {
    let base = format!("http://127.0.0.1:{port}");
    for expected in [
        format!("open {base}/demo/"),
        "Layla Haddad   national id 9861234567   password demo-password-1".into(),
        "Sami Khalil    national id 9861234568   password demo-password-2".into(),
        "citizen enroll --data".into(),
        format!("device activate --dir demo-device --server {base} --code <code>"),
        "device approve --dir demo-device --code".into(),
        format!("OpenID Connect discovery: {base}/"),
    ] {
        assert!(printed.contains(&expected), "{expected:?} in {printed}");
    }
    assert!(!printed.contains(" INFO ") && !logged.contains(" INFO "), "no info logs by default: {printed}{logged}");
    let last = printed.trim_end().lines().last().unwrap_or_default();
    assert_eq!(
        last,
        format!("Hawiya is serving on {base}; logs show warnings only (RUST_LOG=info for more). Ctrl-C stops the demo."),
        "the summary ends the start-up"
    );
    let secret = printed.split("oathtool --totp -b ").nth(1).and_then(|rest| rest.split_whitespace().next()).expect("the one-time-code secret");
    assert!(secret.len() == 32 && secret.bytes().all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b)), "base32: {secret}");
    secret.to_owned()
}

#[test]
fn demo_creates_its_data_once_and_reuses_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("hawiya-data");
    let port = free_port();
    let first = start_demo(&data, port);
    let root = fetch(port, "/ca/root.crt");
    // Probes on the same listener as everything else.
    assert_eq!(fetch(port, "/healthz"), br#"{"status":"alive"}"#);
    let ready: Value = serde_json::from_slice(&fetch(port, "/readyz")).expect("JSON");
    assert_eq!(ready["status"], "ready", "{ready}");
    for component in ["durable_store", "ephemeral_store", "key_store"] {
        assert_eq!(ready["checks"][component]["status"], "ok", "{ready}");
    }
    let index = String::from_utf8(fetch(port, "/")).expect("utf-8");
    assert!(index.contains("/healthz") && index.contains("/readyz"), "{index}");
    // The CA's responses carry a request id, as the provider's do.
    let head = run(Command::new("curl").args(["-s", "-D", "-", "-o", "/dev/null", &format!("http://127.0.0.1:{port}/ca/root.crt")]));
    assert!(String::from_utf8_lossy(&head.stdout).to_ascii_lowercase().contains("\nx-request-id: "), "{}", String::from_utf8_lossy(&head.stdout));
    assert!(index.contains(&format!("http://127.0.0.1:{port}/ocsp")), "{index}");
    assert!(index.contains(&format!("http://127.0.0.1:{port}/crl/citizen-signing-ca.crl")), "{index}");
    let (printed, logged) = stop(first);
    assert!(printed.starts_with("First start"), "{printed}");
    let secret = assert_summary(&printed, &logged, port);

    let operator_secret = data.join("operator-secret");
    assert_eq!(std::fs::metadata(&operator_secret).expect("secret").permissions().mode() & 0o777, 0o600);
    assert!(data.join("hawiya.db").exists() && data.join("keys").is_dir());

    let second = start_demo(&data, port);
    assert_eq!(fetch(port, "/ca/root.crt"), root, "the second start serves the same hierarchy");
    let (printed, logged) = stop(second);
    assert!(printed.starts_with("Reusing"), "{printed}");
    assert_eq!(assert_summary(&printed, &logged, port), secret, "the second start shows the same one-time-code secret");
}

#[test]
fn an_unknown_log_format_is_a_one_line_startup_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = run(Command::new(hawiya_bin()).args(["serve", "--data"]).arg(dir.path()).env("HAWIYA_LOG_FORMAT", "yaml"));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "error: HAWIYA_LOG_FORMAT: unknown log format \"yaml\": use json or human\n");
    assert!(out.stdout.is_empty());
}

#[test]
fn policy_check_accepts_the_shipped_files_and_names_problems() {
    let shipped = run(Command::new(hawiya_bin()).args(["policy", "check"]));
    assert!(shipped.status.success(), "{}", String::from_utf8_lossy(&shipped.stderr));
    let summary = String::from_utf8_lossy(&shipped.stdout);
    assert!(summary.contains("2 validation policies (default advanced), a trust list of 0 authorities and this deployment's own hierarchy"), "{summary}");
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
    let dir_check = run(Command::new(hawiya_bin()).args(["policy", "check"]).arg(&repo));
    assert!(dir_check.status.success(), "{}", String::from_utf8_lossy(&dir_check.stderr));

    let broken = tempfile::tempdir().expect("tempdir");
    let out = run(Command::new("cp").arg("-r").arg(repo.join(".")).arg(broken.path()));
    assert!(out.status.success());
    let methods = broken.path().join("methods.toml");
    let text = std::fs::read_to_string(&methods).expect("read").replacen("level = \"high\"", "level = \"ultra\"", 1);
    std::fs::write(&methods, text).expect("write");
    let out = run(Command::new(hawiya_bin()).args(["policy", "check"]).arg(broken.path()));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("methods.toml:24:9: unknown level \"ultra\""), "{stderr}");

    // A validation policy that names a level nobody defines.
    std::fs::write(&methods, std::fs::read_to_string(repo.join("methods.toml")).expect("read")).expect("write");
    let qualified = broken.path().join("validation/qualified.toml");
    std::fs::write(&qualified, std::fs::read_to_string(&qualified).expect("read").replace("signer_min_level = \"high\"", "signer_min_level = \"ultra\""))
        .expect("write");
    let out = run(Command::new(hawiya_bin()).args(["policy", "check"]).arg(broken.path()));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("validation/qualified.toml:") && stderr.contains("unknown level \"ultra\""), "{stderr}");
}

const LAYLA: &str = "9861234567";
const PASSWORD: &str = "a good long password 2026";

/// `hawiya citizen add` for Layla, with `bad` replacing the value of one option (or added).
fn citizen_add(bad: (&str, &str)) -> Vec<String> {
    let mut args: Vec<String> = ["citizen", "add"].map(String::from).to_vec();
    let good = [
        ("--national-id", LAYLA),
        ("--given-name-ar", "ليلى"),
        ("--family-name-ar", "حداد"),
        ("--given-name-en", "Layla"),
        ("--family-name-en", "Haddad"),
        ("--birthdate", "1990-04-01"),
        ("--email", "layla@example.jo"),
        ("--phone", "+962790000001"),
        ("--address", "شارع الملكة رانيا، عمّان"),
    ];
    for (option, value) in good {
        args.push(option.into());
        args.push(if option == bad.0 { bad.1 } else { value }.into());
    }
    args
}

/// What a refused registration must not have stored: no citizen with that national id.
fn assert_not_registered(d: &Deployment, national_id: &str) {
    assert_eq!(d.fails(&["citizen", "show", "--national-id", national_id]), format!("error: no citizen with national id {national_id}"));
}

/// Impossible or hostile values, each with the option or JSON field it goes to, and the
/// reason every entrance must give.
fn bad_citizen_data() -> Vec<(&'static str, &'static str, String, String)> {
    let long = "x".repeat(100_000);
    let escape = "Lay\u{1b}[2Jla".to_owned();
    let reversed = "ليلى\u{202e}".to_owned();
    vec![
        ("--national-id", "national_id", "98-61".into(), "a national id is 5 to 20 digits (0-9)".into()),
        ("--national-id", "national_id", "1234".into(), "a national id is 5 to 20 digits (0-9)".into()),
        ("--birthdate", "birthdate", "1990-02-30".into(), "1990-02-30 is not a day of the calendar".into()),
        ("--birthdate", "birthdate", "2999-01-01".into(), "a birthdate cannot be in the future (2999-01-01)".into()),
        ("--birthdate", "birthdate", "01/04/1990".into(), "\"01/04/1990\" is not a date written YYYY-MM-DD".into()),
        ("--email", "email", "not an email".into(), "\"not an email\" is not an e-mail address such as name@example.jo".into()),
        ("--phone", "phone_number", "call me".into(), "\"call me\" is not a phone number: + and 7 to 15 digits, such as +962790000000".into()),
        ("--given-name-en", "given_name.en", String::new(), "a name cannot be empty".into()),
        ("--family-name-ar", "family_name.ar", "   ".into(), "a name cannot be empty".into()),
        ("--family-name-en", "family_name.en", long, "a name has at most 100 characters, not 100000".into()),
        ("--given-name-en", "given_name.en", escape, "a name cannot hold control, invisible or text-direction characters".into()),
        ("--given-name-ar", "given_name.ar", reversed, "a name cannot hold control, invisible or text-direction characters".into()),
        ("--address", "address", "Amman\u{7}".into(), "an address has 1 to 500 characters, and no control characters but line breaks".into()),
    ]
}

#[test]
fn citizen_add_refuses_impossible_or_hostile_data_and_stores_nothing() {
    let d = Deployment::new(Keys::Soft, Db::Sqlite);
    for (option, _, value, reason) in bad_citizen_data() {
        let args = citizen_add((option, &value));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let e = d.fails_with_input(&args, &format!("{PASSWORD}\n"));
        assert_eq!(e, format!("error: {option}: {reason}"), "{option} {:?}", value.chars().take(40).collect::<String>());
        assert_not_registered(&d, LAYLA);
    }
    // A password too short is refused before anything is stored too.
    let args = citizen_add(("", ""));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_eq!(d.fails_with_input(&args, "short\n"), "error: the password must be 8 to 256 characters long");
    assert_not_registered(&d, LAYLA);

    // The good values are stored as given, once.
    assert_eq!(d.ok_with_input(&args, &format!("{PASSWORD}\n")), format!("Registered citizen {LAYLA}.\n"));
    let shown = d.ok(&["citizen", "show", "--national-id", LAYLA]);
    for line in [
        "given name     ليلى / Layla",
        "family name    حداد / Haddad",
        "birthdate      1990-04-01",
        "email          layla@example.jo",
        "phone          +962790000001",
        "one-time codes not enrolled",
        "smart-ID       none",
    ] {
        assert!(shown.contains(line), "{line:?} in {shown}");
    }
    assert_eq!(d.fails_with_input(&args, &format!("{PASSWORD}\n")), format!("error: a citizen with national id {LAYLA} is already registered"));
    // Every other command taking a national id applies the same rule, with the same words.
    for command in [
        vec!["citizen", "show"],
        vec!["citizen", "enroll", "--custody", "software"],
        vec!["citizen", "suspend"],
        vec!["citizen", "totp-enroll"],
        vec!["citizen", "revoke-consent", "--client", "civil-status"],
    ] {
        let mut args = command.clone();
        args.extend(["--national-id", "98612345678901234567890"]);
        assert_eq!(d.fails(&args), "error: --national-id: a national id is 5 to 20 digits (0-9)", "{command:?}");
    }
}

/// POSTs JSON with curl; the status and the JSON answer.
fn post(d: &Deployment, path: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
    let file = d.path("request.json");
    std::fs::write(&file, body.to_string()).expect("request body");
    let answer = d.path("answer.json");
    let mut curl = Command::new("curl");
    curl.args(["-s", "-o"])
        .arg(&answer)
        .args(["-w", "%{http_code}", "-H", "Content-Type: application/json", "--data-binary"])
        .arg(format!("@{}", file.display()));
    if let Some(token) = token {
        curl.args(["-H", &format!("Authorization: Bearer {token}")]);
    }
    let out = run(curl.arg(format!("http://127.0.0.1:{}{path}", d.port)));
    assert!(out.status.success(), "curl: {}", String::from_utf8_lossy(&out.stderr));
    let status = String::from_utf8_lossy(&out.stdout).trim().parse().expect("status");
    let text = std::fs::read_to_string(&answer).unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

#[test]
fn the_ra_api_refuses_impossible_or_hostile_citizen_data_and_stores_nothing() {
    let mut d = Deployment::new(Keys::Soft, Db::Sqlite);
    let token = d.ok(&["ra", "add-officer", "--name", "officer-amal"]).split_whitespace().last().expect("token").to_owned();
    d.serve();
    let citizen = || {
        json!({"national_id": LAYLA, "given_name": {"ar": "ليلى", "en": "Layla"}, "family_name": {"ar": "حداد", "en": "Haddad"},
               "birthdate": "1990-04-01", "email": "layla@example.jo", "phone_number": "+962790000001", "address": "شارع الملكة رانيا، عمّان"})
    };
    let enrolment = json!({"national_id": LAYLA, "custody": "software"});
    for (_, field, value, reason) in bad_citizen_data() {
        let mut c = citizen();
        match field.split_once('.') {
            Some((name, script)) => c[name][script] = value.clone().into(),
            None => c[field] = value.clone().into(),
        }
        let (status, e) = post(&d, "/ra/citizens", Some(&token), &json!({"citizen": c, "password": PASSWORD}));
        if value.len() > 64 * 1024 {
            assert_eq!(status, 413, "a body beyond 64 KiB is refused unread");
        } else {
            assert_eq!((status, e["error"].as_str()), (400, Some("invalid_request")), "{field}: {e}");
            assert_eq!(e["error_description"], format!("citizen.{field}: {reason}"));
        }
        assert_not_registered(&d, LAYLA);
        assert_eq!(post(&d, "/ra/enrolments", Some(&token), &enrolment).0, 404, "no citizen to enrol");
    }
    let mut long = citizen();
    long["family_name"]["en"] = "x".repeat(1000).into();
    let (status, e) = post(&d, "/ra/citizens", Some(&token), &json!({"citizen": long, "password": PASSWORD}));
    assert_eq!((status, e["error_description"].as_str()), (400, Some("citizen.family_name.en: a name has at most 100 characters, not 1000")));
    let (status, e) = post(&d, "/ra/citizens", Some(&token), &json!({"citizen": citizen(), "password": "short"}));
    assert_eq!((status, e["error_description"].as_str()), (400, Some("password: the password must be 8 to 256 characters long")));
    let (status, e) = post(&d, "/ra/citizens", None, &json!({"citizen": citizen(), "password": PASSWORD}));
    assert_eq!((status, e["error"].as_str()), (401, Some("unauthorized")));
    assert_not_registered(&d, LAYLA);

    // Good data is registered once, as given; the national id rule holds on every RA route.
    let (status, done) = post(&d, "/ra/citizens", Some(&token), &json!({"citizen": citizen(), "password": PASSWORD}));
    assert_eq!((status, done["national_id"].as_str()), (201, Some(LAYLA)), "{done}");
    let shown = d.ok(&["citizen", "show", "--national-id", LAYLA]);
    assert!(shown.contains("birthdate      1990-04-01") && shown.contains("phone          +962790000001"), "{shown}");
    let (status, e) = post(&d, "/ra/citizens", Some(&token), &json!({"citizen": citizen(), "password": PASSWORD}));
    assert_eq!((status, e["error"].as_str()), (409, Some("already_registered")), "{e}");
    let (status, e) = post(&d, "/ra/enrolments", Some(&token), &json!({"national_id": "98-61", "custody": "software"}));
    assert_eq!((status, e["error_description"].as_str()), (400, Some("national_id: a national id is 5 to 20 digits (0-9)")));
    let (status, e) = post(&d, "/ra/smart-ids/98-61/suspend", Some(&token), &json!({}));
    assert_eq!((status, e["error_description"].as_str()), (400, Some("national id in the path: a national id is 5 to 20 digits (0-9)")));
    assert_eq!(post(&d, "/ra/enrolments", Some(&token), &enrolment).0, 201, "the registered citizen can be enrolled");
}

#[test]
fn bad_officer_entries_in_hawiya_toml_are_refused_at_load() {
    let d = Deployment::new(Keys::Soft, Db::Sqlite);
    d.ok(&["ra", "add-officer", "--name", "officer-amal"]);
    let file = d.data.join("hawiya.toml");
    let good = std::fs::read_to_string(&file).expect("hawiya.toml");
    let hash = good.lines().find_map(|l| l.strip_prefix("token_sha256 = ")).expect("the officer's hash").to_owned();
    let line = |key: &str| good.lines().position(|l| l.starts_with(key)).expect("key") + 1;
    for (from, to, key, reason) in [
        (hash.as_str(), "\"\"", "token_sha256", "ra_officers.token_sha256 is empty"),
        (hash.as_str(), "\"not hex at all\"", "token_sha256", "ra_officers.token_sha256 is not 64 hexadecimal digits"),
        (hash.as_str(), &format!("{}\"", &hash[..40]), "token_sha256", "ra_officers.token_sha256 is not 64 hexadecimal digits"),
        ("name = \"officer-amal\"", "name = \"\"", "name", "ra_officers.name: an officer's name is 1 to 64 characters"),
    ] {
        std::fs::write(&file, good.replacen(from, to, 1)).expect("write");
        for command in [vec!["citizen", "show", "--national-id", LAYLA], vec!["serve"]] {
            let e = d.fails(&command);
            let prefix = format!("error: {}:{}: {reason}", file.display(), line(key));
            assert!(e.starts_with(&prefix), "{command:?}: {e}\nexpected: {prefix}");
        }
    }
    std::fs::write(&file, &good).expect("write");
    assert_eq!(d.fails(&["ra", "add-officer", "--name", ""]), "error: --name: an officer's name is 1 to 64 characters without control characters, not \"\"");
    assert_eq!(d.fails(&["ra", "add-officer", "--name", "officer-amal"]), "error: an officer named \"officer-amal\" exists already");
    // The officer added, and no other, is in the audit log.
    let out = d.data.join("audit.jsonl").display().to_string();
    d.ok(&["audit", "export", "--data", &d.data.display().to_string(), "--out", &out]);
    let added: Vec<String> =
        std::fs::read_to_string(&out).expect("export").lines().filter(|l| l.contains("\"event\":\"ra.officer_added\"")).map(str::to_owned).collect();
    assert!(added.len() == 1 && added[0].contains(r#"\"officer\":\"officer-amal\""#), "{added:?}");
}

#[test]
fn client_ids_follow_one_rule_on_every_command() {
    let d = Deployment::new(Keys::Soft, Db::Sqlite);
    let before = d.ok(&["client", "list"]);
    for (option, args) in [
        ("--id", vec!["client", "add", "--id", "land registry", "--redirect-uri", "https://land.example.jo/cb"]),
        ("--id", vec!["client", "remove", "--id", ".land"]),
        ("--client", vec!["citizen", "revoke-consent", "--national-id", "9861234567", "--client", "land/registry"]),
    ] {
        let expected = format!("error: {option}: a client id is 1 to 64 characters: ASCII letters, digits, '-', '_' or '.', starting with a letter or digit");
        assert_eq!(d.fails(&args), expected, "{args:?}");
    }
    assert_eq!(d.ok(&["client", "list"]), before, "nothing stored");
}

/// `GET` of a served path with curl: the status and the JSON body.
fn get_json(port: u16, path: &str) -> (u16, Value) {
    let out = run(Command::new("curl").args(["-s", "-w", "\n%{http_code}", &format!("http://127.0.0.1:{port}{path}")]));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').expect("status line");
    (status.parse().expect("status"), serde_json::from_str(body).unwrap_or(Value::Null))
}

/// `/readyz` of a server whose Redis stops answering: 503 naming the ephemeral store and
/// `timeout` (after the 2 s), while `/healthz` stays 200; ready again once Redis is back;
/// `error` once Redis is gone. The body never names Redis' address.
#[test]
fn readiness_names_the_store_that_stops_answering_and_recovers() {
    let redis_port = free_port();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut redis = Command::new("redis-server")
        .args(["--port", &redis_port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir"])
        .arg(dir.path())
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", redis_port)).is_err() {
        assert!(Instant::now() < deadline, "redis-server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut d = Deployment::new(Keys::Soft, Db::Sqlite);
    d.set_env("HAWIYA_REDIS_URL", &format!("redis://127.0.0.1:{redis_port}/"));
    d.serve();
    let (status, body) = get_json(d.port, "/readyz");
    assert_eq!((status, body["status"].as_str()), (200, Some("ready")), "{body}");
    let signal = |sig: &str| assert!(run(Command::new("kill").args([sig, &redis.id().to_string()])).status.success(), "kill {sig}");

    // Redis frozen: no answer within the timeout.
    signal("-STOP");
    let start = Instant::now();
    let (status, body) = get_json(d.port, "/readyz");
    let took = start.elapsed();
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["failed"], json!(["ephemeral_store"]), "{body}");
    assert_eq!(body["checks"]["ephemeral_store"], json!({"status": "timeout", "error": "no answer within 2000 ms"}), "{body}");
    assert_eq!((body["checks"]["durable_store"]["status"].as_str(), body["checks"]["key_store"]["status"].as_str()), (Some("ok"), Some("ok")), "{body}");
    assert!(took >= Duration::from_secs(2) && took < Duration::from_secs(5), "the checks run at once, each within 2 s: {took:?}");
    assert_eq!(get_json(d.port, "/healthz"), (200, json!({"status": "alive"})), "alive all the same");

    // Back: ready again.
    signal("-CONT");
    let deadline = Instant::now() + Duration::from_secs(15);
    while get_json(d.port, "/readyz").0 != 200 {
        assert!(Instant::now() < deadline, "ready again once Redis answers");
        std::thread::sleep(Duration::from_millis(200));
    }

    // Gone: an error, named.
    let _ = redis.kill();
    let _ = redis.wait();
    let deadline = Instant::now() + Duration::from_secs(15);
    let body = loop {
        let (status, body) = get_json(d.port, "/readyz");
        if status == 503 && body["checks"]["ephemeral_store"]["status"] == "error" {
            break body;
        }
        assert!(Instant::now() < deadline, "an error once Redis is gone: {status} {body}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(body["checks"]["ephemeral_store"]["error"], "the store refused or failed the check", "{body}");
    assert!(!body.to_string().contains("127.0.0.1") && !body.to_string().contains("redis"), "no address in the body: {body}");
}
