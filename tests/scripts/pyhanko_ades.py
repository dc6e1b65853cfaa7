"""pyHanko's ETSI EN 319 102-1 (AdES) validation of the validation corpus, nothing fetched.

usage: pyhanko_ades.py CORPUS_DIR

For every file of CORPUS_DIR/manifest.json (see validation_corpus.py) prints one JSON line:
{"file": ..., "verdicts": ["<INDICATION> <SUB-INDICATION or ->", ...], "detail": ...},
one verdict per signature (none for a file without signature; "TOTAL_FAILED
FORMAT_FAILURE" when pyHanko cannot read the file at all), with the manifest's trust anchor
the only trust root, revocation required as `adesverify` requires it, and only the evidence
the file embeds (plus a proof that it exists now, see `knowledge`):

- PDFs: every signature through `ades_lta_validation`, what `pyhanko sign adesverify` runs
  (the /DSS, the document timestamps and the incremental-update analysis included);
- CMS (.p7s): `ades_with_time_validation` when the signer has a signature timestamp, else
  `ades_basic_validation`; the certificates and CRLs of SignedData are the local knowledge;
- RFC 3161 tokens (.tst): `ades_timestamp_validation` against the detached document.

A timestamp's indication is PASSED / FAILED / INDETERMINATE (no TOTAL_). pyHanko's log goes
to stderr.
"""

import asyncio
import dataclasses
import datetime
import hashlib
import json
import os
import sys

from asn1crypto import cms
from asn1crypto import crl as a_crl
from pyhanko.keys import load_cert_from_pemder
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.ades.report import AdESFailure, AdESIndeterminate, AdESPassed
from pyhanko.sign.diff_analysis import DEFAULT_DIFF_POLICY
from pyhanko.sign.validation.dss import DocumentSecurityStore
from pyhanko.sign.validation.ades import (
    ades_basic_validation,
    ades_lta_validation,
    ades_timestamp_validation,
    ades_with_time_validation,
)
from pyhanko.sign.validation.policy_decl import (
    LocalKnowledge,
    PdfSignatureValidationSpec,
    RevocationInfoGatheringSpec,
    RevinfoOnlineFetchingRule,
    SignatureValidationSpec,
)
from pyhanko_certvalidator.context import CertValidationPolicySpec
from pyhanko_certvalidator.ltv.types import ValidationTimingInfo
from pyhanko_certvalidator.policy_decl import (
    REQUIRE_REVINFO,
    CertRevTrustPolicy,
    FreshnessReqType,
)
from pyhanko_certvalidator.revinfo.archival import CRLContainer
from pyhanko_certvalidator.registry import SimpleTrustManager

SIGNATURE_TIME_STAMP_TOKEN = "1.2.840.113549.1.9.16.2.14"


def verdict(subindic):
    if isinstance(subindic, AdESPassed):
        return "TOTAL_PASSED -"
    if isinstance(subindic, AdESFailure):
        return f"TOTAL_FAILED {subindic.name}"
    if isinstance(subindic, AdESIndeterminate):
        return f"INDETERMINATE {subindic.name}"
    return f"UNKNOWN {subindic}"


def spec(anchor, certs=(), crls=()):
    """adesverify's settings: the anchor only, revocation information required (freshness
    as adesverify sets it), nothing fetched."""
    policy = CertValidationPolicySpec(
        trust_manager=SimpleTrustManager.build(trust_roots=[anchor]),
        revinfo_policy=CertRevTrustPolicy(REQUIRE_REVINFO, freshness=None, freshness_req_type=FreshnessReqType.MAX_DIFF_REVOCATION_VALIDATION),
    )
    return SignatureValidationSpec(
        cert_validation_policy=policy,
        revinfo_gathering_policy=RevocationInfoGatheringSpec(online_fetching_rule=RevinfoOnlineFetchingRule.LOCAL_ONLY),
        local_knowledge=knowledge(certs, crls),
    )


def knowledge(certs, crls):
    """The certificates and CRLs the file carries, with proof of their existence at the
    validation time (EN 319 102-1: what the verifier holds exists now). pyHanko 0.38 needs
    that said: its POE manager otherwise stamps an object it first meets during the
    time-slide with the wall clock, later than the control time the time-slide started from,
    and its past validation stops at "no proof of existence for the CA certificate"."""
    local = LocalKnowledge(known_certs=list(certs), known_crls=[CRLContainer(c) for c in crls])
    now = datetime.datetime.now(datetime.timezone.utc)
    return dataclasses.replace(local, known_poes=list(local.assert_existence_known_at(now)))


def embedded_evidence(reader):
    """The certificates and CRLs the PDF carries (its signatures' and document timestamps'
    CMS, the /DSS): pyHanko reads them itself too; they are handed over again only to give
    them a proof of existence at the validation time (see `knowledge`)."""
    certs, crls = [], []
    for sig in reader.embedded_signatures:
        certs += [c.chosen for c in sig.signed_data["certificates"] or []]
    if "/DSS" in reader.root:
        dss = DocumentSecurityStore.read_dss(reader)
        certs += list(dss.load_certs())
        crls += [a_crl.CertificateList.load(ref.get_object().data) for ref in dss.crls]
    return certs, crls


async def validate_pdf(path, anchor):
    with open(path, "rb") as f:
        reader = PdfFileReader(f)
        signatures = reader.embedded_regular_signatures
        pdf_spec = PdfSignatureValidationSpec(signature_validation_spec=spec(anchor, *embedded_evidence(reader)), diff_policy=DEFAULT_DIFF_POLICY)
        out = []
        details = []
        for sig in signatures:
            result = await ades_lta_validation(sig, pdf_spec, timing_info=ValidationTimingInfo.now())
            out.append(verdict(result.ades_subindic))
            status = result.api_status
            details.append({
                "failure": result.failure_msg,
                "modification_level": None if status is None else str(getattr(status, "modification_level", None)),
                "docmdp_ok": None if status is None else getattr(status, "docmdp_ok", None),
            })
        return out, details


async def validate_cms(path, detached, anchor):
    with open(path, "rb") as f:
        signed_data = cms.ContentInfo.load(f.read())["content"]
    certs = [c.chosen for c in signed_data["certificates"] or []]
    crls = [c.chosen for c in signed_data["crls"] or [] if c.name == "crl"]
    s = spec(anchor, certs, crls)
    raw_digest = None
    if detached is not None:
        signer = signed_data["signer_infos"][0]
        algorithm = signer["digest_algorithm"]["algorithm"].native
        with open(detached, "rb") as f:
            raw_digest = hashlib.new(algorithm, f.read()).digest()
    unsigned = signed_data["signer_infos"][0]["unsigned_attrs"]
    timestamped = unsigned.native is not None and any(a["type"].dotted == SIGNATURE_TIME_STAMP_TOKEN for a in unsigned)
    process = ades_with_time_validation if timestamped else ades_basic_validation
    result = await process(signed_data, s, raw_digest=raw_digest, timing_info=ValidationTimingInfo.now())
    return [verdict(result.ades_subindic)], [{"failure": result.failure_msg, "process": process.__name__}]


async def validate_token(path, detached, anchor):
    with open(path, "rb") as f:
        signed_data = cms.ContentInfo.load(f.read())["content"]
    with open(detached, "rb") as f:
        document = f.read()
    certs = [c.chosen for c in signed_data["certificates"] or []]
    result = await ades_timestamp_validation(signed_data, spec(anchor, certs), lambda algorithm: hashlib.new(algorithm, document).digest(), timing_info=ValidationTimingInfo.now())
    indication = verdict(result.ades_subindic).replace("TOTAL_", "")
    return [indication], [{"failure": result.failure_msg}]


def main(corpus):
    with open(os.path.join(corpus, "manifest.json")) as f:
        manifest = json.load(f)
    for entry in manifest["files"]:
        path = os.path.join(corpus, entry["file"])
        anchor = load_cert_from_pemder(os.path.join(corpus, entry["trust_anchor"]))
        detached = None if entry["detached"] is None else os.path.join(corpus, entry["detached"])
        try:
            if path.endswith(".pdf"):
                verdicts, detail = asyncio.run(validate_pdf(path, anchor))
            elif path.endswith(".tst"):
                verdicts, detail = asyncio.run(validate_token(path, detached, anchor))
            else:
                verdicts, detail = asyncio.run(validate_cms(path, detached, anchor))
        except Exception as e:  # noqa: BLE001 - an unreadable file is a verdict, not a crash
            verdicts, detail = ["TOTAL_FAILED FORMAT_FAILURE"], [{"failure": f"{type(e).__name__}: {e}"}]
        print(json.dumps({"file": entry["file"], "verdicts": verdicts, "detail": detail}, default=str), flush=True)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
