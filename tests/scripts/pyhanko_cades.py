"""pyHanko's validation of a detached CAdES signature, nothing fetched.

usage: pyhanko_cades.py DOCUMENT P7S ROOT [OTHER_CERT ...]
ROOT (PEM or DER) is the only trust anchor; OTHER_CERTs are offered for path building (the
TSA's issuer: a token carries the TSA's certificate only). Prints one JSON line: intact,
valid, trusted, bottom_line, and the same of the signature timestamp.
"""
import asyncio
import json
import sys

from asn1crypto import cms
from pyhanko.keys import load_cert_from_pemder
from pyhanko.sign.validation import async_validate_detached_cms
from pyhanko.sign.validation.settings import KeyUsageConstraints
from pyhanko_certvalidator import ValidationContext

document, p7s = (open(p, "rb").read() for p in sys.argv[1:3])
root = load_cert_from_pemder(sys.argv[3])
others = [load_cert_from_pemder(p) for p in sys.argv[4:]]
signed_data = cms.ContentInfo.load(p7s)["content"]


def context():
    return ValidationContext(trust_roots=[root], other_certs=others, allow_fetching=False)


status = asyncio.run(async_validate_detached_cms(
    document, signed_data,
    signer_validation_context=context(), ts_validation_context=context(),
    key_usage_settings=KeyUsageConstraints(key_usage={"non_repudiation"}),
))
ts = status.timestamp_validity
print(json.dumps({
    "intact": status.intact, "valid": status.valid, "trusted": status.trusted,
    "bottom_line": status.bottom_line,
    "timestamp": None if ts is None else {"intact": ts.intact, "valid": ts.valid, "trusted": ts.trusted},
}))
