"""Asks a TSA for a token with pyHanko's own client and validates it with pyHanko.

usage: pyhanko_timestamp.py TSA_URL ROOT_PEM INTERMEDIATE_PEM
Prints "INTACT:TRUSTED <policy> <serial>" when pyHanko accepts the token as intact and
trusted with ROOT_PEM as the only trust anchor (INTERMEDIATE_PEM, the TSA's issuer, is
offered for path building only); exits non-zero otherwise.
"""
import asyncio
import hashlib
import sys

from pyhanko.sign.timestamps import HTTPTimeStamper
from pyhanko.sign.validation.generic_cms import validate_tst_signed_data
from pyhanko_certvalidator import ValidationContext
from pyhanko.keys import load_cert_from_pemder


async def main(url, root, intermediate):
    message = "طابع زمني لوثيقة هوية".encode()
    digest = hashlib.sha256(message).digest()
    stamper = HTTPTimeStamper(url)
    token = await stamper.async_timestamp(digest, "sha256")
    signed_data = token["content"]
    context = ValidationContext(trust_roots=[load_cert_from_pemder(root)], other_certs=[load_cert_from_pemder(intermediate)])
    status = await validate_tst_signed_data(signed_data, context, lambda _algorithm: digest)
    if not (status["intact"] and status["valid"] and status["trust_problem_indic"] is None):
        print(f"REJECTED {status}")
        sys.exit(1)
    tst = signed_data["encap_content_info"]["content"].parsed
    print(f"INTACT:TRUSTED {tst['policy'].dotted} {tst['serial_number'].native:x}")


asyncio.run(main(*sys.argv[1:4]))
