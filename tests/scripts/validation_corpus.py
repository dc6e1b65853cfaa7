"""A validation test corpus made by other tools than Hawiya, with a PKI that is not Hawiya's.

usage: validation_corpus.py OUTDIR

Makes, offline and in a few seconds, a PKI with the `cryptography` library (one root, the
only trust anchor; a signing CA; a TSA; signers good, revoked, expired, SHA-1-signed, and one
under another root), signed documents made by pyHanko (PAdES B-B, B-T, B-LT, B-LTA) and by
the OpenSSL command line (detached and enveloping CAdES, an RFC 3161 token), the bad cases
made from them, and OUTDIR/manifest.json: per file what it is and the verdict ETSI
EN 319 102-1 expects of a validator that trusts `pki/root.pem` only, fetches nothing and
validates at the current time. Where DSS or pyHanko is known to answer otherwise, the
manifest says which answer is right and why (`dss_expected`, `pyhanko_expected`).

Everything is deterministic except the keys (fresh each run) and the times, which are
relative to the moment the script runs (`now`): the revocation happened 30 days ago, the
expired certificate's validity ended a year ago, and so on. The manifest records the times.
"""

import asyncio
import datetime
import io
import json
import os
import subprocess
import sys

from asn1crypto import cms as a_cms
from asn1crypto import core as a_core
from asn1crypto import crl as a_crl
from asn1crypto import keys as a_keys
from asn1crypto import x509 as a_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import fields, signers
from pyhanko.sign.timestamps.dummy_client import DummyTimeStamper
from pyhanko.sign.validation.dss import DocumentSecurityStore
from pyhanko_certvalidator.registry import SimpleCertificateStore

DAY = datetime.timedelta(days=1)
YEAR = 365 * DAY

QC_STATEMENTS = "1.3.6.1.5.5.7.1.3"
QC_COMPLIANCE = "0.4.0.1862.1.1"
QC_SSCD = "0.4.0.1862.1.4"
QC_TYPE = "0.4.0.1862.1.6"
QC_TYPE_ESIGN = "0.4.0.1862.1.6.1"
QCP_N_QSCD = "0.4.0.194112.1.2"


def der_oid(dotted):
    return a_core.ObjectIdentifier(dotted).dump()


def der_seq(*parts):
    body = b"".join(parts)
    n = len(body)
    if n < 0x80:
        length = bytes([n])
    else:
        octets = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(octets)]) + octets
    return b"\x30" + length + body


def qc_statements():
    """QcCompliance, QcSSCD and QcType esign (ETSI EN 319 412-5), DER."""
    return der_seq(
        der_seq(der_oid(QC_COMPLIANCE)),
        der_seq(der_oid(QC_SSCD)),
        der_seq(der_oid(QC_TYPE), der_seq(der_oid(QC_TYPE_ESIGN))),
    )


def resign_sha1(cert, issuer_key):
    """The same certificate signed with sha1WithRSAEncryption (`cryptography` refuses to make
    one): the TBS's signature algorithm changed, then signed again with PKCS#1 v1.5 / SHA-1."""
    a = a_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))
    tbs = a["tbs_certificate"]
    algorithm = a_x509.SignedDigestAlgorithm({"algorithm": "sha1_rsa"})
    tbs["signature"] = algorithm
    tbs_der = tbs.dump(force=True)
    signature = issuer_key.sign(tbs_der, padding.PKCS1v15(), hashes.SHA1())
    der = a_x509.Certificate({"tbs_certificate": a_x509.TbsCertificate.load(tbs_der), "signature_algorithm": algorithm, "signature_value": signature}).dump()
    return x509.load_der_x509_certificate(der)


class Pki:
    """Certificates and CRLs of the corpus, in `cryptography` objects and in files."""

    def __init__(self, outdir, now):
        self.dir = os.path.join(outdir, "pki")
        os.makedirs(self.dir, exist_ok=True)
        self.now = now
        self.keys = {}
        self.certs = {}
        self.serial = 0x5A17_0000_0000_0000_0001

    def key(self, name):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.keys[name] = key
        with open(os.path.join(self.dir, f"{name}.key"), "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        return key

    def issue(self, name, subject, issuer, not_before, not_after, *, ca=False, eku=None, policies=(), qc=False, digest=None):
        key = self.key(name)
        self.serial += 1
        if issuer is None:
            issuer_name, issuer_key, issuer_ski = subject, key, None
        else:
            issuer_name, issuer_key = self.certs[issuer].subject, self.keys[issuer]
            issuer_ski = self.certs[issuer].extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        b = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer_name)
            .public_key(key.public_key())
            .serial_number(self.serial << 32 | int.from_bytes(os.urandom(4), "big"))
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        )
        if issuer_ski is not None:
            b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(issuer_ski), critical=False)
            # where the issuer's CRL would be published; nothing is ever fetched from it
            url = f"http://pki.corpus.invalid/{issuer}.crl"
            b = b.add_extension(x509.CRLDistributionPoints([x509.DistributionPoint([x509.UniformResourceIdentifier(url)], None, None, None)]), critical=False)
        if ca:
            usage = dict(digital_signature=False, content_commitment=False, key_cert_sign=True, crl_sign=True)
        elif eku == ExtendedKeyUsageOID.TIME_STAMPING:
            usage = dict(digital_signature=True, content_commitment=False, key_cert_sign=False, crl_sign=False)
        else:
            usage = dict(digital_signature=True, content_commitment=True, key_cert_sign=False, crl_sign=False)
        b = b.add_extension(
            x509.KeyUsage(key_encipherment=False, data_encipherment=False, key_agreement=False, encipher_only=False, decipher_only=False, **usage),
            critical=True,
        )
        if eku is not None:
            b = b.add_extension(x509.ExtendedKeyUsage([eku]), critical=True)
        if policies:
            b = b.add_extension(x509.CertificatePolicies([x509.PolicyInformation(x509.ObjectIdentifier(p), None) for p in policies]), critical=False)
        if qc:
            b = b.add_extension(x509.UnrecognizedExtension(x509.ObjectIdentifier(QC_STATEMENTS), qc_statements()), critical=False)
        cert = b.sign(issuer_key, hashes.SHA256())
        if digest is not None:
            cert = resign_sha1(cert, issuer_key)
        self.certs[name] = cert
        with open(self.path(name), "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
        return cert

    def crl(self, name, issuer, this_update, next_update, revoked=()):
        """A CRL of `issuer`; `revoked` is a list of (certificate name, revocation time)."""
        issuer_cert = self.certs[issuer]
        self.serial += 1
        b = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(issuer_cert.subject)
            .last_update(this_update)
            .next_update(next_update)
            .add_extension(x509.CRLNumber(self.serial), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(issuer_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value),
                critical=False,
            )
        )
        for cert_name, when in revoked:
            b = b.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(self.certs[cert_name].serial_number)
                .revocation_date(when)
                .add_extension(x509.CRLReason(x509.ReasonFlags.cessation_of_operation), critical=False)
                .build()
            )
        crl = b.sign(self.keys[issuer], hashes.SHA256())
        with open(os.path.join(self.dir, f"{name}.crl"), "wb") as f:
            f.write(crl.public_bytes(serialization.Encoding.DER))
        return a_crl.CertificateList.load(crl.public_bytes(serialization.Encoding.DER))

    def path(self, name):
        return os.path.join(self.dir, f"{name}.pem")

    def a_cert(self, name):
        return a_x509.Certificate.load(self.certs[name].public_bytes(serialization.Encoding.DER))

    def a_key(self, name):
        der = self.keys[name].private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        return a_keys.PrivateKeyInfo.load(der)


def name(cn, org="Validation Corpus CA (not Hawiya)", **person):
    attrs = [x509.NameAttribute(NameOID.COUNTRY_NAME, "ZZ"), x509.NameAttribute(NameOID.ORGANIZATION_NAME, org)]
    if person:
        attrs += [
            x509.NameAttribute(NameOID.GIVEN_NAME, person["given"]),
            x509.NameAttribute(NameOID.SURNAME, person["surname"]),
            x509.NameAttribute(NameOID.SERIAL_NUMBER, person["serial"]),
        ]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


def make_pki(outdir, now):
    p = Pki(outdir, now)
    p.issue("root", name("Corpus Root CA"), None, now - 10 * YEAR, now + 10 * YEAR, ca=True)
    p.issue("ca", name("Corpus Signing CA"), "root", now - 9 * YEAR, now + 9 * YEAR, ca=True)
    p.issue("tsa", name("Corpus Time-Stamping Authority"), "ca", now - 8 * YEAR, now + 8 * YEAR, eku=ExtendedKeyUsageOID.TIME_STAMPING)
    signer = dict(org="Validation Corpus (citizens)")
    p.issue("good", name("Amal Haddad", given="Amal", surname="Haddad", serial="PNOZZ-1000000001", **signer), "ca", now - YEAR, now + 2 * YEAR, policies=[QCP_N_QSCD], qc=True)
    p.issue("revoked", name("Basel Nasser", given="Basel", surname="Nasser", serial="PNOZZ-1000000002", **signer), "ca", now - YEAR, now + 2 * YEAR, policies=[QCP_N_QSCD], qc=True)
    p.issue("expired", name("Dana Khoury", given="Dana", surname="Khoury", serial="PNOZZ-1000000003", **signer), "ca", now - 3 * YEAR, now - YEAR, policies=[QCP_N_QSCD], qc=True)
    p.issue("sha1", name("Faris Saleh", given="Faris", surname="Saleh", serial="PNOZZ-1000000004", **signer), "ca", now - YEAR, now + 2 * YEAR, policies=[QCP_N_QSCD], qc=True, digest=hashes.SHA1())
    p.issue("other-root", name("Other Root CA", org="Unrelated PKI"), None, now - 10 * YEAR, now + 10 * YEAR, ca=True)
    p.issue("other-ca", name("Other Signing CA", org="Unrelated PKI"), "other-root", now - 9 * YEAR, now + 9 * YEAR, ca=True)
    p.issue("stranger", name("Ghada Mansour", given="Ghada", surname="Mansour", serial="PNOZZ-1000000005", **signer), "other-ca", now - YEAR, now + 2 * YEAR, policies=[QCP_N_QSCD], qc=True)
    p.times = {
        "now": now,
        "revocation": now - 30 * DAY,
        "expired_signing": now - 2 * YEAR,
    }
    p.crls = {
        # current CRLs, issued after every signature timestamp but the LTA ones: the revoked
        # certificate listed, revoked 30 days ago
        "ca": p.crl("ca", "ca", now, now + 7 * DAY, revoked=[("revoked", p.times["revocation"])]),
        "root": p.crl("root", "root", now, now + 30 * DAY),
        # CRLs of two years ago, a day after the expired certificate's signature: nothing revoked
        "ca-past": p.crl("ca-past", "ca", now - 2 * YEAR + DAY, now - 2 * YEAR + 8 * DAY),
        "root-past": p.crl("root-past", "root", now - 2 * YEAR + DAY, now - 2 * YEAR + 31 * DAY),
        "other-ca": p.crl("other-ca", "other-ca", now - DAY, now + 7 * DAY),
        "other-root": p.crl("other-root", "other-root", now - DAY, now + 30 * DAY),
    }
    return p


def sample_pdf():
    """A one-page PDF, classic xref table, the text "Validation corpus"."""
    content = b"BT /F1 18 Tf 30 50 Td (Validation corpus) Tj ET"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 300 100] /Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


class Corpus:
    def __init__(self, outdir, pki):
        self.dir = outdir
        self.pki = pki
        self.entries = []

    def write(self, filename, data):
        with open(os.path.join(self.dir, filename), "wb") as f:
            f.write(data)
        return data

    def read(self, filename):
        with open(os.path.join(self.dir, filename), "rb") as f:
            return f.read()

    def add(self, filename, what, expected, reason, *, detached=None, anchor="pki/root.pem", made_by, **overrides):
        """One manifest entry. `overrides`: dss_expected / pyhanko_expected (with a *_note
        saying which answer is right and why), dss_warnings, pyhanko_detail, and times."""
        entry = {
            "file": filename,
            "detached": detached,
            "trust_anchor": anchor,
            "made_by": made_by,
            "what": what,
            "expected": expected,
            "reason": reason,
        }
        entry.update(overrides)
        self.entries.append(entry)

    # --- pyHanko ---------------------------------------------------------------------------

    def timestamper(self, when):
        registry = SimpleCertificateStore.from_certs([self.pki.a_cert("ca")])
        return DummyTimeStamper(self.pki.a_cert("tsa"), self.pki.a_key("tsa"), certs_to_embed=registry, fixed_dt=when)

    def pades(self, signer, *, ts=None, issuer="ca"):
        """pyHanko PAdES signature (B-B, or B-T with a signature timestamp made at `ts`)."""
        registry = SimpleCertificateStore.from_certs([self.pki.a_cert(issuer)])
        simple = signers.SimpleSigner(signing_cert=self.pki.a_cert(signer), signing_key=self.pki.a_key(signer), cert_registry=registry)
        meta = signers.PdfSignatureMetadata(field_name="Signature1", subfilter=fields.SigSeedSubFilter.PADES, md_algorithm="sha256")
        pdf_signer = signers.PdfSigner(meta, simple, timestamper=None if ts is None else self.timestamper(ts))
        out = pdf_signer.sign_pdf(IncrementalPdfFileWriter(io.BytesIO(sample_pdf())))
        return out.getvalue()

    def add_dss(self, pdf, certs, crls):
        """B-LT: the chain and the CRLs we made, in the PDF's /DSS (nothing fetched)."""
        buf = io.BytesIO(pdf)
        DocumentSecurityStore.add_dss(buf, None, certs=[self.pki.a_cert(c) for c in certs], crls=[self.pki.crls[c] for c in crls])
        return buf.getvalue()

    def doc_timestamp(self, pdf, when):
        """B-LTA: a pyHanko document timestamp over everything, made at `when`."""
        w = IncrementalPdfFileWriter(io.BytesIO(pdf))
        out = signers.PdfTimeStamper(self.timestamper(when), field_name="DocTimeStamp1").timestamp_pdf(w, "sha256")
        return out.getvalue()

    # --- OpenSSL ---------------------------------------------------------------------------

    def openssl(self, *args):
        out = subprocess.run(["openssl", *args], cwd=self.dir, capture_output=True)
        if out.returncode != 0:
            sys.exit(f"openssl {' '.join(args)}: {out.stderr.decode(errors='replace')}")
        return out.stdout

    def tsa_config(self):
        path = os.path.join(self.dir, "pki", "tsa.cnf")
        with open(path, "w") as f:
            f.write(
                "[tsa]\ndefault_tsa = corpus\n[corpus]\n"
                "serial = pki/tsa-serial\ncrypto_device = builtin\nsigner_cert = pki/tsa.pem\n"
                "certs = pki/ca.pem\nsigner_key = pki/tsa.key\nsigner_digest = sha256\n"
                "default_policy = 1.3.6.1.4.1.99999.1\nother_policies = 1.3.6.1.4.1.99999.2\n"
                "digests = sha256\naccuracy = secs:1\nordering = no\ntsa_name = yes\n"
                "ess_cert_id_chain = no\ness_cert_id_alg = sha256\n"
            )
        with open(os.path.join(self.dir, "pki", "tsa-serial"), "w") as f:
            f.write("01\n")
        return path

    def openssl_token(self, data_file, token_file):
        """An RFC 3161 token over `data_file` by `openssl ts -reply` with the TSA's key."""
        cnf = self.tsa_config()
        query = token_file + ".tsq"
        self.openssl("ts", "-query", "-data", data_file, "-sha256", "-cert", "-out", query)
        self.openssl("ts", "-reply", "-config", cnf, "-section", "corpus", "-queryfile", query, "-token_out", "-out", token_file)
        os.remove(os.path.join(self.dir, query))
        return self.read(token_file)

    def cades_lt(self, p7s, stem, crls):
        """An OpenSSL CAdES made B-LT: `openssl ts` over its signature value, then
        `cades_to_lt`. Returns the new DER."""
        value = a_cms.ContentInfo.load(p7s)["content"]["signer_infos"][0]["signature"].native
        self.write(f"pki/{stem}-signature-value.bin", value)
        token = self.openssl_token(f"pki/{stem}-signature-value.bin", f"pki/{stem}-signature-value.tst")
        return cades_to_lt(p7s, token, [self.pki.a_cert(n) for n in ("ca", "tsa", "root")], [self.pki.crls[n] for n in crls])

    def openssl_cades(self, out, signer, *, attached=False, md="sha256"):
        args = ["cms", "-sign", "-binary", "-in", "document.txt", "-signer", f"pki/{signer}.pem", "-inkey", f"pki/{signer}.key", "-certfile", "pki/ca.pem", "-md", md, "-cades", "-outform", "DER", "-out", out]
        if attached:
            args.append("-nodetach")
        self.openssl(*args)
        return self.read(out)


SIGNATURE_TIME_STAMP_TOKEN = "1.2.840.113549.1.9.16.2.14"


def cades_to_lt(p7s, token, certs, crls):
    """OpenSSL's CAdES B-B made B-LT: the token over its signature value as the unsigned
    signature-time-stamp attribute, and the chain and CRLs in SignedData (unsigned parts:
    the signature stays intact)."""
    info = a_cms.ContentInfo.load(p7s)
    sd = info["content"]
    signer = sd["signer_infos"][0]
    attr = a_cms.CMSAttribute({"type": SIGNATURE_TIME_STAMP_TOKEN, "values": [a_cms.ContentInfo.load(token)]})
    signer["unsigned_attrs"] = a_cms.CMSAttributes([attr])
    present = {c.chosen.sha256 for c in sd["certificates"]}
    sd["certificates"] = a_cms.CertificateSet(list(sd["certificates"]) + [a_cms.CertificateChoices(name="certificate", value=c) for c in certs if c.sha256 not in present])
    sd["crls"] = a_cms.RevocationInfoChoices([a_cms.RevocationInfoChoice(name="crl", value=c) for c in crls])
    return a_cms.ContentInfo({"content_type": "signed_data", "content": sd}).dump()


def verdict(indication, sub_indication=None, signature_format=None):
    """One expected verdict: EN 319 102-1 indication and sub-indication (None: none), and
    the format and level as DSS names it (None: not stated). NO_SIGNATURE: the validator
    must report that the file has no signature (no verdict at all)."""
    return {"indication": indication, "sub_indication": sub_indication, "format": signature_format}


NO_REVOCATION = ("No revocation status information for the signing certificate is embedded and nothing may be fetched, so X.509 certificate "
                 "validation (EN 319 102-1 5.2.6) cannot conclude: INDETERMINATE/CERTIFICATE_CHAIN_GENERAL_FAILURE. (TRY_LATER is for "
                 "revocation information that exists but is not yet fresh enough, 5.2.5.)")

PYHANKO_PAST = ("pyHanko 0.38's ades_lta_validation (what `pyhanko sign adesverify` runs) goes through past signature validation "
                "(5.6.2.4) even when validation at the current time succeeds, and its time-slide (5.6.2.2) finds none of the CRLs "
                "embedded in the /DSS relevant at the control time, so it ends INDETERMINATE/NO_POE; the same CRLs make its "
                "ades_with_time_validation pass cades-detached-lt.p7s, and `adesverify` prints INTACT:TRUSTED for pades-b-lt.pdf "
                "from its older status object while the AdES result is NO_POE. DSS is right")


def main(outdir):
    os.makedirs(outdir, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0) - datetime.timedelta(minutes=1)
    pki = make_pki(outdir, now)
    c = Corpus(outdir, pki)
    recent = now - datetime.timedelta(minutes=5)
    chain = ["ca", "tsa"]
    current_crls = ["ca", "root"]

    def no_poe(why):
        return dict(pyhanko_expected=verdict("INDETERMINATE", "NO_POE"), pyhanko_note=f"{PYHANKO_PAST}: {why}")

    # ---- pyHanko PAdES at every baseline level -------------------------------------------
    c.write("pades-b-b.pdf", c.pades("good"))
    c.add("pades-b-b.pdf", "pyHanko PAdES B-B by a valid qualified-style certificate (QcCompliance, QcSSCD, QCP-n-qscd), no revocation data",
          verdict("INDETERMINATE", "CERTIFICATE_CHAIN_GENERAL_FAILURE", "PAdES-BASELINE-B"),
          "Intact and chained to the anchor, but: " + NO_REVOCATION, made_by="pyHanko")
    bt = c.write("pades-b-t.pdf", c.pades("good", ts=recent))
    c.add("pades-b-t.pdf", "pyHanko PAdES B-T: a signature timestamp by the corpus TSA (DummyTimeStamper), no revocation data",
          verdict("INDETERMINATE", "CERTIFICATE_CHAIN_GENERAL_FAILURE", "PAdES-BASELINE-T"),
          "The timestamp proves when, but: " + NO_REVOCATION, made_by="pyHanko")
    lt = c.write("pades-b-lt.pdf", c.add_dss(bt, chain, current_crls))
    c.add("pades-b-lt.pdf", "pyHanko PAdES B-LT: the B-T file plus the chain and the current CRLs of the CA and the root in the /DSS",
          verdict("TOTAL_PASSED", None, "PAdES-BASELINE-LT"),
          "Intact, chained to the anchor, and the embedded CRLs (issued after the signature timestamp) show nothing revoked.",
          made_by="pyHanko", **no_poe("the chain is valid now and the embedded CRLs, issued after the signature timestamp, show nothing revoked."))
    c.write("pades-b-lta.pdf", c.doc_timestamp(lt, now))
    c.add("pades-b-lta.pdf", "pyHanko PAdES B-LTA: the B-LT file plus a document timestamp over the /DSS",
          verdict("TOTAL_PASSED", None, "PAdES-BASELINE-LTA"),
          "As B-LT, and the document timestamp protects the validation data.", made_by="pyHanko", **no_poe("as for pades-b-lt.pdf, with the document timestamp valid too."))

    # ---- OpenSSL CAdES and the RFC 3161 token -------------------------------------------
    c.write("document.txt", "وثيقة موقعة — a document signed with OpenSSL for the validation corpus.\n".encode())
    p7s = c.openssl_cades("cades-detached.p7s", "good")
    c.add("cades-detached.p7s", "openssl cms -sign -cades: detached CAdES B-B (signingCertificateV2) over document.txt",
          verdict("INDETERMINATE", "CERTIFICATE_CHAIN_GENERAL_FAILURE", "CAdES-BASELINE-B"),
          "Intact and chained, but: " + NO_REVOCATION, detached="document.txt", made_by="OpenSSL")
    c.openssl_cades("cades-enveloping.p7s", "good", attached=True)
    c.add("cades-enveloping.p7s", "openssl cms -sign -cades -nodetach: enveloping CAdES B-B, document.txt inside",
          verdict("INDETERMINATE", "CERTIFICATE_CHAIN_GENERAL_FAILURE", "CAdES-BASELINE-B"),
          "Intact and chained, but: " + NO_REVOCATION, made_by="OpenSSL")
    # the OpenSSL signature made B-LT: its signature value timestamped by openssl ts
    c.write("cades-detached-lt.p7s", c.cades_lt(p7s, "cades-detached", current_crls))
    c.add("cades-detached-lt.p7s", "the OpenSSL detached CAdES made B-LT: an `openssl ts -reply` token over its signature value as the signature-time-stamp attribute, the chain and the current CRLs in SignedData (added with asn1crypto; unsigned parts, the signature is untouched)",
          verdict("TOTAL_PASSED", None, "CAdES-BASELINE-LT"),
          "Intact, chained, timestamped, and the embedded CRLs show nothing revoked.",
          detached="document.txt", made_by="OpenSSL (+ unsigned attributes added with asn1crypto)")
    c.openssl_token("document.txt", "document.tst")
    c.add("document.tst", "openssl ts -reply -token_out: an RFC 3161 timestamp token over document.txt, the TSA's chain included, no revocation data",
          verdict("INDETERMINATE", "CERTIFICATE_CHAIN_GENERAL_FAILURE", "TIMESTAMP"),
          "The token is intact and its imprint matches document.txt, and the TSA certificate (critical EKU timeStamping) chains to the anchor, but a token carries no revocation data for the TSA certificate and nothing may be fetched (EN 319 102-1 5.4, via 5.2.6).",
          detached="document.txt", made_by="OpenSSL")

    # ---- bad cases ---------------------------------------------------------------------
    at = lt.index(b"(Validation corpus)")
    tampered = bytearray(lt)
    tampered[at + 1] ^= 0x20  # "validation corpus": one byte inside the first signed range
    c.write("tampered.pdf", bytes(tampered))
    c.add("tampered.pdf", "pades-b-lt.pdf with one byte of the page content changed inside the signed byte range",
          verdict("TOTAL_FAILED", "HASH_FAILURE", "PAdES-BASELINE-LT"),
          "The digest of the signed byte ranges no longer matches the messageDigest signed attribute (EN 319 102-1 5.2.7).",
          made_by="pyHanko + one flipped byte")

    # revoked 30 days ago; signed (timestamp) 60 days ago: passes with the CRL as evidence
    c.write("revoked-before.pdf", c.add_dss(c.pades("revoked", ts=now - 60 * DAY), chain, current_crls))
    c.add("revoked-before.pdf", "PAdES B-LT by a certificate revoked 30 days ago (cessationOfOperation), signature timestamp 60 days ago, the CRL listing the revocation embedded",
          verdict("TOTAL_PASSED", None, "PAdES-BASELINE-LT"),
          "At the current time the certificate is revoked (INDETERMINATE/REVOKED_NO_POE), but the signature timestamp proves the signature existed before the revocation time, so past signature validation (EN 319 102-1 5.6.2.4) passes.",
          made_by="pyHanko", revocation_time=pki.times["revocation"].isoformat(), signature_time=(now - 60 * DAY).isoformat(),
          **no_poe("the signature timestamp proves the signature existed before the revocation the embedded CRL states."))
    c.write("revoked-after.pdf", c.add_dss(c.pades("revoked", ts=now - 10 * DAY), chain, current_crls))
    c.add("revoked-after.pdf", "PAdES B-LT by the same certificate, signature timestamp 10 days ago, i.e. after the revocation",
          verdict("INDETERMINATE", "REVOKED_NO_POE", "PAdES-BASELINE-LT"),
          "The certificate is revoked and the only proof of existence, the signature timestamp, is after the revocation time: past signature validation cannot improve REVOKED_NO_POE (5.6.2.4). TOTAL_FAILED/REVOKED needs proof that the signature was created after the revocation, i.e. a content timestamp after it (5.3.4); a signature timestamp only bounds the signing time from above.",
          made_by="pyHanko", revocation_time=pki.times["revocation"].isoformat(), signature_time=(now - 10 * DAY).isoformat(),
          pyhanko_expected=verdict("INDETERMINATE", "NO_POE"), pyhanko_note="pyHanko's past validation fails before it looks at the revocation (see pades-b-lt.pdf): INDETERMINATE as required, with a less precise sub-indication; DSS is right.")

    # expired a year ago; signed two years ago
    signed = now - 2 * YEAR
    expired_times = dict(signature_time=signed.isoformat(), certificate_not_after=pki.certs["expired"].not_valid_after_utc.isoformat())
    c.write("expired-b-t.pdf", c.pades("expired", ts=signed))
    c.add("expired-b-t.pdf", "PAdES B-T by a certificate whose validity ended a year ago: signature timestamp two years ago (inside its validity), no revocation data, no LTA evidence",
          verdict("INDETERMINATE", "CERTIFICATE_CHAIN_GENERAL_FAILURE", "PAdES-BASELINE-T"),
          "The timestamp proves the signature existed while the certificate was valid, but nothing shows the certificate was not revoked then: " + NO_REVOCATION,
          made_by="pyHanko", **expired_times)
    expired_lt = c.add_dss(c.pades("expired", ts=signed), chain, ["ca-past", "root-past", "ca", "root"])
    c.write("expired-b-lt.pdf", expired_lt)
    c.add("expired-b-lt.pdf", "PAdES B-LT by the expired certificate: signature timestamp two years ago, the CRLs of then (issued a day after the signature, before expiry) and of now in the /DSS, no document timestamp",
          verdict("TOTAL_PASSED", None, "PAdES-BASELINE-LT"),
          "Long-term validation material is what B-LT is for: the signature timestamp proves the signature existed while the certificate was valid, and a CRL issued after it and before the expiry shows it not revoked, so past signature validation (5.6.2.4) passes; an archive timestamp is only needed once those algorithms or keys weaken.",
          made_by="pyHanko", **expired_times, **no_poe("the signature timestamp falls inside the certificate's validity and a CRL issued after it, before the expiry, shows it not revoked."))
    c.write("expired-lta.pdf", c.doc_timestamp(expired_lt, now))
    c.add("expired-lta.pdf", "PAdES B-LTA: expired-b-lt.pdf plus a document timestamp (LTA evidence) over the signature and the /DSS",
          verdict("TOTAL_PASSED", None, "PAdES-BASELINE-LTA"),
          "As expired-b-lt.pdf, with the evidence preserved by the document timestamp (5.6.3).",
          made_by="pyHanko", **expired_times, **no_poe("as for expired-b-lt.pdf, with the document timestamp valid too."))

    c.write("wrong-anchor.pdf", c.add_dss(c.pades("stranger", ts=recent, issuer="other-ca"), ["other-ca", "other-root", "ca", "tsa"], ["other-ca", "other-root", "ca", "root"]))
    c.add("wrong-anchor.pdf", "PAdES B-LT by a certificate of another PKI (its own chain and CRLs embedded); the trust anchor is the corpus root",
          verdict("INDETERMINATE", "NO_CERTIFICATE_CHAIN_FOUND", "PAdES-BASELINE-LT"),
          "No path from the signing certificate to the only trust anchor (EN 319 102-1 5.2.6).", made_by="pyHanko")

    crypto_no_poe = ("and nothing proves the signature existed before that algorithm's sunset, so the cryptographic constraints cannot be met "
                     "(5.2.8): INDETERMINATE/CRYPTO_CONSTRAINTS_FAILURE_NO_POE.")
    pyhanko_crypto = dict(pyhanko_expected=verdict("INDETERMINATE", "CRYPTO_CONSTRAINTS_FAILURE"),
                          pyhanko_note="pyHanko's default algorithm policy forbids SHA-1 outright, with no sunset date, so it cannot say whether a proof of existence would help and answers CRYPTO_CONSTRAINTS_FAILURE. DSS is right: SHA-1 was acceptable until its sunset, so the precise answer is _NO_POE.")
    c.write("sha1-certificate.pdf", c.add_dss(c.pades("sha1", ts=recent), chain, current_crls))
    c.add("sha1-certificate.pdf", "PAdES B-LT whose signing certificate the CA signed with sha1WithRSAEncryption (the CMS itself uses SHA-256)",
          verdict("INDETERMINATE", "CRYPTO_CONSTRAINTS_FAILURE_NO_POE", "PAdES-BASELINE-LT"),
          "SHA-1 is no longer reliable for certificate signatures " + crypto_no_poe, made_by="pyHanko (certificate re-signed with SHA-1)", **pyhanko_crypto)
    sha1 = c.openssl_cades("cades-sha1.p7s", "good", md="sha1")
    c.write("cades-sha1.p7s", c.cades_lt(sha1, "cades-sha1", current_crls))
    c.add("cades-sha1.p7s", "openssl cms -sign -cades -md sha1: detached CAdES whose digest (message digest and signature) is SHA-1, made B-LT as cades-detached-lt.p7s so that only the algorithm is wrong",
          verdict("INDETERMINATE", "CRYPTO_CONSTRAINTS_FAILURE_NO_POE", "CAdES-BASELINE-LT"),
          "SHA-1 is no longer reliable for signatures " + crypto_no_poe, detached="document.txt", made_by="OpenSSL (+ unsigned attributes added with asn1crypto)", **pyhanko_crypto)

    w = IncrementalPdfFileWriter(io.BytesIO(lt))
    page = w.root["/Pages"]["/Kids"][0]
    page["/Contents"] = w.add_object(generic.StreamObject(stream_data=b"BT /F1 18 Tf 30 50 Td (Rewritten after signing) Tj ET"))
    w.update_container(page)
    modified = io.BytesIO()
    w.write(modified)
    c.write("modified-after-signing.pdf", modified.getvalue())
    c.add("modified-after-signing.pdf", "pades-b-lt.pdf followed by an incremental update that rewrites the page's content stream",
          verdict("TOTAL_FAILED", "FORMAT_FAILURE", "PAdES-BASELINE-LT"),
          "The signed revision is intact, but the document shown is not what was signed: rewriting page content after a signature is not an allowed update (ISO 32000-2 12.8.2; only signatures, document timestamps, the DSS and annotations may follow), so the PAdES format check (5.2.2) fails.",
          made_by="pyHanko",
          dss_expected=verdict("TOTAL_PASSED", None, "PAdES-BASELINE-LT"), dss_warnings=["BBB_FC_IVDBSFR_ANS", "BBB_FC_DSCNUOM_ANS"],
          dss_note="DSS detects the change (warnings BBB_FC_IVDBSFR_ANS 'visual difference on page 1' and BBB_FC_DSCNUOM_ANS 'undefined object modifications') but its default policy sets these checks to WARN, so the verdict stays TOTAL_PASSED; a policy with them at FAIL gives TOTAL_FAILED/FORMAT_FAILURE. The manifest is right: an auditor must not be told the shown document passed.",
          pyhanko_expected=verdict("INDETERMINATE", "NO_POE"), pyhanko_detail={"modification_level": "ModificationLevel.OTHER", "docmdp_ok": False},
          pyhanko_note="pyHanko's difference analysis finds the change (modification level OTHER, docmdp_ok false) but its AdES indication does not reflect it; the indication is the NO_POE of pades-b-lt.pdf. The manifest is right.")

    sig_start = lt.index(b"/Contents <") + len(b"/Contents <")
    c.write("truncated.pdf", lt[: sig_start + 200])
    c.add("truncated.pdf", "pades-b-lt.pdf cut 100 bytes into the signature's /Contents: the rest of the signature value, the second signed range, the DSS, the xref and trailer are missing",
          verdict("TOTAL_FAILED", "FORMAT_FAILURE", None),
          "A signature dictionary is there but the signature cannot be parsed (5.2.2); a validator must say so rather than call the file unsigned.",
          made_by="pyHanko + truncation",
          dss_expected=verdict("NO_SIGNATURE"), dss_note="DSS reports no signature at all, as if the file were unsigned; it is not, so the manifest is right.",
          pyhanko_expected=verdict("NO_SIGNATURE"), pyhanko_note="pyHanko's reader recovers the objects but lists no embedded signature; as DSS, it should have reported a damaged signature.")

    c.write("unsigned.pdf", sample_pdf())
    c.add("unsigned.pdf", "a PDF with no signature at all", verdict("NO_SIGNATURE"),
          "There is nothing to validate: the validator must report no signature, never a pass.", made_by="this script")

    manifest = {
        "generated_at": now.isoformat(),
        "trust_anchor": "pki/root.pem",
        "validation": "at the current time, nothing fetched: only the evidence the files embed counts",
        "times": {k: v.isoformat() for k, v in pki.times.items()},
        "files": c.entries,
    }
    with open(os.path.join(outdir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
