//! Reading the signatures of a PDF for validation: every signature and document timestamp
//! with its /ByteRange and /Contents, whether the byte range is sound, what each later
//! incremental update changed (and whether a signature's permissions allow it), and the
//! document security store (/DSS) of PAdES B-LT.
//!
//! The file is a [`Source`] read by offset, never whole: the cross-reference sections, the
//! objects they point to (each in a bounded window), and stream data only where a /DSS entry
//! or a changed stream needs it; the signed byte ranges are returned as ranges, for the
//! caller to hash in chunks. In-memory bytes are a source too: one code path for both.
//!
//! The input is untrusted: anything malformed is a [`PdfError`] or a [`ByteRangeProblem`],
//! never a panic, and every walk is bounded.

use std::collections::HashSet;

use std::ops::Range;

use super::object::{Dict, MAX_OBJECT, ObjRef, Object};
use super::parse::Document;
use super::{Damage, PdfError};
use crate::source::{Bytes, Source};

/// How many fields (with their kids) a form may have before it is called damaged.
const MAX_FIELDS: usize = 10_000;
/// How deep field kids may nest.
const MAX_FIELD_DEPTH: usize = 32;

/// A signature dictionary's kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FoundKind {
    /// /Type /Sig: a signature (its /SubFilter says which CMS).
    Signature,
    /// /Type /DocTimeStamp: an RFC 3161 token over the byte range (PAdES B-LTA).
    DocumentTimestamp,
}

/// A signature or document timestamp found in a PDF.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FoundSignature {
    /// The field's full name (`parent.child`).
    pub field: String,
    /// Signature or document timestamp.
    pub kind: FoundKind,
    /// /SubFilter (`ETSI.CAdES.detached`, `adbe.pkcs7.detached`, `ETSI.RFC3161`, …).
    pub sub_filter: String,
    /// /ByteRange.
    pub byte_range: [usize; 4],
    /// /Contents: the DER (CMS or timestamp token), without the zero padding after it.
    pub contents: Vec<u8>,
    /// /M, as written (a PDF date: `D:20261129200000Z`).
    pub signing_time: Option<String>,
    /// /Name, /Reason, /Location as text.
    pub name: Option<String>,
    /// /Reason.
    pub reason: Option<String>,
    /// /Location.
    pub location: Option<String>,
    /// For a certification signature: its DocMDP permissions (/P: 1 no changes, 2 form
    /// filling and signing, 3 also annotations).
    pub certification: Option<u8>,
}

impl FoundSignature {
    /// Where the revision it signs ends: everything after it came later.
    pub fn signed_end(&self) -> usize {
        self.byte_range[2].saturating_add(self.byte_range[3])
    }
}

/// Why a /ByteRange does not cover what it must.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ByteRangeProblem {
    /// It does not start at the beginning of the file.
    #[error("the signed range does not start at the beginning of the file")]
    NotFromStart,
    /// It reaches past the end of the file.
    #[error("the signed range reaches past the end of the file")]
    PastEnd,
    /// The ranges overlap or are out of order.
    #[error("the signed ranges overlap or are out of order")]
    Overlap,
    /// The gap is not exactly the signature's /Contents hex string.
    #[error("the part left out of the signed range is not exactly the signature value")]
    GapNotContents,
    /// The file could not be read (cut or changed while it is read).
    #[error("the file cannot be read: {0}")]
    Unreadable(String),
}

/// What a later incremental update changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LaterChange {
    /// What it is: `signature`, `document-timestamp`, `signature-field`, `dss`, `catalog`,
    /// `acroform`, `annotation`, `metadata` (XMP), `page`, `page-content`, `other`.
    pub kind: &'static str,
    /// The object (`12 0 R`).
    pub object: String,
    /// Whether EN 319 142-1 / ISO 32000-2 allow it after a signature with the given
    /// permissions: signatures, document timestamps and the DSS always (ISO 32000-2
    /// §12.8.2.2.1); form filling and signing from /P 2; annotations from /P 3 (and without a
    /// certification signature, which allows all three).
    pub allowed: bool,
}

/// The validation data of a PAdES document: the /DSS arrays, decoded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SecurityStore {
    /// /Certs (DER certificates).
    pub certificates: Vec<Vec<u8>>,
    /// /OCSPs (DER OCSPResponse).
    pub ocsp_responses: Vec<Vec<u8>>,
    /// /CRLs (DER CertificateList).
    pub crls: Vec<Vec<u8>>,
}

fn text(object: Option<&Object>) -> Option<String> {
    let Some(Object::String(bytes)) = object else { return None };
    Some(match bytes.strip_prefix(&[0xfe, 0xff]) {
        Some(utf16) => {
            let units: Vec<u16> = utf16.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect();
            String::from_utf16_lossy(&units)
        }
        // PDFDocEncoding agrees with Latin-1 for the characters names and dates use.
        None => bytes.iter().map(|b| char::from(*b)).collect(),
    })
}

/// The DER inside a zero-padded /Contents: its own length (the outer TLV), or all of it when
/// that cannot be read.
fn without_padding(contents: &[u8]) -> Vec<u8> {
    let len = match contents {
        [0x30, l, ..] if *l < 0x80 => Some(2 + usize::from(*l)),
        [0x30, 0x81, l, ..] => Some(3 + usize::from(*l)),
        [0x30, 0x82, a, b, ..] => Some(4 + (usize::from(*a) << 8 | usize::from(*b))),
        [0x30, 0x83, a, b, c, ..] => Some(5 + (usize::from(*a) << 16 | usize::from(*b) << 8 | usize::from(*c))),
        _ => None,
    };
    match len {
        Some(n) if n <= contents.len() => contents[..n].to_vec(),
        _ => contents.to_vec(),
    }
}

/// Whether the file ends with a complete revision: `%%EOF` and at most whitespace after it.
pub fn ends_complete(source: &(impl Source + ?Sized)) -> bool {
    let bytes = Bytes::new(&source);
    let start = bytes.len().saturating_sub(1024);
    let Ok(tail) = bytes.read_up_to(start, 1024) else { return false };
    super::object::rfind(&tail, b"%%EOF").is_some_and(|at| tail[at + 5..].iter().all(|b| b.is_ascii_whitespace() || *b == 0))
}

/// Every signature and document timestamp of the form, in the order their revisions end
/// (the order they were made). A PDF without a form has none.
pub fn signatures(source: &(impl Source + ?Sized)) -> Result<Vec<FoundSignature>, PdfError> {
    let document = Document::parse(Bytes::new(&source))?;
    let catalog = document.catalog()?;
    let certification = certification_signature(&document, &catalog)?;
    let Some(form) = catalog.get(b"AcroForm").map(|f| document.deref(f)).transpose()? else { return Ok(Vec::new()) };
    let Some(form) = form.as_dict() else { return Ok(Vec::new()) };
    let fields = match form.get(b"Fields").map(|f| document.deref(f)).transpose()? {
        Some(Object::Array(fields)) => fields,
        _ => Vec::new(),
    };
    let mut found = Vec::new();
    let mut seen = HashSet::new();
    for field in fields {
        collect(&document, &field, "", 0, &mut seen, &certification, &mut found)?;
    }
    found.sort_by_key(FoundSignature::signed_end);
    Ok(found)
}

/// The certification signature's dictionary (catalog /Perms /DocMDP) and its /P.
fn certification_signature(document: &Document<'_>, catalog: &Dict) -> Result<Option<(ObjRef, u8)>, PdfError> {
    let Some(perms) = catalog.get(b"Perms").map(|p| document.deref(p)).transpose()? else { return Ok(None) };
    let Some(Object::Reference(signature)) = perms.as_dict().and_then(|p| p.get(b"DocMDP")).cloned() else { return Ok(None) };
    let dict = document.dict(signature)?;
    let mut p = 2;
    if let Some(Object::Array(references)) = dict.get(b"Reference").map(|r| document.deref(r)).transpose()? {
        for r in references {
            let r = document.deref(&r)?;
            if let Some(params) = r.as_dict().and_then(|r| r.get(b"TransformParams")).map(|t| document.deref(t)).transpose()?
                && let Some(value) = params.as_dict().and_then(|t| t.integer(b"P"))
            {
                p = u8::try_from(value.clamp(1, 3)).unwrap_or(2);
            }
        }
    }
    Ok(Some((signature, p)))
}

fn collect(
    document: &Document<'_>,
    field: &Object,
    parent: &str,
    depth: usize,
    seen: &mut HashSet<u32>,
    certification: &Option<(ObjRef, u8)>,
    found: &mut Vec<FoundSignature>,
) -> Result<(), PdfError> {
    if depth > MAX_FIELD_DEPTH || seen.len() > MAX_FIELDS {
        return Err(Damage::BadSignature.into());
    }
    if let Object::Reference(r) = field
        && !seen.insert(r.num)
    {
        return Err(Damage::BadSignature.into());
    }
    let Object::Dictionary(dict) = document.deref(field)? else { return Ok(()) };
    let name = match (text(dict.get(b"T")), parent) {
        (Some(t), "") => t,
        (Some(t), p) => format!("{p}.{t}"),
        (None, p) => p.to_owned(),
    };
    if let Some(Object::Array(kids)) = dict.get(b"Kids").map(|k| document.deref(k)).transpose()? {
        for kid in &kids {
            collect(document, kid, &name, depth + 1, seen, certification, found)?;
        }
    }
    if dict.name(b"FT") != Some(b"Sig") {
        return Ok(());
    }
    let Some(value) = dict.get(b"V") else { return Ok(()) };
    let reference = match value {
        Object::Reference(r) => Some(*r),
        _ => None,
    };
    let Object::Dictionary(signature) = document.deref(value)? else { return Ok(()) };
    let kind = match signature.name(b"Type") {
        Some(b"DocTimeStamp") => FoundKind::DocumentTimestamp,
        _ => FoundKind::Signature,
    };
    let byte_range = match signature.get(b"ByteRange").map(|b| document.deref(b)).transpose()? {
        Some(Object::Array(items)) if items.len() == 4 => {
            let mut range = [0usize; 4];
            for (slot, item) in range.iter_mut().zip(&items) {
                let Object::Integer(n) = item else { return Err(Damage::BadSignature.into()) };
                *slot = usize::try_from(*n).map_err(|_| Damage::BadSignature)?;
            }
            range
        }
        _ => return Err(Damage::BadSignature.into()),
    };
    let Some(Object::String(contents)) = signature.get(b"Contents") else { return Err(Damage::BadSignature.into()) };
    found.push(FoundSignature {
        field: name,
        kind,
        sub_filter: signature.name(b"SubFilter").map(|s| String::from_utf8_lossy(s).into_owned()).unwrap_or_default(),
        byte_range,
        contents: without_padding(contents),
        signing_time: text(signature.get(b"M")),
        name: text(signature.get(b"Name")),
        reason: text(signature.get(b"Reason")),
        location: text(signature.get(b"Location")),
        certification: certification.filter(|(r, _)| Some(*r) == reference).map(|(_, p)| p),
    });
    Ok(())
}

/// Checks that the byte range starts at 0, stays in the file, and leaves out exactly the
/// /Contents hex string (`<…>`), and returns the two signed ranges (to hash them from the
/// file: [`crate::source::Ranges`]).
pub fn signed_parts(source: &(impl Source + ?Sized), signature: &FoundSignature) -> Result<[Range<usize>; 2], ByteRangeProblem> {
    let bytes = Bytes::new(&source);
    let [a, b, c, d] = signature.byte_range;
    if a != 0 {
        return Err(ByteRangeProblem::NotFromStart);
    }
    let end = c.checked_add(d).ok_or(ByteRangeProblem::PastEnd)?;
    if end > bytes.len() {
        return Err(ByteRangeProblem::PastEnd);
    }
    if b > c {
        return Err(ByteRangeProblem::Overlap);
    }
    // The gap is the /Contents string the signature dictionary held, so no larger than an object.
    if c - b > MAX_OBJECT {
        return Err(ByteRangeProblem::GapNotContents);
    }
    let gap = bytes.read(b..c).map_err(|e| ByteRangeProblem::Unreadable(e.to_string()))?;
    let hex = match gap.as_slice() {
        [b'<', inner @ .., b'>'] => inner,
        _ => return Err(ByteRangeProblem::GapNotContents),
    };
    if hex.len() % 2 != 0 || !hex.iter().all(u8::is_ascii_hexdigit) {
        return Err(ByteRangeProblem::GapNotContents);
    }
    let decoded: Vec<u8> = hex.chunks_exact(2).filter_map(|p| std::str::from_utf8(p).ok().and_then(|s| u8::from_str_radix(s, 16).ok())).collect();
    if without_padding(&decoded) != signature.contents {
        return Err(ByteRangeProblem::GapNotContents);
    }
    Ok([0..b, c..end])
}

/// What the updates after `signature`'s revision changed, each judged against its
/// permissions (`certification`: the document's certification signature's /P, if the
/// document is certified).
pub fn changes_after(source: &(impl Source + ?Sized), signature: &FoundSignature, certification: Option<u8>) -> Result<Vec<LaterChange>, PdfError> {
    let bytes = Bytes::new(&source);
    let end = signature.signed_end();
    if end >= bytes.len() {
        return Ok(Vec::new());
    }
    let before = Document::parse(bytes.prefix(end))?;
    let after = Document::parse(bytes)?;
    let catalog = after.catalog()?;
    let dss_parts = dss_objects(&after, catalog.get(b"DSS"))?;
    // The document information dictionary (producer, modification date): metadata.
    let info = after.trailer.reference(b"Info").map(|r| r.num);
    // Without a certification signature, a later signer may fill in, sign and annotate.
    let permissions = certification.unwrap_or(3);
    let mut changes = Vec::new();
    let mut numbers: Vec<u32> = after.object_numbers().filter(|n| after.written_after(*n, end)).collect();
    numbers.sort_unstable();
    for num in numbers {
        let generation = after.generation(num).unwrap_or(0);
        let r = ObjRef { num, generation };
        let new = after.resolve(r)?;
        let old = before.resolve(r)?;
        // An object written again unchanged (some writers repeat objects) is no change; a
        // stream is compared by its data too (by digest: the data is not held).
        if old == new && old != Object::Null && same_stream(&before, &after, r)? {
            continue;
        }
        let (kind, allowed) = if Some(num) == info { ("metadata", true) } else { classify(&after, r, &old, &new, &dss_parts, permissions)? };
        changes.push(LaterChange { kind, object: format!("{num} {generation} R"), allowed });
    }
    Ok(changes)
}

/// Whether object `r` has the same stream data (or none) in both versions.
fn same_stream(before: &Document<'_>, after: &Document<'_>, r: ObjRef) -> Result<bool, PdfError> {
    match (before.stream_range(r)?, after.stream_range(r)?) {
        (None, None) => Ok(true),
        (Some(old), Some(new)) if old == new => Ok(true),
        (Some(old), Some(new)) if old.len() != new.len() => Ok(false),
        (Some(_), Some(_)) => Ok(before.stream_digest(r)? == after.stream_digest(r)?),
        _ => Ok(false),
    }
}

/// The object numbers of the /DSS dictionary and everything it holds (arrays, streams,
/// /VRI entries).
fn dss_objects(document: &Document<'_>, dss: Option<&Object>) -> Result<HashSet<u32>, PdfError> {
    let mut parts = HashSet::new();
    let mut queue: Vec<Object> = dss.into_iter().cloned().collect();
    while let Some(object) = queue.pop() {
        if parts.len() > MAX_FIELDS {
            return Err(Damage::BadSignature.into());
        }
        match object {
            Object::Reference(r) if parts.insert(r.num) => queue.push(document.resolve(r)?),
            Object::Array(items) => queue.extend(items),
            Object::Dictionary(d) => queue.extend(d.0.into_iter().map(|(_, v)| v)),
            _ => {}
        }
    }
    Ok(parts)
}

fn without(dict: &Dict, keys: &[&[u8]]) -> Dict {
    Dict(dict.0.iter().filter(|(k, _)| !keys.contains(&k.as_slice())).cloned().collect())
}

/// What a changed object is, and whether `permissions` allow the change.
fn classify(document: &Document<'_>, r: ObjRef, old: &Object, new: &Object, dss: &HashSet<u32>, permissions: u8) -> Result<(&'static str, bool), PdfError> {
    if dss.contains(&r.num) {
        return Ok(("dss", true));
    }
    let (Object::Dictionary(new_dict), old_dict) = (new, old.as_dict()) else {
        // A new array (e.g. /Annots or /Fields grown) is judged by what refers to it.
        return Ok(if matches!(old, Object::Null) && matches!(new, Object::Array(_)) { ("other", true) } else { ("other", false) });
    };
    if r == document.root {
        // The catalog may gain /DSS, /AcroForm (signing), /Metadata and keep all else.
        let keys: [&[u8]; 3] = [b"DSS", b"AcroForm", b"Metadata"];
        let allowed = old_dict.is_some_and(|o| without(o, &keys) == without(new_dict, &keys));
        return Ok(("catalog", allowed));
    }
    match new_dict.name(b"Type") {
        Some(b"Sig") if old_dict.is_none() => return Ok(("signature", permissions >= 2)),
        Some(b"DocTimeStamp") if old_dict.is_none() => return Ok(("document-timestamp", true)),
        // XMP metadata (a modification date): writers update it with every signature.
        Some(b"Metadata") if new_dict.name(b"Subtype") == Some(b"XML") => return Ok(("metadata", true)),
        Some(b"Page") => {
            // A page may gain annotations (a signature's widget); its content may not change.
            let allowed = old_dict.is_some_and(|o| without(o, &[b"Annots"]) == without(new_dict, &[b"Annots"]));
            return Ok(if allowed { ("page", permissions >= 2) } else { ("page-content", false) });
        }
        _ => {}
    }
    if new_dict.get(b"Fields").is_some() && new_dict.get(b"FT").is_none() {
        // The AcroForm: its fields may grow, SigFlags be set.
        let allowed = old_dict.is_none_or(|o| without(o, &[b"Fields", b"SigFlags"]) == without(new_dict, &[b"Fields", b"SigFlags"]));
        return Ok(("acroform", allowed && permissions >= 2));
    }
    if new_dict.name(b"FT") == Some(b"Sig") {
        // A signature field: new, or an empty one being signed.
        let allowed = old_dict.is_none_or(|o| o.get(b"V").is_none());
        return Ok(("signature-field", allowed && permissions >= 2));
    }
    if new_dict.name(b"Subtype").is_some() && new_dict.name(b"Type").is_none_or(|t| t == b"Annot") && new_dict.get(b"Rect").is_some() {
        return Ok(("annotation", permissions >= 3));
    }
    Ok(("other", false))
}

/// The document security store: the /DSS /Certs, /OCSPs and /CRLs streams, decoded.
pub fn security_store(source: &(impl Source + ?Sized)) -> Result<SecurityStore, PdfError> {
    let document = Document::parse(Bytes::new(&source))?;
    let catalog = document.catalog()?;
    let mut store = SecurityStore::default();
    let Some(dss) = catalog.get(b"DSS").map(|d| document.deref(d)).transpose()? else { return Ok(store) };
    let Some(dss) = dss.as_dict() else { return Ok(store) };
    for (key, into) in [(&b"Certs"[..], &mut store.certificates), (b"OCSPs", &mut store.ocsp_responses), (b"CRLs", &mut store.crls)] {
        let Some(Object::Array(items)) = dss.get(key).map(|a| document.deref(a)).transpose()? else { continue };
        for item in items.iter().take(MAX_FIELDS) {
            let Object::Reference(r) = item else { continue };
            into.push(document.stream(*r)?);
        }
    }
    Ok(store)
}
