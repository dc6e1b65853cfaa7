//! The certificate authority end to end: the real `hawiya` binary on each key store and
//! durable store, judged by OpenSSL and pkilint.
// Test code: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use hawiya_e2e::{Db, Deployment, HOST, Keys, P256, csr, openssl, pkilint};

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

fn stdout(o: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// `openssl verify` of `cert` against the hierarchy; with `crl`, also checks revocation.
fn verify(d: &Deployment, cert: &Path, intermediate: &str, crl: Option<&Path>) -> std::process::Output {
    let certs = d.path("certs");
    let mut args = vec!["verify".to_owned(), "-CAfile".into(), p(&certs.join("root.pem")).into()];
    args.extend(["-untrusted".into(), p(&certs.join(format!("{intermediate}.pem"))).into()]);
    if let Some(crl) = crl {
        args.extend(["-crl_check".into(), "-CRLfile".into(), p(crl).into()]);
    }
    args.push(p(cert).into());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    openssl(d.dir.path(), &args)
}

fn issues_verifiable_lint_clean_certificates(keys: Keys, db: Db) {
    let d = Deployment::new(keys, db);
    let certs = d.path("certs");
    for ca in ["root", "citizen-authentication-ca", "citizen-signing-ca", "services-ca"] {
        let findings = pkilint("lint_pkix_cert", &[], &certs.join(format!("{ca}.pem")));
        assert!(findings.is_empty(), "pkilint PKIX findings for {ca}: {findings:#?}");
    }
    let (_, auth) = d.issue_citizen("citizen-authentication", &csr(d.dir.path(), "auth", P256), "auth.pem");
    let (_, sig) = d.issue_citizen("citizen-signature", &csr(d.dir.path(), "sig", &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384"]), "sig.pem");
    let o = verify(&d, &auth, "citizen-authentication-ca", None);
    assert!(o.status.success(), "openssl verify auth: {}", stdout(&o));
    let o = verify(&d, &sig, "citizen-signing-ca", None);
    assert!(o.status.success(), "openssl verify sig: {}", stdout(&o));
    for (cert, etsi_type) in [(&auth, "NCP-NATURAL-PERSON-CERTIFICATE"), (&sig, "QCP-N-QSCD-NON-EIDAS-FINAL-CERTIFICATE")] {
        let findings = pkilint("lint_etsi_cert", &["-t", etsi_type], cert);
        assert!(findings.is_empty(), "pkilint ETSI {etsi_type}: {findings:#?}");
        let findings = pkilint("lint_pkix_cert", &[], cert);
        assert!(findings.is_empty(), "pkilint PKIX: {findings:#?}");
    }
    // The profile's content, as OpenSSL reads it.
    let text = stdout(&openssl(d.dir.path(), &["x509", "-in", p(&sig), "-noout", "-text", "-nameopt", "RFC2253"]));
    assert!(text.contains("serialNumber=PNOJO-9861234567"), "{text}");
    assert!(text.contains("0.4.0.194112.1.2"), "QCP-n-qscd policy: {text}");
    assert!(text.contains("Non Repudiation"), "{text}");
    let text = stdout(&openssl(d.dir.path(), &["x509", "-in", p(&auth), "-noout", "-text"]));
    assert!(text.contains("0.4.0.2042.1.2") && text.contains("TLS Web Client Authentication"), "{text}");
    // The serial number is positive and at least 16 octets.
    let serial = stdout(&openssl(d.dir.path(), &["x509", "-in", p(&auth), "-noout", "-serial"]));
    let hex = serial.trim().trim_start_matches("serial=");
    assert!(hex.len() >= 32 && u8::from_str_radix(&hex[..2], 16).expect("hex") < 0x80, "{serial}");
    // The responders' and the TSA's certificates verify and lint clean too.
    for (name, issuer) in [
        ("citizen-authentication-ca-ocsp", "citizen-authentication-ca"),
        ("citizen-signing-ca-ocsp", "citizen-signing-ca"),
        ("services-ca-ocsp", "services-ca"),
        ("tsa", "services-ca"),
        ("validation-service", "services-ca"),
        ("audit-log", "services-ca"),
    ] {
        let cert = certs.join(format!("{name}.pem"));
        let o = verify(&d, &cert, issuer, None);
        assert!(o.status.success(), "openssl verify {name}: {}", stdout(&o));
        let findings = pkilint("lint_pkix_cert", &[], &cert);
        assert!(findings.is_empty(), "pkilint PKIX findings for {name}: {findings:#?}");
    }
    let text = stdout(&openssl(d.dir.path(), &["x509", "-in", p(&certs.join("tsa.pem")), "-noout", "-ext", "extendedKeyUsage"]));
    assert!(text.contains("critical") && text.contains("Time Stamping"), "{text}");
    let text = stdout(&openssl(d.dir.path(), &["x509", "-in", p(&certs.join("services-ca-ocsp.pem")), "-noout", "-text"]));
    assert!(text.contains("OCSP Signing") && text.contains("OCSP No Check"), "{text}");
    // The validation service signs reports it stands by: nonRepudiation, no CA bit, its policy.
    let text = stdout(&openssl(d.dir.path(), &["x509", "-in", p(&certs.join("validation-service.pem")), "-noout", "-text"]));
    assert!(text.contains("Digital Signature, Non Repudiation") && text.contains("2.16.400.1.1.2.2") && !text.contains("CA:TRUE"), "{text}");
}

fn revocation_reaches_crl_and_ocsp(keys: Keys, db: Db) {
    let mut d = Deployment::new(keys, db);
    d.serve();
    let certs = d.path("certs");
    let (serial, cert) = d.issue_citizen("citizen-signature", &csr(d.dir.path(), "sig", P256), "sig.pem");
    let (_, other) = d.issue_citizen("citizen-signature", &csr(d.dir.path(), "other", P256), "other.pem");
    let crl_url = format!("{}/crl/citizen-signing-ca.crl", d.base);
    let ocsp = |cert: &str| d.ocsp(cert, &["-resp_text"]);

    // Before: good everywhere.
    let (code, crl) = d.fetch(&crl_url);
    assert_eq!(code, 200);
    std::fs::write(d.path("before.crl"), &crl).expect("write");
    let o = verify(&d, &cert, "citizen-signing-ca", Some(&d.path("before.crl")));
    assert!(o.status.success(), "verify -crl_check before revocation: {}", stdout(&o));
    let o = openssl(d.dir.path(), &["crl", "-inform", "DER", "-in", "before.crl", "-noout", "-verify", "-CAfile", p(&certs.join("citizen-signing-ca.pem"))]);
    assert!(stdout(&o).contains("verify OK"), "openssl crl -verify: {}", stdout(&o));
    let answer = ocsp("sig.pem");
    assert!(answer.contains("Response verify OK") && answer.contains("sig.pem: good"), "{answer}");
    assert!(answer.contains("OCSP Nonce"), "the nonce is echoed: {answer}");

    // Suspension shows at once, and so does its release.
    d.ok(&["ca", "revoke", "--serial", &serial, "--reason", "certificateHold"]);
    let answer = ocsp("sig.pem");
    assert!(answer.contains("sig.pem: revoked") && answer.contains("Reason: certificateHold"), "{answer}");
    d.ok(&["ca", "release", "--serial", &serial]);
    assert!(ocsp("sig.pem").contains("sig.pem: good"));

    // Revocation: OCSP says revoked with reason and time, the next CRL lists it.
    d.ok(&["ca", "revoke", "--serial", &serial, "--reason", "keyCompromise"]);
    let answer = ocsp("sig.pem");
    assert!(answer.contains("Response verify OK") && answer.contains("sig.pem: revoked"), "{answer}");
    assert!(answer.contains("Reason: keyCompromise") && answer.contains("Revocation Time:"), "{answer}");
    assert!(ocsp("other.pem").contains("other.pem: good"), "other certificates stay good");
    let (code, crl) = d.fetch(&crl_url);
    assert_eq!(code, 200);
    std::fs::write(d.path("after.crl"), &crl).expect("write");
    let o = verify(&d, &cert, "citizen-signing-ca", Some(&d.path("after.crl")));
    assert!(!o.status.success() && stdout(&o).contains("certificate revoked"), "verify -crl_check after revocation: {}", stdout(&o));
    let o = verify(&d, &other, "citizen-signing-ca", Some(&d.path("after.crl")));
    assert!(o.status.success(), "{}", stdout(&o));
    let findings = pkilint("lint_crl", &["-t", "CRL", "-p", "PKIX"], &d.path("after.crl"));
    assert!(findings.is_empty(), "pkilint CRL: {findings:#?}");
    // The root's ARL, as served.
    let (code, arl) = d.fetch(&format!("{}/crl/root.crl", d.base));
    assert_eq!(code, 200);
    std::fs::write(d.path("root.crl"), &arl).expect("write");
    let o = openssl(d.dir.path(), &["crl", "-inform", "DER", "-in", "root.crl", "-noout", "-verify", "-CAfile", p(&certs.join("root.pem"))]);
    assert!(stdout(&o).contains("verify OK"), "{}", stdout(&o));
    let findings = pkilint("lint_crl", &["-t", "ARL", "-p", "PKIX"], &d.path("root.crl"));
    assert!(findings.is_empty(), "pkilint ARL: {findings:#?}");

    // Every step is an entry of the audit log, one chain: the ceremony, the issuance, the
    // hold and its release, the revocation, the CRLs.
    let data = d.data.display().to_string();
    let exported = d.ok(&["audit", "export", "--data", &data]);
    for event in [
        "ceremony.key_generated",
        "ceremony.recorded",
        "certificate.issued",
        "certificate.suspended",
        "certificate.released",
        "certificate.revoked",
        "crl.published",
    ] {
        assert!(exported.contains(&format!("\"event\":\"{event}\"")), "{event} in the audit log:\n{exported}");
    }
    let verified = d.ok(&["audit", "verify", "--data", &data]);
    assert!(verified.starts_with("The audit log is intact: "), "{verified}");

    // Unknown serials are unknown.
    let o = openssl(
        d.dir.path(),
        &[
            "ocsp",
            "-issuer",
            p(&certs.join("citizen-signing-ca.pem")),
            "-serial",
            "0x4242424242424242",
            "-url",
            &format!("http://127.0.0.1:{}/ocsp", d.port),
            "-CAfile",
            p(&certs.join("root.pem")),
            "-respout",
            "unknown.der",
        ],
    );
    assert!(stdout(&o).contains("0x4242424242424242: unknown"), "{}", stdout(&o));

    // The OCSP responses lint clean: good, revoked, unknown.
    let issuer_pem = certs.join("citizen-signing-ca.pem");
    for (serial_arg, name) in [(None, "revoked.der"), (Some("0x4242424242424242"), "unknown2.der")] {
        let mut args = vec!["ocsp", "-issuer", p(&issuer_pem), "-url"];
        let url = format!("http://127.0.0.1:{}/ocsp", d.port);
        args.push(&url);
        match serial_arg {
            Some(s) => args.extend(["-serial", s]),
            None => args.extend(["-cert", "sig.pem"]),
        }
        args.extend(["-respout", name, "-noverify"]);
        assert!(openssl(d.dir.path(), &args).status.success());
        let findings = pkilint("lint_ocsp_response", &[], &d.path(name));
        assert!(findings.is_empty(), "pkilint OCSP {name}: {findings:#?}");
    }
    let o = openssl(
        d.dir.path(),
        &[
            "ocsp",
            "-issuer",
            p(&certs.join("citizen-signing-ca.pem")),
            "-cert",
            "other.pem",
            "-url",
            &format!("http://127.0.0.1:{}/ocsp", d.port),
            "-respout",
            "good.der",
            "-noverify",
        ],
    );
    assert!(o.status.success());
    let findings = pkilint("lint_ocsp_response", &[], &d.path("good.der"));
    assert!(findings.is_empty(), "pkilint OCSP good: {findings:#?}");

    // RFC 6960 GET: base64 of the request in the path.
    let o = openssl(d.dir.path(), &["ocsp", "-issuer", p(&certs.join("citizen-signing-ca.pem")), "-cert", "other.pem", "-no_nonce", "-reqout", "req.der"]);
    assert!(o.status.success());
    let o = openssl(d.dir.path(), &["base64", "-A", "-in", "req.der"]);
    let b64 = String::from_utf8_lossy(&o.stdout).trim().replace('+', "%2B").replace('/', "%2F").replace('=', "%3D");
    let (code, body) = d.fetch(&format!("{}/ocsp/{b64}", d.base));
    assert_eq!(code, 200);
    std::fs::write(d.path("get.der"), body).expect("write");
    let o = openssl(
        d.dir.path(),
        &["ocsp", "-respin", "get.der", "-issuer", p(&certs.join("citizen-signing-ca.pem")), "-cert", "other.pem", "-CAfile", p(&certs.join("root.pem"))],
    );
    assert!(stdout(&o).contains("other.pem: good"), "{}", stdout(&o));
}

fn urls_in_certificates_are_served(keys: Keys, db: Db) {
    let mut d = Deployment::new(keys, db);
    d.serve();
    let (_, cert) = d.issue_citizen("citizen-authentication", &csr(d.dir.path(), "auth", P256), "auth.pem");
    let text = stdout(&openssl(d.dir.path(), &["x509", "-in", p(&cert), "-noout", "-text"]));
    let urls: Vec<&str> = text.split_whitespace().filter_map(|w| w.strip_prefix("URI:")).collect();
    assert_eq!(urls.len(), 3, "CRL DP, OCSP and caIssuers: {text}");
    for url in urls {
        assert!(url.starts_with(&d.base), "{url} is not under {}", d.base);
        let (code, body) = d.fetch(url);
        if url.ends_with("/ocsp") {
            // A GET without a request in the path is no OCSP request.
            assert_eq!(code, 405, "{url}");
        } else {
            assert_eq!(code, 200, "{url}");
            assert_eq!(body.first(), Some(&0x30), "{url} serves DER");
        }
    }
    let (code, ca) = d.fetch(&format!("{}/ca/citizen-authentication-ca.crt", d.base));
    assert_eq!(code, 200);
    std::fs::write(d.path("issuer.der"), ca).expect("write");
    let o = openssl(d.dir.path(), &["x509", "-inform", "DER", "-in", "issuer.der", "-noout", "-subject"]);
    assert!(stdout(&o).contains("Hawiya Citizen Authentication CA"), "{}", stdout(&o));
    assert_eq!(d.fetch(&format!("{}/ca/nobody.crt", d.base)).0, 404);
    assert_eq!(d.fetch(&format!("{}/crl/nobody.crl", d.base)).0, 404);
}

/// `hawiya keys renew-ca`: both generations chain to the root and lint clean, the old one
/// answers OCSP and publishes its CRL for what it issued, new issuance chains to the new one
/// at URLs of its own, and refusals change nothing.
fn a_renewed_ca_serves_both_generations(keys: Keys, db: Db) {
    let mut d = Deployment::new(keys, db);
    let (old_serial, old) = d.issue_citizen("citizen-authentication", &csr(d.dir.path(), "old", P256), "old.pem");
    let (_, kept) = d.issue_citizen("citizen-authentication", &csr(d.dir.path(), "kept", P256), "kept.pem");

    // Refusals: not an issuing CA; nothing changes.
    let before = (d.snapshot(), d.ok(&["ca", "certs", "--out", p(&d.path("before"))]));
    let e = d.fails(&["keys", "renew-ca", "--ca", "tsa"]);
    assert!(e.ends_with("cannot renew: \"tsa\" is not an issuing CA; renewable: citizen-authentication-ca, citizen-signing-ca, services-ca"), "{e}");
    assert_eq!((d.snapshot(), d.ok(&["ca", "certs", "--out", p(&d.path("before"))])), before);

    let said = d.ok(&["keys", "renew-ca", "--ca", "citizen-authentication-ca"]);
    assert!(said.contains("citizen-authentication-ca-2 \"Hawiya Citizen Authentication CA G2\""), "{said}");
    assert!(said.contains("citizen-authentication-ca keeps answering OCSP and publishing CRLs"), "{said}");
    // A second renewal before the new generation has issued anything: refused, nothing changes.
    let before = (d.snapshot(), d.ok(&["ca", "certs", "--out", p(&d.path("before"))]));
    let e = d.fails(&["keys", "renew-ca", "--ca", "citizen-authentication-ca"]);
    assert!(
        e.contains("cannot renew: citizen-authentication-ca-2 (renewed ")
            && e.ends_with("has issued no certificate yet; renewing it again would retire a key that never issued"),
        "{e}"
    );
    assert_eq!((d.snapshot(), d.ok(&["ca", "certs", "--out", p(&d.path("before"))])), before);

    // `ca certs` writes both generations and their responders.
    let written = d.ok(&["ca", "certs", "--out", p(&d.path("certs"))]);
    for name in
        ["citizen-authentication-ca.pem", "citizen-authentication-ca-ocsp.pem", "citizen-authentication-ca-2.pem", "citizen-authentication-ca-2-ocsp.pem"]
    {
        assert!(written.contains(name), "{name}: {written}");
    }
    let certs = d.path("certs");
    let (new_serial, new) = d.issue_citizen("citizen-authentication", &csr(d.dir.path(), "new", P256), "new.pem");
    let listed = d.ok(&["ca", "list", "--issuer", "citizen-authentication-ca-2"]);
    assert!(listed.contains(&new_serial) && !listed.contains(&old_serial), "{listed}");

    // Both CA certificates and their responders chain to the root and lint clean; the new
    // one is named apart.
    for (name, issuer) in [
        ("citizen-authentication-ca", None),
        ("citizen-authentication-ca-2", None),
        ("citizen-authentication-ca-ocsp", Some("citizen-authentication-ca")),
        ("citizen-authentication-ca-2-ocsp", Some("citizen-authentication-ca-2")),
    ] {
        let cert = certs.join(format!("{name}.pem"));
        let o = match issuer {
            Some(issuer) => verify(&d, &cert, issuer, None),
            None => openssl(d.dir.path(), &["verify", "-CAfile", p(&certs.join("root.pem")), p(&cert)]),
        };
        assert!(o.status.success(), "openssl verify {name}: {}", stdout(&o));
        let findings = pkilint("lint_pkix_cert", &[], &cert);
        assert!(findings.is_empty(), "pkilint PKIX findings for {name}: {findings:#?}");
    }
    let subject = stdout(&openssl(d.dir.path(), &["x509", "-in", p(&certs.join("citizen-authentication-ca-2.pem")), "-noout", "-subject"]));
    assert!(subject.contains("CN=Hawiya Citizen Authentication CA G2") || subject.contains("CN = Hawiya Citizen Authentication CA G2"), "{subject}");

    // A citizen certificate of each generation chains to its own CA only, and lints clean.
    for (cert, issuer, other) in
        [(&old, "citizen-authentication-ca", "citizen-authentication-ca-2"), (&new, "citizen-authentication-ca-2", "citizen-authentication-ca")]
    {
        let o = verify(&d, cert, issuer, None);
        assert!(o.status.success(), "openssl verify {} under {issuer}: {}", cert.display(), stdout(&o));
        let o = verify(&d, cert, other, None);
        assert!(!o.status.success(), "{} must not chain to {other}", cert.display());
        let findings = pkilint("lint_etsi_cert", &["-t", "NCP-NATURAL-PERSON-CERTIFICATE"], cert);
        assert!(findings.is_empty(), "pkilint ETSI {}: {findings:#?}", cert.display());
        let findings = pkilint("lint_pkix_cert", &[], cert);
        assert!(findings.is_empty(), "pkilint PKIX {}: {findings:#?}", cert.display());
    }
    // The new certificate points at the new generation's own URLs.
    let text = stdout(&openssl(d.dir.path(), &["x509", "-in", p(&new), "-noout", "-text"]));
    assert!(text.contains(&format!("URI:{}/crl/citizen-authentication-ca-2.crl", d.base)), "{text}");
    assert!(text.contains(&format!("CA Issuers - URI:{}/ca/citizen-authentication-ca-2.crt", d.base)), "{text}");

    // The server (started after the renewal) answers for both generations.
    d.serve();
    d.ok(&["ca", "revoke", "--serial", &old_serial, "--reason", "keyCompromise"]);
    let root = certs.join("root.pem");
    let ocsp = |cert: &Path, issuer: &str| {
        let issuer = certs.join(format!("{issuer}.pem"));
        let args = [
            "ocsp",
            "-issuer",
            p(&issuer),
            "-cert",
            p(cert),
            "-url",
            &format!("http://127.0.0.1:{}/ocsp", d.port),
            "-header",
            &format!("Host={HOST}:{}", d.port),
            "-CAfile",
            p(&root),
            "-nonce",
        ];
        stdout(&openssl(d.dir.path(), &args))
    };
    let answer = ocsp(&old, "citizen-authentication-ca");
    assert!(answer.contains("Response verify OK") && answer.contains("old.pem: revoked"), "old generation, revoked: {answer}");
    let answer = ocsp(&kept, "citizen-authentication-ca");
    assert!(answer.contains("Response verify OK") && answer.contains("kept.pem: good"), "old generation, good: {answer}");
    let answer = ocsp(&new, "citizen-authentication-ca-2");
    assert!(answer.contains("Response verify OK") && answer.contains("new.pem: good"), "new generation: {answer}");

    // Both CRLs are published at their own URLs, verify under their own CA, and list what
    // each revoked.
    for (name, cert, revoked) in [("citizen-authentication-ca", &old, true), ("citizen-authentication-ca-2", &new, false)] {
        let (code, crl) = d.fetch(&format!("{}/crl/{name}.crl", d.base));
        assert_eq!(code, 200, "{name}.crl");
        let file = d.path(&format!("{name}.crl"));
        std::fs::write(&file, &crl).expect("write");
        let o = openssl(d.dir.path(), &["crl", "-inform", "DER", "-in", p(&file), "-noout", "-verify", "-CAfile", p(&certs.join(format!("{name}.pem")))]);
        assert!(stdout(&o).contains("verify OK"), "openssl crl -verify {name}: {}", stdout(&o));
        let findings = pkilint("lint_crl", &["-t", "CRL", "-p", "PKIX"], &file);
        assert!(findings.is_empty(), "pkilint CRL {name}: {findings:#?}");
        let o = verify(&d, cert, name, Some(&file));
        assert_eq!(!o.status.success() && stdout(&o).contains("certificate revoked"), revoked, "verify -crl_check under {name}: {}", stdout(&o));
        let (code, served) = d.fetch(&format!("{}/ca/{name}.crt", d.base));
        assert_eq!(code, 200);
        let pem = std::fs::read_to_string(certs.join(format!("{name}.pem"))).expect("pem");
        let (_, der) = der::pem::decode_vec(pem.as_bytes()).expect("PEM");
        assert_eq!(served, der, "/ca/{name}.crt serves the certificate");
    }

    let exported = d.ok(&["audit", "export", "--data", &d.data.display().to_string()]);
    assert!(exported.contains("\"event\":\"ca.renewed\""), "ca.renewed in the audit log:\n{exported}");
}

fn bad_input_is_refused_and_changes_nothing(keys: Keys, db: Db) {
    let d = Deployment::new(keys, db);
    let dir = d.dir.path();
    let good = csr(dir, "good", P256);
    let (serial, _) = d.issue_citizen("citizen-authentication", &good, "first.pem");
    d.ok(&["ca", "revoke", "--serial", &serial, "--reason", "superseded"]);
    let before = d.snapshot();
    let citizen = ["--given-name", "Layla", "--surname", "Haddad", "--national-id", "9861234567", "--out"];
    let issue = |profile: &str, csr: &Path, out: &str| -> String {
        let mut args = vec!["ca", "issue", "--profile", profile, "--csr", p(csr)];
        args.extend(citizen);
        args.push(out);
        d.fails(&args)
    };

    // A request whose signature does not verify: flip a byte of the signature.
    let mut der = openssl(dir, &["req", "-in", p(&good), "-outform", "DER"]).stdout;
    let last = der.len() - 3;
    der[last] ^= 0x01;
    std::fs::write(d.path("tampered.der"), &der).expect("write");
    let e = issue("citizen-authentication", &d.path("tampered.der"), "t.pem");
    assert!(e.contains("signature does not verify"), "{e}");
    // Too weak, and of a type the profile does not allow.
    let weak = csr(dir, "weak", &["-newkey", "rsa:1024"]);
    let e = issue("citizen-authentication", &weak, "w.pem");
    assert!(e.contains("RSA-1024"), "{e}");
    let ed = csr(dir, "ed", &["-newkey", "ed25519"]);
    let e = issue("citizen-signature", &ed, "e.pem");
    assert!(e.contains("does not allow ed25519"), "{e}");
    let rsa2048 = csr(dir, "rsa2048", &["-newkey", "rsa:2048"]);
    let e = issue("citizen-signature", &rsa2048, "r.pem");
    assert!(e.contains("does not allow rsa-2048"), "{e}");
    // Unknown profile; a CA profile; malformed PEM; an empty file.
    assert!(issue("mayor", &good, "m.pem").contains("unknown profile \"mayor\""));
    assert!(issue("root-ca", &good, "m.pem").contains("cannot be issued"));
    std::fs::write(d.path("bad.pem"), "-----BEGIN CERTIFICATE REQUEST-----\nnot base64!\n-----END CERTIFICATE REQUEST-----\n").expect("write");
    assert!(issue("citizen-authentication", &d.path("bad.pem"), "b.pem").contains("malformed certificate request"));
    std::fs::write(d.path("empty.csr"), "").expect("write");
    assert!(issue("citizen-authentication", &d.path("empty.csr"), "b.pem").contains("malformed certificate request"));
    // A bad identity.
    let e = d.fails(&[
        "ca",
        "issue",
        "--profile",
        "citizen-authentication",
        "--csr",
        p(&good),
        "--given-name",
        "Layla",
        "--surname",
        "Haddad",
        "--national-id",
        "98-61",
        "--out",
        "x.pem",
    ]);
    assert!(e.contains("national id"), "{e}");
    let e = d.fails(&["ca", "issue", "--profile", "citizen-authentication", "--csr", p(&good), "--given-name", "Layla", "--out", "x.pem"]);
    assert!(e.contains("--surname"), "{e}");
    // Revocation of unknown, already revoked, malformed; an unknown reason; release of a good one.
    assert!(d.fails(&["ca", "revoke", "--serial", "4242424242424242", "--reason", "keyCompromise"]).contains("no certificate with serial number"));
    assert!(d.fails(&["ca", "revoke", "--serial", &serial, "--reason", "keyCompromise"]).contains("already revoked (superseded)"));
    assert!(d.fails(&["ca", "revoke", "--serial", "xyz", "--reason", "keyCompromise"]).contains("--serial"));
    assert!(d.fails(&["ca", "revoke", "--serial", &serial, "--reason", "removeFromCRL"]).contains("--reason"));
    assert!(d.fails(&["ca", "release", "--serial", &serial]).contains("not on hold"));
    assert!(d.fails(&["ca", "crl", "--ca", "nobody", "--out", "x.crl"]).contains("unknown authority"));
    // And a second ceremony.
    assert!(d.fails(&["ca", "init"]).contains("already holds a CA hierarchy"));

    assert_eq!(d.snapshot(), before, "a refused command changed the store");
    for f in ["t.pem", "w.pem", "e.pem", "r.pem", "m.pem", "b.pem", "x.pem", "x.crl"] {
        assert!(!d.path(f).exists(), "{f} was written by a refused command");
    }
}

fn killed_issuers_leave_only_whole_records(keys: Keys, db: Db) {
    use std::os::unix::process::ExitStatusExt;
    use std::process::Stdio;
    use std::time::Instant;
    let d = Deployment::new(keys, db);
    let request = csr(d.dir.path(), "req", P256);
    let before: usize = d.snapshot().lines().count();
    let issue = |out: &Path| {
        d.command(&[
            "ca",
            "issue",
            "--profile",
            "citizen-authentication",
            "--csr",
            p(&request),
            "--given-name",
            "Layla",
            "--surname",
            "Haddad",
            "--national-id",
            "9861234567",
            "--out",
            p(out),
        ])
    };
    // How long one issuance takes, start to exit, on this machine and backend.
    let started = Instant::now();
    let first = d.path("k-first.pem");
    assert!(issue(&first).stdout(Stdio::null()).status().expect("issue").success());
    let took = started.elapsed();
    // Issuers are killed at delays spread evenly from 0 to three times that: the first while
    // they start, then while they sign, commit and write, the last after they finished. They
    // run in lanes of 4 concurrent processes.
    //
    // On SoftHSM2 each issuer gets its own copy of the token (the same keys): SoftHSM2's file
    // object store rewrites the token file as processes log in, and neither survives
    // concurrent processes (SoftHSMv2 issue 757, "Token integrity check failed") nor a
    // process killed while writing it (the next one finds "no token"). A real HSM is a
    // device that outlives its clients; what this test is about is the store and the files.
    const ISSUERS: usize = 24;
    let delay = |i: usize| took * 3 * i as u32 / ISSUERS as u32;
    let token_copy = |i: usize| {
        let dir = d.path(&format!("softhsm-{i}"));
        let out = std::process::Command::new("cp").arg("-r").arg(d.dir.path().join("softhsm/tokens")).arg(&dir).output().expect("cp");
        assert!(out.status.success(), "copying the token: {}", String::from_utf8_lossy(&out.stderr));
        let conf = d.path(&format!("softhsm-{i}.conf"));
        std::fs::write(&conf, format!("directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n", dir.display())).expect("conf");
        conf
    };
    let (mut killed, mut finished) = (0, 1);
    for lane in (0..ISSUERS).collect::<Vec<_>>().chunks(4) {
        let mut commands = Vec::new();
        for &i in lane {
            let mut command = issue(&d.path(&format!("k{i}.pem")));
            if keys == Keys::Pkcs11 {
                command.env("SOFTHSM2_CONF", token_copy(i));
            }
            commands.push((i, command));
        }
        let started = Instant::now();
        let mut children = Vec::new();
        for (i, mut command) in commands {
            let err = std::fs::File::create(d.path(&format!("k{i}.err"))).expect("stderr file");
            children.push((i, command.stdout(Stdio::null()).stderr(err).spawn().expect("spawn")));
        }
        for (i, child) in &mut children {
            std::thread::sleep(delay(*i).saturating_sub(started.elapsed()));
            let _ = child.kill();
            let status = child.wait().expect("wait");
            if status.signal().is_some() {
                killed += 1;
                continue;
            }
            let err = std::fs::read_to_string(d.path(&format!("k{i}.err"))).unwrap_or_default();
            assert!(status.success(), "issuer {i} was not killed, yet failed: {err}");
            finished += 1;
        }
    }
    let list = d.snapshot();
    let records = list.lines().count() - before;
    let mut handed_out = 0;
    for out in std::iter::once(first).chain((0..ISSUERS).map(|i| d.path(&format!("k{i}.pem")))) {
        if !out.exists() {
            continue;
        }
        let serial = stdout(&openssl(d.dir.path(), &["x509", "-in", p(&out), "-noout", "-serial"]));
        let serial = serial.trim().trim_start_matches("serial=").to_lowercase();
        assert!(list.contains(&serial), "certificate {serial} was handed out but is not in the store");
        let o = verify(&d, &out, "citizen-authentication-ca", None);
        assert!(o.status.success(), "a handed-out certificate does not verify: {}", stdout(&o));
        handed_out += 1;
    }
    assert!(killed > 0, "no issuer was killed: the test did not test anything");
    assert!(handed_out >= finished, "{finished} issuers finished but only {handed_out} certificates were written");
    // Every record is a whole certificate (listing reads its DER, status and dates); a
    // process killed between its commit and writing its file leaves a valid, listed
    // certificate that was never delivered, never the reverse.
    assert!(records >= handed_out && records <= handed_out + killed, "{records} records for {handed_out} certificates handed out");
    eprintln!("one issuance took {took:?}; {killed} issuers killed, {finished} finished, {handed_out} certificates handed out, {records} recorded");
}

fn ceremony_refuses_to_run_twice(keys: Keys, db: Db) {
    let d = Deployment::new(keys, db);
    let before = d.snapshot();
    let e = d.fails(&["ca", "init", "--config", p(&d.path("ceremony.toml"))]);
    assert!(e.contains("already holds a CA hierarchy"), "{e}");
    assert_eq!(d.snapshot(), before);
}

/// Production's two URLs: the OpenID Connect issuer is https://, while certificates point at
/// the plain-http publication base (ETSI EN 319 412-2 GEN-4.3.11-4), as pkilint checks; an
/// https:// publication base is refused before anything is created.
#[test]
fn an_https_issuer_keeps_certificates_on_the_http_publication_base() {
    let refused = tempfile::tempdir().expect("tempdir");
    let data = refused.path().join("data");
    let out = hawiya_e2e::run(
        std::process::Command::new(hawiya_e2e::hawiya_bin())
            .args(["ca", "init", "--data", p(&data), "--base-url", "https://pki.hawiya.jo"])
            .env("HAWIYA_OPERATOR_SECRET", hawiya_e2e::OPERATOR_SECRET),
    );
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && e.lines().count() == 1, "{e}");
    assert!(e.contains("must be plain http://") && e.contains("ETSI EN 319 412-2 GEN-4.3.11-4"), "{e}");
    assert!(!data.exists(), "a refused ceremony creates nothing");

    let mut d = Deployment::new(Keys::Soft, Db::Sqlite);
    let issuer = "https://id.hawiya.jo";
    let e = d.fails(&["serve", "--issuer", "id.hawiya.jo"]);
    assert!(e.starts_with("error: --issuer: issuer \"id.hawiya.jo\" is not an https:// URL"), "{e}");
    d.set_env("HAWIYA_ISSUER", issuer);
    d.serve();
    let (code, discovery) = d.fetch(&format!("{}/.well-known/openid-configuration", d.base));
    assert_eq!(code, 200);
    let discovery: serde_json::Value = serde_json::from_slice(&discovery).expect("discovery");
    assert_eq!(discovery["issuer"], issuer);
    assert_eq!(discovery["token_endpoint"], format!("{issuer}/token"));
    let (_, index) = d.fetch(&format!("{}/", d.base));
    let index = String::from_utf8_lossy(&index);
    assert!(index.contains(&format!("{}/ocsp", d.base)) && index.contains(&format!("{issuer}/.well-known/openid-configuration")), "{index}");

    // Certificates from the CLI and from a device activated through the RA path.
    let (_, issued) = d.issue_citizen("citizen-signature", &csr(d.dir.path(), "sig", P256), "sig.pem");
    d.ok_with_input(
        &[
            "citizen",
            "add",
            "--national-id",
            "9861234567",
            "--given-name-ar",
            "ليلى",
            "--family-name-ar",
            "حداد",
            "--given-name-en",
            "Layla",
            "--family-name-en",
            "Haddad",
        ],
        "a good long password 2026\n",
    );
    let enrolled = d.ok(&["citizen", "enroll", "--national-id", "9861234567", "--custody", "software", "--officer", "officer-amal"]);
    let code = enrolled.lines().find_map(|l| l.strip_prefix("Activation code for ")).and_then(|l| l.split_whitespace().last()).expect("code");
    let device = d.path("phone");
    let server = format!("http://127.0.0.1:{}", d.port);
    d.ok_with_input(&["device", "activate", "--dir", p(&device), "--server", &server, "--code", code, "--pin-stdin"], "1234\n12345\n");
    for (cert, etsi_type) in [
        (issued, "QCP-N-QSCD-NON-EIDAS-FINAL-CERTIFICATE"),
        (device.join("authentication.pem"), "NCP-NATURAL-PERSON-CERTIFICATE"),
        // pkilint knows no QCP-n (without QSCD) type; NCP is the requirements it builds on.
        (device.join("signature.pem"), "NCP-NATURAL-PERSON-CERTIFICATE"),
    ] {
        let text = stdout(&openssl(d.dir.path(), &["x509", "-in", p(&cert), "-noout", "-text"]));
        let urls: Vec<&str> = text.split_whitespace().filter_map(|w| w.strip_prefix("URI:")).collect();
        assert_eq!(urls.len(), 3, "CRL DP, OCSP and caIssuers: {text}");
        for url in urls {
            assert!(url.starts_with(&format!("{}/", d.base)) && url.starts_with("http://"), "{url} is not under {}", d.base);
            assert_eq!(d.fetch(url).0, if url.ends_with("/ocsp") { 405 } else { 200 }, "{url}");
        }
        let findings = pkilint("lint_etsi_cert", &["-t", etsi_type], &cert);
        assert!(findings.is_empty(), "pkilint ETSI {etsi_type} {}: {findings:#?}", cert.display());
        let findings = pkilint("lint_pkix_cert", &[], &cert);
        assert!(findings.is_empty(), "pkilint PKIX {}: {findings:#?}", cert.display());
    }
}

/// The TSA at `/tsa` of a served deployment: OpenSSL's client and verifier and pyHanko's
/// accept its tokens with the national root as the only anchor; refusals are timestamp
/// replies OpenSSL reads, with the status and failure it names.
fn timestamps_verify_with_openssl_and_pyhanko(keys: Keys, db: Db) {
    let mut d = Deployment::new(keys, db);
    d.serve();
    let certs = d.path("certs");
    let url = format!("{}/tsa", d.base);
    std::fs::write(d.path("doc.txt"), "وثيقة رسمية — an official document\n").expect("write");
    let ts = |args: &[&str]| {
        let o = openssl(d.dir.path(), &[&["ts"], args].concat());
        assert!(o.status.success(), "openssl ts {args:?}: {}", String::from_utf8_lossy(&o.stderr));
        stdout(&o)
    };
    let reply_text = |reply: &[u8]| {
        std::fs::write(d.path("reply.tsr"), reply).expect("write");
        ts(&["-reply", "-in", "reply.tsr", "-text"])
    };

    // With certReq and a nonce (OpenSSL's defaults with -cert), over SHA-256 and SHA-512.
    for digest in ["-sha256", "-sha512"] {
        ts(&["-query", "-data", "doc.txt", digest, "-cert", "-out", "query.tsq"]);
        let (code, reply) = d.post(&url, "application/timestamp-query", "query.tsq");
        assert_eq!(code, 200);
        let text = reply_text(&reply);
        assert!(text.contains("Status: Granted.") && text.contains("Policy OID: 2.16.400.1.1.2.1") && text.contains("Nonce: 0x"), "{text}");
        assert!(text.contains("Accuracy: 0x01 seconds"), "{text}");
        let verified =
            ts(&["-verify", "-data", "doc.txt", "-in", "reply.tsr", "-CAfile", p(&certs.join("root.pem")), "-untrusted", p(&certs.join("services-ca.pem"))]);
        assert!(verified.contains("Verification: OK"), "{verified}");
    }
    // Without certReq the token carries no certificate; the verifier is given it.
    ts(&["-query", "-data", "doc.txt", "-sha384", "-no_nonce", "-out", "bare.tsq"]);
    let (_, reply) = d.post(&url, "application/timestamp-query", "bare.tsq");
    std::fs::write(d.path("bare.tsr"), &reply).expect("write");
    let o = openssl(d.dir.path(), &["ts", "-verify", "-data", "doc.txt", "-in", "bare.tsr", "-CAfile", p(&certs.join("root.pem"))]);
    assert!(!o.status.success(), "without the TSA certificate the token cannot verify");
    let chain =
        format!("{}\n{}", std::fs::read_to_string(certs.join("services-ca.pem")).expect("pem"), std::fs::read_to_string(certs.join("tsa.pem")).expect("pem"));
    std::fs::write(d.path("untrusted.pem"), chain).expect("write");
    let verified = ts(&["-verify", "-data", "doc.txt", "-in", "bare.tsr", "-CAfile", p(&certs.join("root.pem")), "-untrusted", "untrusted.pem"]);
    assert!(verified.contains("Verification: OK"), "{verified}");
    // A token over another document does not verify.
    std::fs::write(d.path("other.txt"), "another document\n").expect("write");
    let o = openssl(
        d.dir.path(),
        &["ts", "-verify", "-data", "other.txt", "-in", "bare.tsr", "-CAfile", p(&certs.join("root.pem")), "-untrusted", "untrusted.pem"],
    );
    assert!(!o.status.success(), "a token verified over another document");

    // Refusals, as OpenSSL reads them.
    ts(&["-query", "-data", "doc.txt", "-sha1", "-out", "sha1.tsq"]);
    ts(&["-query", "-data", "doc.txt", "-sha256", "-tspolicy", "1.2.3.4", "-out", "policy.tsq"]);
    std::fs::write(d.path("garbage.tsq"), b"\x30\x03\x02\x01").expect("write");
    std::fs::write(d.path("huge.tsq"), vec![0x30; 64 * 1024]).expect("write");
    for (query, content_type, failure) in [
        ("sha1.tsq", "application/timestamp-query", "unrecognized or unsupported algorithm identifier"),
        ("policy.tsq", "application/timestamp-query", "requested TSA policy is not supported"),
        ("garbage.tsq", "application/timestamp-query", "the data submitted has the wrong format"),
        ("huge.tsq", "application/timestamp-query", "transaction not permitted or supported"),
        ("query.tsq", "text/plain", "transaction not permitted or supported"),
    ] {
        let (code, reply) = d.post(&url, content_type, query);
        assert_eq!(code, 200, "{query}: never an HTTP error");
        let text = reply_text(&reply);
        assert!(text.contains("Status: Rejected.") && text.contains(failure), "{query}: {text}");
    }

    // pyHanko's own client asks, and its validator accepts the token.
    let o = hawiya_e2e::run(
        std::process::Command::new("python3")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/pyhanko_timestamp.py"))
            .arg(format!("http://127.0.0.1:{}/tsa", d.port))
            .arg(certs.join("root.pem"))
            .arg(certs.join("services-ca.pem")),
    );
    let said = stdout(&o);
    assert!(o.status.success() && said.starts_with("INTACT:TRUSTED 2.16.400.1.1.2.1 "), "pyHanko: {said} {}", String::from_utf8_lossy(&o.stderr));
}

macro_rules! scenarios {
    ($($module:ident: $keys:expr, $db:expr;)*) => {$(
        mod $module {
            use super::*;
            #[test]
            fn issues_verifiable_lint_clean_certificates() { super::issues_verifiable_lint_clean_certificates($keys, $db) }
            #[test]
            fn revocation_reaches_crl_and_ocsp() { super::revocation_reaches_crl_and_ocsp($keys, $db) }
            #[test]
            fn urls_in_certificates_are_served() { super::urls_in_certificates_are_served($keys, $db) }
            #[test]
            fn a_renewed_ca_serves_both_generations() { super::a_renewed_ca_serves_both_generations($keys, $db) }
            #[test]
            fn bad_input_is_refused_and_changes_nothing() { super::bad_input_is_refused_and_changes_nothing($keys, $db) }
            #[test]
            fn killed_issuers_leave_only_whole_records() { super::killed_issuers_leave_only_whole_records($keys, $db) }
            #[test]
            fn ceremony_refuses_to_run_twice() { super::ceremony_refuses_to_run_twice($keys, $db) }
            #[test]
            fn timestamps_verify_with_openssl_and_pyhanko() { super::timestamps_verify_with_openssl_and_pyhanko($keys, $db) }
        }
    )*};
}

scenarios! {
    soft_sqlite: Keys::Soft, Db::Sqlite;
    pkcs11_postgres: Keys::Pkcs11, Db::Postgres;
    soft_postgres: Keys::Soft, Db::Postgres;
    pkcs11_sqlite: Keys::Pkcs11, Db::Sqlite;
}
