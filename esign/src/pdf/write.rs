//! Writing an incremental update (ISO 32000-1 §7.5.6): new and rewritten objects appended after
//! the original bytes, then a cross-reference section of the original's kind whose /Prev is the
//! original `startxref`. The original bytes are never touched.

use pkix::DigestAlgorithm;

use super::PdfError;
use super::object::{Dict, ObjRef, Object, write_dict, write_object};
use super::parse::{Document, XrefKind};

/// The objects of one update, in the order they will be written.
pub(crate) struct Update<'d, 'a> {
    document: &'d Document<'a>,
    original: &'d [u8],
    objects: Vec<(ObjRef, Vec<u8>)>,
    next: u32,
}

/// An update written out: the bytes that follow the original, and where each object's body
/// starts in the whole new file.
pub(crate) struct Written {
    pub update: Vec<u8>,
    pub body_offsets: Vec<usize>,
}

impl<'d, 'a> Update<'d, 'a> {
    /// An update of `document`, parsed from `original`.
    pub fn new(document: &'d Document<'a>, original: &'d [u8]) -> Self {
        Update { document, original, objects: Vec::new(), next: document.size }
    }

    /// A fresh object number.
    pub fn allocate(&mut self) -> Result<ObjRef, PdfError> {
        let num = self.next;
        self.next = num.checked_add(1).ok_or(PdfError::TooManyObjects)?;
        Ok(ObjRef { num, generation: 0 })
    }

    /// Adds (or replaces) object `id` with `body`, the bytes between `obj` and `endobj`; returns
    /// its index for [`Written::body_offsets`].
    pub fn put(&mut self, id: ObjRef, body: Vec<u8>) -> usize {
        if let Some(i) = self.objects.iter().position(|(r, _)| *r == id) {
            self.objects[i].1 = body;
            return i;
        }
        self.objects.push((id, body));
        self.objects.len() - 1
    }

    /// Adds (or replaces) object `id` with a direct object.
    pub fn put_object(&mut self, id: ObjRef, object: &Object) -> usize {
        let mut body = Vec::new();
        write_object(&mut body, object);
        self.put(id, body)
    }

    /// Adds a new stream object holding `data` unfiltered.
    pub fn put_stream(&mut self, data: &[u8]) -> Result<ObjRef, PdfError> {
        let id = self.allocate()?;
        let mut body = format!("<</Length {}>>\nstream\n", data.len()).into_bytes();
        body.extend_from_slice(data);
        body.extend_from_slice(b"\nendstream");
        self.put(id, body);
        Ok(id)
    }

    /// The update, to be appended to the original bytes (which it never copies: a large
    /// document is not moved around to be signed).
    pub fn write(mut self) -> Result<Written, PdfError> {
        let original = self.original;
        let base = original.len();
        let mut out = Vec::with_capacity(self.objects.iter().map(|(_, b)| b.len() + 32).sum::<usize>() + 512);
        if !matches!(original.last(), Some(b'\n' | b'\r')) {
            out.push(b'\n');
        }
        let xref_stream = match self.document.kind {
            XrefKind::Stream => Some(self.allocate()?),
            XrefKind::Table => None,
        };
        let mut offsets = Vec::with_capacity(self.objects.len() + 1);
        let mut body_offsets = Vec::with_capacity(self.objects.len());
        for (id, body) in &self.objects {
            offsets.push((*id, base + out.len()));
            out.extend_from_slice(format!("{} {} obj\n", id.num, id.generation).as_bytes());
            body_offsets.push(base + out.len());
            out.extend_from_slice(body);
            out.extend_from_slice(b"\nendobj\n");
        }
        let trailer = self.trailer(&out);
        let xref_offset = base + out.len();
        match xref_stream {
            None => write_table(&mut out, &offsets, &trailer),
            Some(id) => {
                offsets.push((id, xref_offset));
                write_stream(&mut out, id, &offsets, trailer);
            }
        }
        out.extend_from_slice(format!("startxref\n{xref_offset}\n%%EOF\n").as_bytes());
        Ok(Written { update: out, body_offsets })
    }

    /// The trailer entries every section repeats: /Size, /Root, /Info, /ID and /Prev.
    fn trailer(&self, update: &[u8]) -> Dict {
        let old = &self.document.trailer;
        let mut trailer = Dict::default();
        trailer.set(b"Size", Object::Integer(i64::from(self.next)));
        trailer.set(b"Root", Object::Reference(self.document.root));
        if let Some(info) = old.reference(b"Info") {
            trailer.set(b"Info", Object::Reference(info));
        }
        // The first identifier stays (it names the document); the second changes with each
        // version (§14.4). A document without one gets both. The new one is a hash of what
        // tells this version apart — the old identifier, the old length and cross-reference
        // offset, and the update itself — not of the whole file, which a large PDF would make
        // the costliest step of signing.
        let fresh = || {
            let mut digest = DigestAlgorithm::Sha256.context();
            if let Some(Object::Array(id)) = old.get(b"ID") {
                for part in id {
                    if let Object::String(s) = part {
                        digest.update(s);
                    }
                }
            }
            digest.update(&(self.original.len() as u64).to_be_bytes());
            digest.update(&(self.document.startxref as u64).to_be_bytes());
            digest.update(update);
            digest.finish().as_ref().get(..16).unwrap_or_default().to_vec()
        };
        let first = match old.get(b"ID") {
            Some(Object::Array(id)) => match id.first() {
                Some(Object::String(s)) => s.clone(),
                _ => fresh(),
            },
            _ => fresh(),
        };
        trailer.set(b"ID", Object::Array(vec![Object::String(first), Object::String(fresh())]));
        trailer.set(b"Prev", Object::Integer(self.document.startxref as i64));
        trailer
    }
}

/// Consecutive runs of object numbers: `(first, entries)`.
fn runs(offsets: &[(ObjRef, usize)]) -> Vec<(u32, Vec<(ObjRef, usize)>)> {
    let mut sorted = offsets.to_vec();
    sorted.sort();
    let mut runs: Vec<(u32, Vec<(ObjRef, usize)>)> = Vec::new();
    for entry in sorted {
        match runs.last_mut() {
            Some((first, entries)) if u64::from(*first) + entries.len() as u64 == u64::from(entry.0.num) => entries.push(entry),
            _ => runs.push((entry.0.num, vec![entry])),
        }
    }
    runs
}

fn write_table(out: &mut Vec<u8>, offsets: &[(ObjRef, usize)], trailer: &Dict) {
    out.extend_from_slice(b"xref\n");
    for (first, entries) in runs(offsets) {
        out.extend_from_slice(format!("{first} {}\n", entries.len()).as_bytes());
        for (id, offset) in entries {
            // Exactly 20 bytes each (§7.5.4).
            out.extend_from_slice(format!("{offset:010} {:05} n\r\n", id.generation).as_bytes());
        }
    }
    out.extend_from_slice(b"trailer\n");
    write_dict(out, trailer);
    out.push(b'\n');
}

fn write_stream(out: &mut Vec<u8>, id: ObjRef, offsets: &[(ObjRef, usize)], mut dict: Dict) {
    let largest = offsets.iter().map(|(_, o)| *o as u64).max().unwrap_or(0);
    let width = ((64 - largest.leading_zeros() as usize).div_ceil(8)).max(1);
    let mut index = Vec::new();
    let mut rows = Vec::new();
    for (first, entries) in runs(offsets) {
        index.push(Object::Integer(i64::from(first)));
        index.push(Object::Integer(entries.len() as i64));
        for (id, offset) in entries {
            rows.push(1u8);
            rows.extend_from_slice(&(offset as u64).to_be_bytes()[8 - width..]);
            rows.extend_from_slice(&id.generation.to_be_bytes());
        }
    }
    dict.set(b"Type", Object::Name(b"XRef".to_vec()));
    dict.set(b"W", Object::Array(vec![Object::Integer(1), Object::Integer(width as i64), Object::Integer(2)]));
    dict.set(b"Index", Object::Array(index));
    dict.set(b"Length", Object::Integer(rows.len() as i64));
    out.extend_from_slice(format!("{} {} obj\n", id.num, id.generation).as_bytes());
    write_dict(out, &dict);
    out.extend_from_slice(b"\nstream\n");
    out.extend_from_slice(&rows);
    out.extend_from_slice(b"\nendstream\nendobj\n");
}
