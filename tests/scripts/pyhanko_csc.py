"""pyHanko's own CSC signer signs a PDF through Hawiya's CSC API v2.

usage: pyhanko_csc.py SERVICE_URL ACCESS_TOKEN INPUT.pdf OUTPUT.pdf [TSA_URL]

The token is a citizen's access token with the `csc` scope. The script lists the
citizen's credential, reads its certificates (credentials/info, chain), and signs with
pyhanko.sign.signers.csc_signer.CSCSigner; its authorisation manager calls
credentials/authorize with the hash pyHanko is about to sign, prints
`verification-code: NNNN` (the citizen compares it with the device's and approves with
PIN2), and polls credentials/authorizeCheck until it returns the SAD, which CSCSigner
spends at signatures/signHash (with the v1 names `hash` and `hashAlgo`, as pyHanko sends
them). With TSA_URL the signature gets a signature timestamp from it (PAdES B-T).
Prints `signed` at the end; any refusal ends the script with its CSC error.
"""
import asyncio
import sys

import aiohttp
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import signers
from pyhanko.sign.general import SigningError
from pyhanko.sign.signers import csc_signer
from pyhanko.sign.timestamps import HTTPTimeStamper

SHA256 = "2.16.840.1.101.3.4.2.1"


class DeviceApproval(csc_signer.CSCAuthorizationManager):
    """Asynchronous authorisation: the citizen approves on the device."""

    def __init__(self, http, session_info, credential_info):
        super().__init__(session_info, credential_info)
        self.http = http

    async def post(self, method, body):
        url = self.csc_session_info.endpoint_url(method)
        async with self.http.post(url, headers=self.auth_headers, json=body) as r:
            return r.status, await r.json()

    async def authorize_signature(self, hash_b64s):
        credential = self.csc_session_info.credential_id
        status, opened = await self.post("credentials/authorize", {
            "credentialID": credential,
            "numSignatures": len(hash_b64s),
            "hashes": hash_b64s,
            "hashAlgorithmOID": SHA256,
            "description": "pyHanko CSC test document",
        })
        if status != 200:
            raise SigningError(f"credentials/authorize: {status} {opened}")
        print(f"verification-code: {opened['verificationCode']}", flush=True)
        check = {"credentialID": credential, "responseID": opened["responseID"]}
        while True:
            status, answer = await self.post("credentials/authorizeCheck", check)
            if status == 202:
                await asyncio.sleep(0.3)
                continue
            if status != 200:
                raise SigningError(f"credentials/authorizeCheck: {status} {answer}")
            return self.parse_csc_auth_response(answer)


async def main():
    service_url, token, source, target = sys.argv[1:5]
    timestamper = HTTPTimeStamper(sys.argv[5]) if len(sys.argv) > 5 else None
    async with aiohttp.ClientSession() as http:
        listing = csc_signer.CSCServiceSessionInfo(service_url, "", oauth_token=token, api_ver="v2")
        async with http.post(listing.endpoint_url("credentials/list"), headers=listing.auth_headers, json={}) as r:
            credentials = (await r.json())["credentialIDs"]
        print(f"credential: {credentials[0]}", flush=True)
        session_info = csc_signer.CSCServiceSessionInfo(service_url, credentials[0], oauth_token=token, api_ver="v2")
        credential_info = await csc_signer.fetch_certs_in_csc_credential(http, session_info)
        signer = csc_signer.CSCSigner(http, DeviceApproval(http, session_info, credential_info))
        meta = signers.PdfSignatureMetadata(field_name="Signature1", md_algorithm="sha256")
        with open(source, "rb") as inf, open(target, "wb") as outf:
            await signers.async_sign_pdf(IncrementalPdfFileWriter(inf), meta, signer=signer, timestamper=timestamper, output=outf)
    print("signed", flush=True)


asyncio.run(main())
