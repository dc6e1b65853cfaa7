"""Checks a signed validation report (`hawiya verify --signed --format json`) the way an
auditor would, with nothing of Hawiya's: the JWS (RFC 7515, compact) is parsed, the chain in
its `x5c` header is checked up to the given root (the only trust anchor), and the signature
is verified with the first certificate's key, all with `cryptography`.

usage: verify_report_jws.py <report.jws> <root.pem>
Prints {"valid": true, "signer": <subject>, "indication": <the report's>} and exits 0, or
prints why not and exits 1.
"""

import base64
import json
import sys

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils


def b64url(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def main():
    compact = open(sys.argv[1]).read().strip()
    root = x509.load_pem_x509_certificate(open(sys.argv[2], "rb").read())
    protected, payload, signature = compact.split(".")
    header = json.loads(b64url(protected))
    chain = [x509.load_der_x509_certificate(base64.b64decode(c)) for c in header["x5c"]]
    if chain[-1] != root:
        sys.exit("the chain does not end at the given root")
    for child, issuer in zip(chain, chain[1:]):
        child.verify_directly_issued_by(issuer)
    curves = {"ES256": (hashes.SHA256(), 32), "ES384": (hashes.SHA384(), 48)}
    if header["alg"] not in curves:
        sys.exit(f"unexpected alg {header['alg']}")
    digest, size = curves[header["alg"]]
    raw = b64url(signature)
    if len(raw) != 2 * size:
        sys.exit("the signature has the wrong length")
    der = utils.encode_dss_signature(int.from_bytes(raw[:size], "big"), int.from_bytes(raw[size:], "big"))
    try:
        chain[0].public_key().verify(der, f"{protected}.{payload}".encode(), ec.ECDSA(digest))
    except InvalidSignature:
        print("invalid signature")
        sys.exit(1)
    report = json.loads(b64url(payload))
    print(json.dumps({"valid": True, "signer": chain[0].subject.rfc4514_string(), "indication": report["indication"]}))


main()
