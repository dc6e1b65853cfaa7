//! PAdES signatures (ETSI EN 319 142-1) as incremental updates of a PDF (ISO 32000-1 §7.5.6).
//!
//! [`prepare`] appends an invisible signature field on the first page and a signature
//! dictionary whose /Contents is a reserved run of zeros; the caller digests the two byte ranges
//! around it ([`Prepared::digest`]), has the CMS (or the RFC 3161 token, for a document
//! timestamp) made over that digest, and [`Prepared::finish`] writes it into the reservation.
//! [`add_dss`] appends the validation material of PAdES B-LT as a further update.
//!
//! The original bytes are never modified: every output starts with them, so earlier signatures
//! stay valid. The parser reads only what an update needs and treats the input as hostile: every
//! offset is bounds-checked, and malformed input is a [`PdfError`], never a panic. It does not
//! decrypt, repair, or render anything.

mod object;
mod parse;
pub mod read;
mod write;

use object::{Dict, Object, write_dict};
use parse::Document;
use pkix::DigestAlgorithm;
use time::OffsetDateTime;
use write::Update;

use crate::source::Bytes;

/// The default reservation for /Contents, in bytes of DER: room for a CMS with a timestamp token,
/// a certificate chain and an OCSP response.
pub const DEFAULT_RESERVED: usize = 16 * 1024;

/// What is wrong with a PDF that cannot be signed, or with a signature that does not fit.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PdfError {
    /// The file does not start like a PDF.
    #[error("this file is not a PDF document")]
    NotPdf,
    /// The document is encrypted (has /Encrypt).
    #[error("this PDF is password-protected or encrypted; remove the protection and try again")]
    Encrypted,
    /// The document's structure is broken.
    #[error("this PDF is damaged and cannot be signed; open and save it again with a PDF application ({0})")]
    Damaged(#[from] Damage),
    /// The document carries a certification signature that allows no changes (DocMDP /P 1).
    #[error("this PDF was certified by its author against any change, so it cannot be signed again")]
    CertifiedNoChanges,
    /// The signature (CMS or timestamp token) is larger than the space reserved for it.
    #[error("the signature is {needed} bytes but only {reserved} bytes were reserved for it in the PDF")]
    SignatureTooLarge {
        /// The size of the DER given to [`Prepared::finish`].
        needed: usize,
        /// The size reserved by [`prepare`].
        reserved: usize,
    },
    /// The caller asked to reserve more than [`MAX_RESERVED`] bytes.
    #[error("{reserved} bytes cannot be reserved for a signature; the limit is {limit}")]
    ReservationTooLarge {
        /// The reservation asked for.
        reserved: usize,
        /// [`MAX_RESERVED`].
        limit: usize,
    },
    /// The document is too large for a 10-digit /ByteRange (10 GB).
    #[error("this PDF is too large to be signed")]
    TooLarge,
    /// The document already has as many objects as a PDF can number.
    #[error("this PDF has too many objects to be updated")]
    TooManyObjects,
}

/// Why a document is called damaged: for logs and support; the citizen sees [`PdfError::Damaged`]'s text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Damage {
    /// No `startxref` near the end of the file.
    #[error("no startxref")]
    NoStartxref,
    /// An offset points outside the file.
    #[error("offset {offset} outside the file")]
    BadOffset {
        /// The offset, or where it was read.
        offset: usize,
    },
    /// A cross-reference section cannot be read.
    #[error("broken cross-reference section at {offset}")]
    BrokenXref {
        /// Where the section (or the broken entry) is.
        offset: usize,
    },
    /// The /Prev chain of cross-reference sections loops.
    #[error("cross-reference sections loop at {offset}")]
    XrefLoop {
        /// The offset seen twice.
        offset: usize,
    },
    /// The file ends in the middle of an object.
    #[error("truncated object")]
    Truncated,
    /// An object cannot be parsed.
    #[error("unreadable object at {offset}")]
    BadObject {
        /// Where parsing failed.
        offset: usize,
    },
    /// A stream's data cannot be found or decoded.
    #[error("unreadable stream at {offset}")]
    BadStream {
        /// Where the stream object is.
        offset: usize,
    },
    /// A stream uses a filter or predictor this reader does not decode.
    #[error("unsupported stream filter at {offset}")]
    UnsupportedFilter {
        /// Where the stream object is.
        offset: usize,
    },
    /// An object stream cannot be read, or does not hold the object it should.
    #[error("unreadable object stream {num}")]
    BadObjectStream {
        /// The object stream's number.
        num: u32,
    },
    /// The cross-reference table points at a different object.
    #[error("object {expected} is not at {offset}")]
    WrongObject {
        /// The object looked for.
        expected: u32,
        /// Where the table said it is.
        offset: usize,
    },
    /// An object that must be a dictionary is not.
    #[error("object {num} is not a dictionary")]
    NotADictionary {
        /// Its number.
        num: u32,
    },
    /// The trailer names no catalog, or it cannot be read.
    #[error("no document catalog")]
    NoRoot,
    /// The page tree is missing, loops or has no page.
    #[error("no readable page")]
    BadPageTree,
    /// A signed document's signature dictionary is not where its field says.
    #[error("unreadable signature dictionary")]
    BadSignature,
    /// An object (its stream data apart) is larger than [`object::MAX_OBJECT`], or a stream
    /// larger than the reader reads whole.
    #[error("object at {offset} is too large")]
    ObjectTooLarge {
        /// Where it is.
        offset: usize,
    },
    /// The file could not be read there (a file cut or changed while it is read).
    #[error("cannot read the file at {offset}: {error}")]
    Unreadable {
        /// Where the read was.
        offset: usize,
        /// What the system said.
        error: String,
    },
}

/// The citizen-visible details of a signature; /Name, /Reason and /Location are written as
/// UTF-16BE text strings, so any script (Arabic included) is kept.
#[derive(Clone, Debug)]
pub struct SignatureDetails {
    /// The claimed signing time (/M); PAdES puts it here, not in the CMS signed attributes.
    pub signing_time: OffsetDateTime,
    /// The signer's name (/Name).
    pub name: Option<String>,
    /// Why the document is signed (/Reason).
    pub reason: Option<String>,
    /// Where it is signed (/Location).
    pub location: Option<String>,
}

/// Which kind of signature dictionary [`prepare`] writes.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum SignatureKind {
    /// A PAdES signature: /Type /Sig, /SubFilter /ETSI.CAdES.detached, /Contents a detached CMS.
    Cades(SignatureDetails),
    /// A document timestamp (PAdES B-LTA): /Type /DocTimeStamp, /SubFilter /ETSI.RFC3161,
    /// /Contents an RFC 3161 token over the byte-range digest.
    DocumentTimestamp,
}

/// What [`prepare`] does.
#[derive(Clone, Debug)]
pub struct PrepareOptions {
    /// The kind of signature.
    pub kind: SignatureKind,
    /// Bytes of DER reserved for /Contents (written as twice as many hexadecimal digits).
    pub reserved: usize,
}

impl PrepareOptions {
    /// A PAdES signature with the default reservation.
    pub fn signature(details: SignatureDetails) -> Self {
        PrepareOptions { kind: SignatureKind::Cades(details), reserved: DEFAULT_RESERVED }
    }

    /// A document timestamp with the default reservation.
    pub fn document_timestamp() -> Self {
        PrepareOptions { kind: SignatureKind::DocumentTimestamp, reserved: DEFAULT_RESERVED }
    }
}

/// A document with a signature dictionary whose /Contents is still zeros: the original,
/// borrowed, and the update that follows it (the original is copied once, by
/// [`Prepared::finish`]).
#[derive(Clone)]
pub struct Prepared<'a> {
    original: &'a [u8],
    update: Vec<u8>,
    byte_range: [usize; 4],
    reserved: usize,
}

/// The room [`Prepared::finish`] leaves after the signed file, so that a `/DSS` update (a
/// chain, OCSP responses and CRLs) is appended without moving the file.
const ROOM_AFTER: usize = 64 * 1024;

/// The largest reservation [`prepare`] accepts (a CMS with a long chain and several OCSP responses is far smaller).
pub const MAX_RESERVED: usize = 1024 * 1024;

/// The placeholder /ByteRange: wide enough for four 10-digit numbers, patched in place.
const BYTE_RANGE_PLACEHOLDER: &[u8] = b"[0 0000000000 0000000000 0000000000]";

/// Adds an empty signature (or document timestamp) to `original` as one incremental update.
///
/// The update adds an invisible signature field on the first page, creates or extends the
/// catalog's /AcroForm, and reserves `options.reserved` bytes for the signature.
pub fn prepare<'a>(original: &'a [u8], options: &PrepareOptions) -> Result<Prepared<'a>, PdfError> {
    if options.reserved > MAX_RESERVED {
        return Err(PdfError::ReservationTooLarge { reserved: options.reserved, limit: MAX_RESERVED });
    }
    let document = Document::parse(Bytes::new(&original))?;
    let catalog = document.catalog()?;
    // A document timestamp is no change to a certified document (ISO 32000-2 §12.8.2.2.1): only signatures are refused.
    if matches!(options.kind, SignatureKind::Cades(_)) {
        refuse_if_certified_no_changes(&document, &catalog)?;
    }
    let (page_ref, mut page) = document.first_page()?;
    let mut update = Update::new(&document, original);

    // The AcroForm: where it lives decides which object is rewritten.
    let (acroform_ref, mut acroform) = match catalog.get(b"AcroForm") {
        Some(Object::Reference(r)) => match document.resolve(*r)? {
            Object::Dictionary(d) => (Some(*r), d),
            _ => (None, Dict::default()),
        },
        Some(Object::Dictionary(d)) => (None, d.clone()),
        _ => (None, Dict::default()),
    };
    let (fields_ref, mut fields) = match acroform.get(b"Fields") {
        Some(Object::Reference(r)) => match document.resolve(*r)? {
            Object::Array(a) => (Some(*r), a),
            _ => (None, Vec::new()),
        },
        Some(Object::Array(a)) => (None, a.clone()),
        _ => (None, Vec::new()),
    };
    let name = unique_field_name(&document, &fields);

    let signature_ref = update.allocate()?;
    let field_ref = update.allocate()?;
    let (body, byte_range_at, contents_at) = signature_dictionary(&options.kind, options.reserved);
    let signature_index = update.put(signature_ref, body);

    let mut field = Dict::default();
    field.set(b"Type", Object::Name(b"Annot".to_vec()));
    field.set(b"Subtype", Object::Name(b"Widget".to_vec()));
    field.set(b"FT", Object::Name(b"Sig".to_vec()));
    field.set(b"T", Object::String(name.into_bytes()));
    field.set(b"V", Object::Reference(signature_ref));
    field.set(b"Rect", Object::Array(vec![Object::Integer(0); 4]));
    // Print and Locked (§12.5.3): an invisible signature that stays put.
    field.set(b"F", Object::Integer(132));
    field.set(b"P", Object::Reference(page_ref));
    update.put_object(field_ref, &Object::Dictionary(field));

    // The first page's /Annots gains the widget.
    match page.get(b"Annots") {
        Some(Object::Reference(r)) => match document.resolve(*r)? {
            Object::Array(mut annots) => {
                annots.push(Object::Reference(field_ref));
                update.put_object(*r, &Object::Array(annots));
            }
            _ => {
                page.set(b"Annots", Object::Array(vec![Object::Reference(field_ref)]));
                update.put_object(page_ref, &Object::Dictionary(page));
            }
        },
        Some(Object::Array(annots)) => {
            let mut annots = annots.clone();
            annots.push(Object::Reference(field_ref));
            page.set(b"Annots", Object::Array(annots));
            update.put_object(page_ref, &Object::Dictionary(page));
        }
        _ => {
            page.set(b"Annots", Object::Array(vec![Object::Reference(field_ref)]));
            update.put_object(page_ref, &Object::Dictionary(page));
        }
    }

    // The AcroForm's /Fields gains the field; /SigFlags says the document is signed and append-only.
    fields.push(Object::Reference(field_ref));
    match fields_ref {
        Some(r) => {
            update.put_object(r, &Object::Array(fields));
        }
        None => acroform.set(b"Fields", Object::Array(fields)),
    }
    let flags = acroform.integer(b"SigFlags").unwrap_or(0) | 3;
    acroform.set(b"SigFlags", Object::Integer(flags));
    match acroform_ref {
        Some(r) => {
            update.put_object(r, &Object::Dictionary(acroform));
        }
        None => {
            let r = update.allocate()?;
            update.put_object(r, &Object::Dictionary(acroform));
            let mut catalog = catalog;
            catalog.set(b"AcroForm", Object::Reference(r));
            update.put_object(document.root, &Object::Dictionary(catalog));
        }
    }

    let written = update.write()?;
    let mut bytes = written.update;
    let base = original.len();
    let body_start = written.body_offsets.get(signature_index).copied().ok_or(Damage::BadSignature)?;
    let contents_start = body_start + contents_at;
    let contents_end = contents_start + 2 + 2 * options.reserved;
    let byte_range = [0, contents_start, contents_end, base + bytes.len() - contents_end];
    let patch = format!("[0 {} {} {}]", byte_range[1], byte_range[2], byte_range[3]);
    let at = body_start - base + byte_range_at;
    let slot = bytes.get_mut(at..at + BYTE_RANGE_PLACEHOLDER.len()).ok_or(Damage::BadSignature)?;
    if patch.len() > slot.len() {
        return Err(PdfError::TooLarge);
    }
    slot.fill(b' ');
    slot[..patch.len()].copy_from_slice(patch.as_bytes());
    Ok(Prepared { original, update: bytes, byte_range, reserved: options.reserved })
}

impl std::fmt::Debug for Prepared<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("len", &(self.original.len() + self.update.len()))
            .field("byte_range", &self.byte_range)
            .field("reserved", &self.reserved)
            .finish()
    }
}

impl Prepared<'_> {
    /// The /ByteRange: `[0, a, b, c]`, the signed bytes being `0..a` and `b..b+c`.
    pub fn byte_range(&self) -> [usize; 4] {
        self.byte_range
    }

    /// The prepared document, /Contents still zeros (for handing the byte ranges to other tools).
    pub fn document(&self) -> Vec<u8> {
        [self.original, &self.update].concat()
    }

    /// The digest of the two byte ranges: what the CMS's message-digest attribute, or the
    /// timestamp's message imprint, must hold.
    pub fn digest(&self, algorithm: DigestAlgorithm) -> Vec<u8> {
        self.digests(algorithm).0
    }

    /// The digest of the two byte ranges, and the SHA-256 of the original document, in one
    /// pass over the original when `algorithm` is SHA-256 (the signed ranges start with it).
    pub fn digests(&self, algorithm: DigestAlgorithm) -> (Vec<u8>, [u8; 32]) {
        let [_, a, b, _] = self.byte_range;
        let base = self.original.len();
        let mut context = algorithm.context();
        context.update(self.original);
        let original =
            if algorithm == DigestAlgorithm::Sha256 { context.clone().finish().as_ref().try_into().unwrap_or_default() } else { sha256(self.original) };
        context.update(self.update.get(..a - base).unwrap_or_default());
        context.update(self.update.get(b - base..).unwrap_or_default());
        (context.finish().as_ref().to_vec(), original)
    }

    /// Writes `signature` (DER of the CMS or timestamp token) into the reservation,
    /// zero-padded: the signed file, with room after it for a `/DSS` update.
    pub fn finish(self, signature: &[u8]) -> Result<Vec<u8>, PdfError> {
        if signature.len() > self.reserved {
            return Err(PdfError::SignatureTooLarge { needed: signature.len(), reserved: self.reserved });
        }
        let mut update = self.update;
        let [_, a, _, _] = self.byte_range;
        let at = a + 1 - self.original.len();
        let hex = update.get_mut(at..at + 2 * signature.len()).ok_or(Damage::BadSignature)?;
        for (pair, byte) in hex.chunks_exact_mut(2).zip(signature) {
            pair.copy_from_slice(format!("{byte:02X}").as_bytes());
        }
        let mut bytes = Vec::with_capacity(self.original.len() + update.len() + ROOM_AFTER);
        bytes.extend_from_slice(self.original);
        bytes.extend_from_slice(&update);
        Ok(bytes)
    }
}

/// The SHA-256 of `bytes`.
fn sha256(bytes: &[u8]) -> [u8; 32] {
    DigestAlgorithm::Sha256.digest(bytes).try_into().unwrap_or_default()
}

/// The signature dictionary's body, and where in it the /ByteRange placeholder and the /Contents `<` are.
fn signature_dictionary(kind: &SignatureKind, reserved: usize) -> (Vec<u8>, usize, usize) {
    let mut head = Dict::default();
    match kind {
        SignatureKind::Cades(details) => {
            head.set(b"Type", Object::Name(b"Sig".to_vec()));
            head.set(b"Filter", Object::Name(b"Adobe.PPKLite".to_vec()));
            head.set(b"SubFilter", Object::Name(b"ETSI.CAdES.detached".to_vec()));
            head.set(b"M", Object::String(pdf_date(details.signing_time).into_bytes()));
            for (key, value) in [(&b"Name"[..], &details.name), (b"Reason", &details.reason), (b"Location", &details.location)] {
                if let Some(value) = value {
                    head.set(key, Object::String(text_string(value)));
                }
            }
        }
        SignatureKind::DocumentTimestamp => {
            head.set(b"Type", Object::Name(b"DocTimeStamp".to_vec()));
            head.set(b"Filter", Object::Name(b"Adobe.PPKLite".to_vec()));
            head.set(b"SubFilter", Object::Name(b"ETSI.RFC3161".to_vec()));
        }
    }
    let mut body = Vec::with_capacity(2 * reserved + 512);
    write_dict(&mut body, &head);
    body.truncate(body.len() - 2);
    body.extend_from_slice(b"/ByteRange ");
    let byte_range_at = body.len();
    body.extend_from_slice(BYTE_RANGE_PLACEHOLDER);
    body.extend_from_slice(b"/Contents ");
    let contents_at = body.len();
    body.push(b'<');
    body.resize(body.len() + 2 * reserved, b'0');
    body.extend_from_slice(b">>>");
    (body, byte_range_at, contents_at)
}

/// A PDF date (§7.9.4) in UTC: `D:YYYYMMDDHHmmSSZ`.
fn pdf_date(time: OffsetDateTime) -> String {
    let t = time.to_offset(time::UtcOffset::UTC);
    format!("D:{:04}{:02}{:02}{:02}{:02}{:02}Z", t.year(), u8::from(t.month()), t.day(), t.hour(), t.minute(), t.second())
}

/// A text string (§7.9.2.2) in UTF-16BE with its byte order mark.
fn text_string(s: &str) -> Vec<u8> {
    let mut out = vec![0xfe, 0xff];
    for unit in s.encode_utf16() {
        out.extend_from_slice(&unit.to_be_bytes());
    }
    out
}

/// `Signature1`, `Signature2`, …: the first not already a top-level field's name.
fn unique_field_name(document: &Document<'_>, fields: &[Object]) -> String {
    let taken: Vec<Vec<u8>> = fields
        .iter()
        .filter_map(|f| document.deref(f).ok())
        .filter_map(|f| match f {
            Object::Dictionary(d) => match d.get(b"T") {
                Some(Object::String(t)) => Some(t.clone()),
                _ => None,
            },
            _ => None,
        })
        .collect();
    (1..).map(|i| format!("Signature{i}")).find(|n| !taken.iter().any(|t| t == n.as_bytes() || *t == text_string(n))).unwrap_or_default()
}

/// Refuses a document certified with DocMDP /P 1 (§12.8.2.2): no change at all is allowed.
fn refuse_if_certified_no_changes(document: &Document<'_>, catalog: &Dict) -> Result<(), PdfError> {
    let Some(perms) = catalog.get(b"Perms").map(|p| document.deref(p)).transpose()? else { return Ok(()) };
    let Some(docmdp) = perms.as_dict().and_then(|p| p.get(b"DocMDP")) else { return Ok(()) };
    // A certification that cannot be read is treated as the strictest: better refuse than break it.
    let Object::Dictionary(signature) = document.deref(docmdp)? else { return Err(Damage::BadSignature.into()) };
    let references = match signature.get(b"Reference").map(|r| document.deref(r)).transpose()? {
        Some(Object::Array(refs)) => refs,
        _ => return Ok(()),
    };
    for reference in references {
        let Object::Dictionary(reference) = document.deref(&reference)? else { continue };
        if reference.name(b"TransformMethod") != Some(b"DocMDP") {
            continue;
        }
        let params = match reference.get(b"TransformParams").map(|p| document.deref(p)).transpose()? {
            Some(Object::Dictionary(p)) => p,
            _ => Dict::default(),
        };
        if params.integer(b"P").unwrap_or(2) == 1 {
            return Err(PdfError::CertifiedNoChanges);
        }
    }
    Ok(())
}

/// Adds the validation material of PAdES B-LT to a signed PDF as an incremental update: the
/// catalog's /DSS gains /Certs, /OCSPs and /CRLs streams (existing entries are kept).
///
/// `certificates`, `ocsp_responses` and `crls` are DER. No /VRI dictionary is written: it is
/// optional in EN 319 142-1 §5.4.2.2 and validators use the /DSS arrays as a whole.
pub fn add_dss(mut signed: Vec<u8>, certificates: &[Vec<u8>], ocsp_responses: &[Vec<u8>], crls: &[Vec<u8>]) -> Result<Vec<u8>, PdfError> {
    let update = dss_update(&signed, certificates, ocsp_responses, crls)?;
    signed.extend_from_slice(&update);
    Ok(signed)
}

/// The update [`add_dss`] appends to `signed`.
fn dss_update(signed: &[u8], certificates: &[Vec<u8>], ocsp_responses: &[Vec<u8>], crls: &[Vec<u8>]) -> Result<Vec<u8>, PdfError> {
    // DSS updates are no change to a certified document (ISO 32000-2 §12.8.2.2.1), so /P 1 is not refused here.
    let document = Document::parse(Bytes::new(&signed))?;
    let mut catalog = document.catalog()?;
    let mut update = Update::new(&document, signed);
    let (dss_ref, mut dss) = match catalog.get(b"DSS") {
        Some(Object::Reference(r)) => match document.resolve(*r)? {
            Object::Dictionary(d) => (Some(*r), d),
            _ => (None, Dict::default()),
        },
        Some(Object::Dictionary(d)) => (None, d.clone()),
        _ => (None, Dict::default()),
    };
    for (key, items) in [(&b"Certs"[..], certificates), (b"OCSPs", ocsp_responses), (b"CRLs", crls)] {
        if items.is_empty() {
            continue;
        }
        let (array_ref, mut array) = match dss.get(key) {
            Some(Object::Reference(r)) => match document.resolve(*r)? {
                Object::Array(a) => (Some(*r), a),
                _ => (None, Vec::new()),
            },
            Some(Object::Array(a)) => (None, a.clone()),
            _ => (None, Vec::new()),
        };
        let mut seen: Vec<&[u8]> = Vec::new();
        for item in items {
            if seen.contains(&item.as_slice()) {
                continue;
            }
            seen.push(item);
            array.push(Object::Reference(update.put_stream(item)?));
        }
        match array_ref {
            Some(r) => {
                update.put_object(r, &Object::Array(array));
            }
            None => dss.set(key, Object::Array(array)),
        }
    }
    match dss_ref {
        Some(r) => {
            update.put_object(r, &Object::Dictionary(dss));
        }
        None => {
            let r = update.allocate()?;
            update.put_object(r, &Object::Dictionary(dss));
            catalog.set(b"DSS", Object::Reference(r));
            update.put_object(document.root, &Object::Dictionary(catalog));
        }
    }
    Ok(update.write()?.update)
}

/// A new PDF file from its objects, numbered from 1 in the order given (object 1 is the
/// catalog): the header, the objects, a classic cross-reference table, and a trailer whose
/// `/ID` is a hash of what precedes it. For the short documents a service generates (a form,
/// a letter) and for tests; what the objects say is the caller's.
pub fn write_document(objects: &[Vec<u8>]) -> Vec<u8> {
    let mut out = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n".to_vec();
    let mut offsets = Vec::with_capacity(objects.len());
    for (i, body) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
        out.extend_from_slice(body);
        out.extend_from_slice(b"\nendobj\n");
    }
    let xref = out.len();
    out.extend_from_slice(format!("xref\n0 {}\n0000000000 65535 f\r\n", objects.len() + 1).as_bytes());
    for offset in offsets {
        out.extend_from_slice(format!("{offset:010} 00000 n\r\n").as_bytes());
    }
    let id: String = DigestAlgorithm::Sha256.digest(&out)[..16].iter().map(|b| format!("{b:02X}")).collect();
    out.extend_from_slice(format!("trailer\n<< /Size {} /Root 1 0 R /ID [<{id}> <{id}>] >>\nstartxref\n{xref}\n%%EOF\n", objects.len() + 1).as_bytes());
    out
}
