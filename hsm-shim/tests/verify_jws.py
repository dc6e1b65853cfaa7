"""Verifies a JWS compact signature against a public JWK with the `cryptography` package:
an implementation independent of Hawiya's. Usage: verify_jws.py '<jwk json>' '<jws>'.
Exits 0 and prints "ok" only if the signature verifies and the header names the key."""
import base64
import json
import sys

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature


def b64(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


jwk = json.loads(sys.argv[1])
header_b64, payload_b64, signature_b64 = sys.argv[2].split(".")
header = json.loads(b64(header_b64))
assert header["alg"] == jwk["alg"] and header["kid"] == jwk["kid"], header
message = (header_b64 + "." + payload_b64).encode()
signature = b64(signature_b64)
alg = jwk["alg"]
if jwk["kty"] == "EC":
    curve, digest, size = {"P-256": (ec.SECP256R1(), hashes.SHA256(), 32), "P-384": (ec.SECP384R1(), hashes.SHA384(), 48)}[jwk["crv"]]
    assert len(signature) == 2 * size, "JOSE ECDSA signatures are r || s of fixed size"
    key = ec.EllipticCurvePublicNumbers(int.from_bytes(b64(jwk["x"]), "big"), int.from_bytes(b64(jwk["y"]), "big"), curve).public_key()
    r, s = int.from_bytes(signature[:size], "big"), int.from_bytes(signature[size:], "big")
    key.verify(encode_dss_signature(r, s), message, ec.ECDSA(digest))
elif jwk["kty"] == "RSA":
    key = rsa.RSAPublicNumbers(int.from_bytes(b64(jwk["e"]), "big"), int.from_bytes(b64(jwk["n"]), "big")).public_key()
    pad = padding.PKCS1v15() if alg == "RS256" else padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    key.verify(signature, message, pad, hashes.SHA256())
else:
    assert jwk["kty"] == "OKP" and jwk["crv"] == "Ed25519"
    ed25519.Ed25519PublicKey.from_public_bytes(b64(jwk["x"])).verify(signature, message)
print("ok")
