use std::path::Path;

use super::*;

#[test]
fn shipped_policies_parse() {
    let p = Policies::shipped().expect("shipped policies are valid");
    let names: Vec<_> = p.levels().iter().map(|l| l.level.name()).collect();
    assert_eq!(names, ["low", "substantial", "high"]);
    let low = &p.level("low").expect("low").level;
    let high = &p.level_for_acr("http://eidas.europa.eu/LoA/high").expect("eIDAS URI").level;
    assert!(low < high);
    assert_eq!(p.level_for_acr("substantial").expect("short name").level.name(), "substantial");
    assert_eq!(p.methods().iter().find(|m| m.id == "password-totp").expect("method").level.name(), "substantial");
    let sig = p.profile("citizen-signature").expect("profile");
    assert_eq!(sig.qc_statements.as_ref().map(|q| q.qc_type), Some(Some(QcType::Esign)));
    assert_eq!(sig.certificate_policies[0].to_string(), "0.4.0.194112.1.2");
    // NSS (pdfsig) validates signers as email signers: emailProtection, not critical, in both.
    for name in ["citizen-signature", "citizen-signature-soft"] {
        let s = p.profile(name).expect("profile");
        assert_eq!((s.extended_key_usage.as_slice(), s.extended_key_usage_critical), (&[ExtendedKeyUsage::EmailProtection][..], false), "{name}");
    }
    assert!(p.profile("root-ca").expect("root").is_ca());
    assert_eq!(p.service("land-registry").expect("service").min_level.name(), "substantial");
}

#[test]
fn the_repository_directory_matches_the_embedded_copy() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let loaded = Policies::load(dir).expect("directory loads");
    let shipped = Policies::shipped().expect("embedded");
    assert_eq!(loaded.profiles().count(), shipped.profiles().count());
    assert_eq!(loaded.services().len(), shipped.services().len());
}

fn copy_shipped() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("tempdir");
    for (name, text) in SHIPPED {
        let path = tmp.path().join(name);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }
    tmp
}

fn errors_after(file: &str, from: &str, to: &str) -> Vec<String> {
    let tmp = copy_shipped();
    let path = tmp.path().join(file);
    let text = std::fs::read_to_string(&path).expect("read");
    assert!(text.contains(from), "{from:?} not in {file}");
    std::fs::write(&path, text.replacen(from, to, 1)).expect("write");
    let errors = Policies::load(tmp.path()).expect_err("must fail");
    errors.0.iter().map(|e| e.to_string().replace(&tmp.path().display().to_string(), "")).collect()
}

#[test]
fn errors_name_file_line_and_problem() {
    let e = errors_after("methods.toml", "level = \"substantial\"", "level = \"medium\"");
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].starts_with("/methods.toml:18:"), "{e:?}");
    assert!(e[0].contains("unknown level \"medium\""), "{e:?}");

    let e = errors_after("methods.toml", "certificate_policy = \"2.16.400.1.1.1.3\"", "certificate_policy = \"2.16.400.1.1.1.2\"");
    assert_eq!(e, ["methods.toml: method \"smart-id-soft\": no client-authentication certificate profile carries policy 2.16.400.1.1.1.2"], "{e:?}");
    let e = errors_after("methods.toml", "certificate_policy = \"2.16.400.1.1.1.3\"", "certificate_policy = \"2.16.400.1.1.1.1\"");
    assert!(e[0].contains("certificate policy 2.16.400.1.1.1.1 names two methods"), "{e:?}");

    let e = errors_after("profiles/citizen-signature.toml", "validity_days", "validity_dayz");
    assert!(e[0].starts_with("/profiles/citizen-signature.toml:"), "{e:?}");
    assert!(e[0].contains("validity_dayz"), "{e:?}");

    let e = errors_after("profiles/citizen-authentication.toml", "\"ec-p256\",", "\"ec-p255\",");
    assert!(e[0].contains(":14:17:") && e[0].contains("ec-p255"), "{e:?}");

    let e = errors_after("services/civil-status.toml", "version = 1", "version = 2");
    assert!(e[0].contains(":2:") && e[0].contains("unsupported version 2"), "{e:?}");

    let e = errors_after("services/civil-status.toml", "\"birthdate\"]", "\"birthdate\", \"national_id\"]");
    assert!(e[0].contains("national_id = true"), "{e:?}");

    let e = errors_after("profiles/citizen-authentication.toml", "\"2.16.400.1.1.1.1\"", "\"not-an-oid\"");
    assert!(e[0].contains("not an object identifier"), "{e:?}");

    let e = errors_after("profiles/citizen-signature.toml", "issuer = \"citizen-signing-ca\"", "issuer = \"nobody\"");
    assert!(e[0].contains("issuer \"nobody\" has no profile"), "{e:?}");

    let e = errors_after("assurance.toml", "acr = [\"high\"", "acr = [\"low\"");
    assert!(e[0].contains("names two levels"), "{e:?}");

    let e = errors_after("services/civil-status.toml", "client_id = \"civil-status\"", "client_id = \"civil status\"");
    assert!(e[0].contains(":3:") && e[0].contains("a client id is 1 to 64 characters"), "{e:?}");

    let e = errors_after("services/civil-status.toml", "min_level", "resource_servers = [\"a/b\"]\nmin_level");
    assert!(e[0].contains("a client id is 1 to 64 characters"), "{e:?}");
}

#[test]
fn every_problem_is_reported_not_just_the_first() {
    let tmp = copy_shipped();
    std::fs::write(tmp.path().join("services/bad.toml"), "version = 1\nclient_id = 3\n").expect("write");
    std::fs::write(tmp.path().join("profiles/worse.toml"), "this is not toml").expect("write");
    let errors = Policies::load(tmp.path()).expect_err("must fail");
    assert_eq!(errors.0.len(), 2, "{errors}");
}

#[test]
fn the_timestamp_policy_is_read_and_checked() {
    let p = Policies::shipped().expect("shipped");
    let tsa = p.timestamping();
    assert_eq!(tsa.policy.to_string(), "2.16.400.1.1.2.1");
    assert_eq!(tsa.accuracy, std::time::Duration::from_secs(1));
    assert_eq!(tsa.hash_algorithms, ["sha256", "sha384", "sha512"]);
    // The TSA certificate states the policy its tokens are issued under.
    assert!(p.profile("timestamping").expect("profile").certificate_policies.contains(&tsa.policy));

    let e = errors_after("tsa.toml", "[\"sha256\",", "[\"sha1\",");
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].starts_with("/tsa.toml:15:") && e[0].contains("unknown or refused hash algorithm \"sha1\""), "{e:?}");
    let e = errors_after("tsa.toml", "accuracy_seconds = 1", "accuracy_seconds = 0");
    assert!(e[0].contains("accuracy_seconds must be at least 1"), "{e:?}");
    let e = errors_after("tsa.toml", "policy = \"2.16.400.1.1.2.1\"", "policy = \"tsa-policy\"");
    assert!(e[0].contains("\"tsa-policy\" is not an object identifier"), "{e:?}");

    let tmp = copy_shipped();
    std::fs::remove_file(tmp.path().join("tsa.toml")).expect("remove");
    let errors = Policies::load(tmp.path()).expect_err("must fail");
    assert!(errors.0.iter().any(|e| e.to_string().contains("tsa.toml: cannot read")), "{errors:?}");
}

#[test]
fn the_signing_policy_is_read_and_checked() {
    let p = Policies::shipped().expect("shipped");
    assert_eq!(p.signing().min_level.name(), "high");
    assert_eq!(p.signing().max_document_bytes, 10 * 1024 * 1024);
    assert_eq!(p.signing().timeout, std::time::Duration::from_secs(120));
    let e = errors_after("signing.toml", "min_level = \"high\"", "min_level = \"highest\"");
    assert!(e[0].starts_with("/signing.toml:") && e[0].contains("unknown level \"highest\""), "{e:?}");
    let e = errors_after("signing.toml", "max_document_bytes = 10485760", "max_document_bytes = 0");
    assert!(e[0].contains("max_document_bytes must be between 1 and"), "{e:?}");
    assert_eq!(p.signing().max_hashes_per_authorization, 10);
    let e = errors_after("signing.toml", "max_hashes_per_authorization = 10", "max_hashes_per_authorization = 0");
    assert!(e[0].contains("max_hashes_per_authorization must be between 1 and 100"), "{e:?}");
}

#[test]
fn validation_policies_are_read_and_checked() {
    let p = Policies::shipped().expect("shipped");
    let default = p.default_validation_policy();
    assert_eq!((default.id.as_str(), default.revision, default.min_baseline), ("advanced", 1, BaselineLevel::B));
    let qualified = p.validation_policy("qualified").expect("qualified");
    assert_eq!((qualified.min_baseline, qualified.min_qualification, qualified.timestamp_required), (BaselineLevel::Lt, Qualification::Qualified, true));
    assert_eq!(qualified.signer_min_level.as_ref().map(AssuranceLevel::name), Some("high"));
    assert_eq!(p.service("notary").expect("notary").validation_policy.as_deref(), Some("qualified"));
    assert_eq!(p.service("civil-status").expect("civil status").validation_policy, None);
    // A signing certificate's policy gives its signatures the level of the same custody's login.
    let hardware = der::asn1::ObjectIdentifier::new_unwrap("2.16.400.1.1.1.2");
    let software = der::asn1::ObjectIdentifier::new_unwrap("2.16.400.1.1.1.4");
    assert_eq!(p.signature_method(&[hardware]).map(|m| m.level.name()), Some("high"));
    assert_eq!(p.signature_method(&[software]).map(|m| m.level.name()), Some("substantial"));
    assert!(p.signature_method(&[der::asn1::ObjectIdentifier::new_unwrap("2.16.400.1.1.1.1")]).is_none());
    let e = errors_after("methods.toml", "signature_policy = \"2.16.400.1.1.1.2\"", "signature_policy = \"2.16.400.1.1.1.9\"");
    assert!(e[0].contains("no signing (nonRepudiation) certificate profile carries policy 2.16.400.1.1.1.9"), "{e:?}");
    assert_eq!(BaselineLevel::Lta.suffix(), "LTA");
    assert_eq!(Qualification::AdvancedQc.report_name(), "AdESig-QC");

    // Algorithms: end dates, key sizes, and what is not listed.
    let y2016 = 1_451_606_400; // 2016-01-01T00:00:00Z
    assert_eq!(default.accepts(Algorithm::Sha1, None, y2016 - 1), Ok(()));
    assert_eq!(default.accepts(Algorithm::Sha1, None, y2016), Err(AlgorithmRefusal::Expired { until: y2016 }));
    assert_eq!(qualified.accepts(Algorithm::Sha1, None, 0), Err(AlgorithmRefusal::NotAccepted));
    assert_eq!(default.accepts(Algorithm::Rsa, Some(4096), i64::MAX), Ok(()));
    assert_eq!(default.accepts(Algorithm::Rsa, Some(2048), y2016), Ok(()));
    assert_eq!(default.accepts(Algorithm::Rsa, Some(1024), y2016), Ok(()));
    let y2019 = 1_546_300_800;
    assert_eq!(default.accepts(Algorithm::Rsa, Some(1024), y2019), Err(AlgorithmRefusal::Expired { until: y2019 }));
    assert_eq!(default.accepts(Algorithm::Rsa, Some(512), 0), Err(AlgorithmRefusal::KeyTooSmall { bits: 512, min_bits: 1024 }));
    assert_eq!(qualified.accepts(Algorithm::RsaPss, Some(2048), 0), Err(AlgorithmRefusal::KeyTooSmall { bits: 2048, min_bits: 3072 }));
    assert_eq!(qualified.accepts(Algorithm::EcdsaP256, None, i64::MAX), Ok(()));

    let e = errors_after("validation/qualified.toml", "min_baseline = \"B-LT\"", "min_baseline = \"B-XL\"");
    assert!(e[0].starts_with("/validation/qualified.toml:") && e[0].contains("B-XL"), "{e:?}");
    let e = errors_after("validation/qualified.toml", "timestamp_required = true", "timestamp_required = false");
    assert!(e[0].contains("a minimum baseline of B-T or higher means a timestamp is required"), "{e:?}");
    let e = errors_after("validation/qualified.toml", "signer_min_level = \"high\"", "signer_min_level = \"highest\"");
    assert!(e[0].contains("unknown level \"highest\""), "{e:?}");
    let e = errors_after("validation/qualified.toml", "name = \"rsa\"\nmin_bits = 2048", "name = \"rsa\"");
    assert!(e[0].contains("RSA needs min_bits"), "{e:?}");
    let e = errors_after("validation/qualified.toml", "name = \"ecdsa-p256\"", "name = \"ecdsa-p256\"\nuntil = 2030-02-30");
    assert!(e[0].contains("validation/qualified.toml:"), "{e:?}");
    let e = errors_after("validation/qualified.toml", "name = \"ecdsa-p256\"", "name = \"ecdsa-p255\"");
    assert!(e[0].contains("ecdsa-p255"), "{e:?}");
    let e = errors_after("validation/qualified.toml", "id = \"qualified\"", "id = \"qualifed\"");
    assert!(e[0].contains("must match its file name \"qualified\""), "{e:?}");
    let e = errors_after("validation/qualified.toml", "revision = 1", "revision = 1\ndefault = true");
    assert_eq!(e, ["validation/: more than one validation policy says `default = true`"], "{e:?}");
    let e = errors_after("services/notary.toml", "validation_policy = \"qualified\"", "validation_policy = \"qualifed\"");
    assert!(e[0].starts_with("/services/notary.toml:") && e[0].contains("unknown validation policy \"qualifed\" (known: advanced, qualified)"), "{e:?}");
}

#[test]
fn the_trust_list_names_authorities_by_certificate() {
    let p = Policies::shipped().expect("shipped");
    assert_eq!((p.trust_list().territory.as_str(), p.trust_list().own_hierarchy, p.trust_list().authorities.len()), ("JO", true, 0));

    // Another provider's root, in trust/ next to the list.
    let tmp = copy_shipped();
    std::fs::create_dir_all(tmp.path().join("trust")).expect("mkdir");
    let der = [0x30u8, 0x03, 0x02, 0x01, 0x01];
    let pem = der::pem::encode_string("CERTIFICATE", der::pem::LineEnding::LF, &der).expect("pem");
    std::fs::write(tmp.path().join("trust/tsp-root.pem"), &pem).expect("write");
    let list = std::fs::read_to_string(tmp.path().join("trust-list.toml")).expect("read");
    let entry =
        "\n[[authority]]\nname = { ar = \"مزوّد\", en = \"Provider\" }\nkind = \"root\"\ncertificate = \"trust/tsp-root.pem\"\nqualified_since = 2026-01-01\n";
    std::fs::write(tmp.path().join("trust-list.toml"), format!("{list}{entry}")).expect("write");
    let loaded = Policies::load(tmp.path()).expect("loads");
    let a = &loaded.trust_list().authorities[0];
    assert_eq!((a.kind, a.certificate.as_slice(), a.qualified_since, a.withdrawn), (AuthorityKind::Root, &der[..], Some(1_767_225_600), None));

    std::fs::write(tmp.path().join("trust-list.toml"), format!("{list}{}", entry.replace("tsp-root.pem", "missing.pem"))).expect("write");
    let e = Policies::load(tmp.path()).expect_err("must fail").to_string();
    assert!(e.contains("no certificate file \"trust/missing.pem\""), "{e}");
    std::fs::write(tmp.path().join("trust-list.toml"), format!("{list}{entry}withdrawn = 2025-01-01\n")).expect("write");
    let e = Policies::load(tmp.path()).expect_err("must fail").to_string();
    assert!(e.contains("withdrawn before it was qualified"), "{e}");
    std::fs::write(tmp.path().join("trust-list.toml"), list.replace("territory = \"JO\"", "territory = \"Jordan\"")).expect("write");
    let e = Policies::load(tmp.path()).expect_err("must fail").to_string();
    assert!(e.contains("not an ISO 3166 alpha-2 code"), "{e}");
}
