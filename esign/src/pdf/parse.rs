//! Reading a PDF just enough to update it: the cross-reference sections from `startxref` back
//! through `/Prev` (tables and streams, §7.5.4 and §7.5.8), object streams (§7.5.7), the trailer,
//! and the few objects an update touches (catalog, first page, AcroForm, /Perms, /DSS).

use std::cell::RefCell;
use std::collections::{HashMap, HashSet, VecDeque};

use super::object::{Dict, Indirect, Lexer, ObjRef, Object, find, parse_indirect, rfind, unreadable, windowed};
use super::{Damage, PdfError};
use crate::source::Bytes;

/// More xref sections than any real document has; stops `/Prev` chains that never end.
const MAX_SECTIONS: usize = 4096;
/// The most a decoded xref or object stream may grow to (a guard against deflate bombs).
const MAX_DECODED: usize = 256 * 1024 * 1024;
/// The most stream data read whole (a /DSS certificate, OCSP response or CRL, an xref or
/// object stream, before it is decoded): a national CRL fits; a page's content is never read.
const MAX_STREAM: usize = 64 * 1024 * 1024;
/// How many pages deep a page tree may nest.
const MAX_PAGE_TREE_DEPTH: usize = 64;

/// Where the newest version of an object is.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Entry {
    Free,
    /// At a byte offset, with its generation.
    Offset(usize, u16),
    /// The `index`th object of the object stream `stream`.
    Compressed {
        stream: u32,
        index: usize,
    },
}

/// The kind of the newest cross-reference section, which an update repeats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum XrefKind {
    Table,
    Stream,
}

/// How many of the objects last parsed a [`Document`] keeps: a form whose thousands of fields
/// share one signature dictionary parses it once, not once per field.
const RECENT: usize = 4;

/// A parsed PDF: the file (read where needed, never whole), where each object is, and the
/// newest trailer.
#[derive(Debug)]
pub(crate) struct Document<'a> {
    pub bytes: Bytes<'a>,
    /// The objects last parsed, by offset, newest first.
    recent: RefCell<VecDeque<(usize, Indirect)>>,
    entries: HashMap<u32, Entry>,
    /// The newest trailer (or xref stream dictionary).
    pub trailer: Dict,
    /// The offset `startxref` names: the update's /Prev.
    pub startxref: usize,
    pub kind: XrefKind,
    /// One more than the highest object number in use.
    pub size: u32,
    pub root: ObjRef,
}

impl<'a> Document<'a> {
    /// Reads the structure of `bytes`, refusing encrypted and damaged files.
    pub fn parse(bytes: Bytes<'a>) -> Result<Self, PdfError> {
        let head = bytes.read_up_to(0, 1024).map_err(unreadable(0))?;
        if find(&head, b"%PDF-").is_none() {
            return Err(PdfError::NotPdf);
        }
        let startxref = find_startxref(&bytes)?;
        let mut entries = HashMap::new();
        let mut newest: Option<(Dict, XrefKind)> = None;
        let mut visited = HashSet::new();
        let mut next = Some(startxref);
        while let Some(offset) = next.take() {
            if !visited.insert(offset) || visited.len() > MAX_SECTIONS {
                return Err(Damage::XrefLoop { offset }.into());
            }
            let (trailer, kind) = read_section(&bytes, offset, &mut entries)?;
            if trailer.get(b"Encrypt").is_some() {
                return Err(PdfError::Encrypted);
            }
            // A hybrid file's table names a stream for objects the table leaves out (§7.5.8.4).
            if let Some(stm) = trailer.integer(b"XRefStm").and_then(|o| usize::try_from(o).ok())
                && visited.insert(stm)
            {
                read_section(&bytes, stm, &mut entries)?;
            }
            next = match trailer.get(b"Prev") {
                None => None,
                Some(Object::Integer(p)) => Some(usize::try_from(*p).map_err(|_| Damage::BadOffset { offset })?),
                Some(_) => return Err(Damage::BrokenXref { offset }.into()),
            };
            if newest.is_none() {
                newest = Some((trailer, kind));
            }
        }
        let (trailer, kind) = newest.ok_or(Damage::BrokenXref { offset: startxref })?;
        let root = trailer.reference(b"Root").ok_or(Damage::NoRoot)?;
        let declared = trailer.integer(b"Size").and_then(|s| u32::try_from(s).ok()).unwrap_or(0);
        let highest = entries.keys().max().map_or(0, |n| n.saturating_add(1));
        let document =
            Document { bytes, recent: RefCell::new(VecDeque::with_capacity(RECENT)), entries, trailer, startxref, kind, size: declared.max(highest), root };
        match document.resolve(root) {
            Ok(Object::Dictionary(_)) => Ok(document),
            _ => Err(Damage::NoRoot.into()),
        }
    }

    /// The indirect object at `offset`, parsed once while it is among the [`RECENT`] ones.
    fn indirect(&self, offset: usize) -> Result<Indirect, Damage> {
        if let Some((_, found)) = self.recent.borrow().iter().find(|(at, _)| *at == offset) {
            return Ok(found.clone());
        }
        let found = parse_indirect(&self.bytes, offset)?;
        let mut recent = self.recent.borrow_mut();
        if recent.len() == RECENT {
            recent.pop_back();
        }
        recent.push_front((offset, found.clone()));
        Ok(found)
    }

    /// The object `r` refers to; a free or missing object is `null` (§7.3.10).
    pub fn resolve(&self, r: ObjRef) -> Result<Object, PdfError> {
        match self.entries.get(&r.num) {
            None | Some(Entry::Free) => Ok(Object::Null),
            Some(Entry::Offset(offset, generation)) => {
                if *generation != r.generation {
                    return Ok(Object::Null);
                }
                let found = self.indirect(*offset)?;
                if found.id != r {
                    return Err(Damage::WrongObject { expected: r.num, offset: *offset }.into());
                }
                Ok(found.object)
            }
            Some(Entry::Compressed { stream, index }) => {
                if r.generation != 0 {
                    return Ok(Object::Null);
                }
                self.compressed(*stream, *index, r.num)
            }
        }
    }

    /// `object` itself, or what it refers to.
    pub fn deref(&self, object: &Object) -> Result<Object, PdfError> {
        match object {
            Object::Reference(r) => self.resolve(*r),
            other => Ok(other.clone()),
        }
    }

    /// The dictionary `r` refers to.
    pub fn dict(&self, r: ObjRef) -> Result<Dict, PdfError> {
        match self.resolve(r)? {
            Object::Dictionary(d) => Ok(d),
            _ => Err(Damage::NotADictionary { num: r.num }.into()),
        }
    }

    /// The catalog.
    pub fn catalog(&self) -> Result<Dict, PdfError> {
        self.dict(self.root)
    }

    /// The first page in document order: its reference and dictionary.
    pub fn first_page(&self) -> Result<(ObjRef, Dict), PdfError> {
        let catalog = self.catalog()?;
        let pages = catalog.reference(b"Pages").ok_or(Damage::BadPageTree)?;
        let mut seen = HashSet::new();
        self.first_leaf(pages, &mut seen, 0)?.ok_or_else(|| Damage::BadPageTree.into())
    }

    fn first_leaf(&self, node: ObjRef, seen: &mut HashSet<u32>, depth: usize) -> Result<Option<(ObjRef, Dict)>, PdfError> {
        if depth > MAX_PAGE_TREE_DEPTH || !seen.insert(node.num) {
            return Err(Damage::BadPageTree.into());
        }
        let dict = self.dict(node).map_err(|_| Damage::BadPageTree)?;
        match dict.name(b"Type") {
            Some(b"Page") => Ok(Some((node, dict))),
            Some(b"Pages") => {
                let kids = match dict.get(b"Kids").map(|k| self.deref(k)).transpose()? {
                    Some(Object::Array(kids)) => kids,
                    _ => return Err(Damage::BadPageTree.into()),
                };
                for kid in kids {
                    let Object::Reference(kid) = kid else { return Err(Damage::BadPageTree.into()) };
                    if let Some(found) = self.first_leaf(kid, seen, depth + 1)? {
                        return Ok(Some(found));
                    }
                }
                Ok(None)
            }
            _ => Err(Damage::BadPageTree.into()),
        }
    }

    /// The numbers of the objects in use.
    pub fn object_numbers(&self) -> impl Iterator<Item = u32> + '_ {
        self.entries.iter().filter(|(_, e)| **e != Entry::Free).map(|(n, _)| *n)
    }

    /// The generation of object `num` in use, if it is.
    pub fn generation(&self, num: u32) -> Option<u16> {
        match self.entries.get(&num)? {
            Entry::Offset(_, generation) => Some(*generation),
            Entry::Compressed { .. } => Some(0),
            Entry::Free => None,
        }
    }

    /// Whether the newest version of object `num` was written at or after `offset` (in an
    /// update appended there): directly, or in an object stream written there.
    pub fn written_after(&self, num: u32, offset: usize) -> bool {
        match self.entries.get(&num) {
            Some(Entry::Offset(at, _)) => *at >= offset,
            Some(Entry::Compressed { stream, .. }) => matches!(self.entries.get(stream), Some(Entry::Offset(at, _)) if *at >= offset),
            _ => false,
        }
    }

    /// Where the still-encoded data of stream object `r` is; `None` when `r` is not a stream.
    pub fn stream_range(&self, r: ObjRef) -> Result<Option<std::ops::Range<usize>>, PdfError> {
        let Some(Entry::Offset(offset, generation)) = self.entries.get(&r.num) else { return Ok(None) };
        if *generation != r.generation {
            return Ok(None);
        }
        Ok(self.indirect(*offset)?.stream)
    }

    /// The SHA-256 of the still-encoded data of stream object `r`, read in chunks; `None` when
    /// `r` is not a stream.
    pub fn stream_digest(&self, r: ObjRef) -> Result<Option<Vec<u8>>, PdfError> {
        let Some(range) = self.stream_range(r)? else { return Ok(None) };
        let mut context = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        self.bytes.chunks(range.clone(), |chunk| context.update(chunk)).map_err(unreadable(range.start))?;
        Ok(Some(context.finish().as_ref().to_vec()))
    }

    /// The decoded data of stream object `r`.
    pub fn stream(&self, r: ObjRef) -> Result<Vec<u8>, PdfError> {
        let Some(Entry::Offset(offset, _)) = self.entries.get(&r.num) else { return Err(Damage::BadStream { offset: 0 }.into()) };
        let found = self.indirect(*offset)?;
        match (found.object, found.stream) {
            (Object::Dictionary(dict), Some(range)) if found.id == r => decode_stream(&self.bytes, &dict, range, *offset),
            _ => Err(Damage::BadStream { offset: *offset }.into()),
        }
    }

    fn compressed(&self, stream: u32, index: usize, num: u32) -> Result<Object, PdfError> {
        // An object stream is itself never compressed (§7.5.7), so this does not recurse.
        let Some(Entry::Offset(offset, _)) = self.entries.get(&stream) else {
            return Err(Damage::BadObjectStream { num: stream }.into());
        };
        let bad = || PdfError::from(Damage::BadObjectStream { num: stream });
        let found = self.indirect(*offset)?;
        let Indirect { object: Object::Dictionary(dict), stream: Some(range), .. } = found else { return Err(bad()) };
        let decoded = decode_stream(&self.bytes, &dict, range, *offset)?;
        let count = dict.integer(b"N").and_then(|n| usize::try_from(n).ok()).ok_or_else(bad)?;
        let first = dict.integer(b"First").and_then(|n| usize::try_from(n).ok()).ok_or_else(bad)?;
        if index >= count {
            return Err(bad());
        }
        let mut header = Lexer::new(&decoded, 0);
        let mut relative = None;
        for i in 0..=index {
            let n = header.unsigned().map_err(|_| bad())?;
            let at = header.unsigned().map_err(|_| bad())?;
            if i == index {
                if u64::from(num) != n {
                    return Err(bad());
                }
                relative = Some(at);
            }
        }
        let at = relative.and_then(|r| usize::try_from(r).ok()).and_then(|r| r.checked_add(first)).ok_or_else(bad)?;
        if at >= decoded.len() {
            return Err(bad());
        }
        Lexer::new(&decoded, at).object().map_err(|_| bad())
    }
}

/// The offset after the last `startxref` of the file.
fn find_startxref(bytes: &Bytes<'_>) -> Result<usize, PdfError> {
    let tail_start = bytes.len().saturating_sub(2048);
    let tail = bytes.read_up_to(tail_start, 2048).map_err(unreadable(tail_start))?;
    let at = rfind(&tail, b"startxref").ok_or(Damage::NoStartxref)?;
    let mut lexer = Lexer::window(&tail, tail_start);
    lexer.pos = at + b"startxref".len();
    let offset = lexer.unsigned().map_err(|_| Damage::NoStartxref)?;
    usize::try_from(offset).ok().filter(|o| *o < bytes.len()).ok_or_else(|| Damage::BadOffset { offset: tail_start + at }.into())
}

/// Reads the section at `offset` into `entries` (keeping entries already there: newer sections
/// are read first) and returns its trailer.
fn read_section(bytes: &Bytes<'_>, offset: usize, entries: &mut HashMap<u32, Entry>) -> Result<(Dict, XrefKind), PdfError> {
    if offset >= bytes.len() {
        return Err(Damage::BadOffset { offset }.into());
    }
    let table = windowed(bytes, offset, |lexer| Ok((lexer.word() == b"xref").then(|| lexer.offset())))?;
    if let Some(pos) = table {
        return read_table(bytes, pos, entries).map(|t| (t, XrefKind::Table));
    }
    read_stream(bytes, offset, entries).map(|t| (t, XrefKind::Stream))
}

/// How close to a window's end a table entry may start and still be read from that window
/// (an entry is 20 bytes; whitespace and comments may make it longer, and a parse that reaches
/// the end is read again from a new window anyway).
const ENTRY_MARGIN: usize = 256;

/// A cross-reference table from `pos` (after `xref`), read in windows of [`crate::source::CHUNK`]:
/// a table of a million entries is never held whole.
fn read_table(bytes: &Bytes<'_>, pos: usize, entries: &mut HashMap<u32, Entry>) -> Result<Dict, PdfError> {
    let broken = |offset| PdfError::from(Damage::BrokenXref { offset });
    let mut at = pos;
    loop {
        let header = windowed(bytes, at, |lexer| {
            let save = lexer.pos;
            if lexer.word() == b"trailer" {
                return Ok(None);
            }
            lexer.pos = save;
            let first = lexer.unsigned()?;
            let count = lexer.unsigned()?;
            Ok(Some((first, count, lexer.offset())))
        })
        .map_err(|e| if matches!(e, Damage::Unreadable { .. }) { e.into() } else { broken(at) })?;
        let Some((first, count, after)) = header else { break };
        // Each entry is 20 bytes; a count the rest of the file cannot hold is a lie.
        if count.saturating_mul(20) > bytes.len() as u64 {
            return Err(broken(at));
        }
        at = after;
        let mut i = 0;
        while i < count {
            let window = bytes.read_up_to(at, crate::source::CHUNK).map_err(unreadable(at))?;
            let whole = at + window.len() >= bytes.len();
            let mut lexer = Lexer::window(&window, at);
            while i < count && (whole || lexer.pos + ENTRY_MARGIN <= window.len()) {
                let entry_at = lexer.offset();
                lexer.clear_end();
                let num = u32::try_from(first.saturating_add(i)).map_err(|_| broken(entry_at))?;
                let value = lexer.unsigned().map_err(|_| broken(entry_at));
                let generation = lexer.unsigned().ok().and_then(|g| u16::try_from(g).ok()).ok_or_else(|| broken(entry_at));
                let kind = lexer.word().to_vec();
                if lexer.hit_end() && !whole {
                    // Cut by the window: read it again from a window that starts with it.
                    lexer.pos = entry_at - at;
                    break;
                }
                let (value, generation) = (value?, generation?);
                let entry = match kind.as_slice() {
                    b"n" => Entry::Offset(usize::try_from(value).map_err(|_| broken(entry_at))?, generation),
                    b"f" => Entry::Free,
                    _ => return Err(broken(entry_at)),
                };
                entries.entry(num).or_insert(entry);
                i += 1;
            }
            if lexer.pos == 0 && i < count {
                // Not even one entry in a whole window: no real table looks like that.
                return Err(broken(at));
            }
            at = lexer.offset();
        }
    }
    let trailer = windowed(bytes, at, |lexer| {
        lexer.expect_keyword(b"trailer")?;
        lexer.object()
    })
    .map_err(|e| if matches!(e, Damage::Unreadable { .. } | Damage::ObjectTooLarge { .. }) { e.into() } else { broken(at) })?;
    match trailer {
        Object::Dictionary(trailer) => Ok(trailer),
        _ => Err(broken(at)),
    }
}

fn read_stream(bytes: &Bytes<'_>, offset: usize, entries: &mut HashMap<u32, Entry>) -> Result<Dict, PdfError> {
    let broken = || PdfError::from(Damage::BrokenXref { offset });
    let found = parse_indirect(bytes, offset).map_err(|_| broken())?;
    let Indirect { object: Object::Dictionary(dict), stream: Some(range), .. } = found else { return Err(broken()) };
    if dict.name(b"Type") != Some(b"XRef") {
        return Err(broken());
    }
    let decoded = decode_stream(bytes, &dict, range, offset)?;
    let widths: Vec<usize> = match dict.get(b"W") {
        Some(Object::Array(w)) if w.len() == 3 => w
            .iter()
            .map(|x| match x {
                Object::Integer(i) => usize::try_from(*i).ok().filter(|i| *i <= 8),
                _ => None,
            })
            .collect::<Option<_>>()
            .ok_or_else(broken)?,
        _ => return Err(broken()),
    };
    let size = dict.integer(b"Size").and_then(|s| u64::try_from(s).ok()).ok_or_else(broken)?;
    let index: Vec<u64> = match dict.get(b"Index") {
        None => vec![0, size],
        Some(Object::Array(items)) if items.len() % 2 == 0 => items
            .iter()
            .map(|x| match x {
                Object::Integer(i) => u64::try_from(*i).ok(),
                _ => None,
            })
            .collect::<Option<_>>()
            .ok_or_else(broken)?,
        Some(_) => return Err(broken()),
    };
    let row = widths.iter().sum::<usize>();
    if row == 0 {
        return Err(broken());
    }
    let mut rows = decoded.chunks_exact(row);
    for pair in index.chunks_exact(2) {
        let (first, count) = (pair[0], pair[1]);
        for i in 0..count {
            let fields = rows.next().ok_or_else(broken)?;
            let num = u32::try_from(first.saturating_add(i)).map_err(|_| broken())?;
            let (f0, rest) = fields.split_at(widths[0]);
            let (f1, f2) = rest.split_at(widths[1]);
            // A zero-width type field means type 1 (§7.5.8.2, Table 17).
            let kind = if widths[0] == 0 { 1 } else { be(f0) };
            let entry = match kind {
                0 => Entry::Free,
                1 => Entry::Offset(usize::try_from(be(f1)).map_err(|_| broken())?, u16::try_from(be(f2)).map_err(|_| broken())?),
                2 => Entry::Compressed { stream: u32::try_from(be(f1)).map_err(|_| broken())?, index: usize::try_from(be(f2)).map_err(|_| broken())? },
                // Unknown types are to be treated as references to the null object.
                _ => Entry::Free,
            };
            entries.entry(num).or_insert(entry);
        }
    }
    Ok(dict)
}

fn be(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
}

/// The decoded data of a stream: no filter, or FlateDecode with an optional PNG predictor.
pub(crate) fn decode_stream(bytes: &Bytes<'_>, dict: &Dict, range: std::ops::Range<usize>, offset: usize) -> Result<Vec<u8>, PdfError> {
    if range.end.saturating_sub(range.start) > MAX_STREAM {
        return Err(Damage::ObjectTooLarge { offset }.into());
    }
    let raw = bytes.read(range).map_err(|_| Damage::BadStream { offset })?;
    let filter = match dict.get(b"Filter") {
        None => None,
        Some(Object::Name(n)) => Some(n.as_slice()),
        Some(Object::Array(a)) if a.is_empty() => None,
        Some(Object::Array(a)) if a.len() == 1 => match &a[0] {
            Object::Name(n) => Some(n.as_slice()),
            _ => return Err(Damage::UnsupportedFilter { offset }.into()),
        },
        Some(_) => return Err(Damage::UnsupportedFilter { offset }.into()),
    };
    let inflated = match filter {
        None => return Ok(raw),
        Some(b"FlateDecode") => miniz_oxide::inflate::decompress_to_vec_zlib_with_limit(&raw, MAX_DECODED).map_err(|_| Damage::BadStream { offset })?,
        Some(_) => return Err(Damage::UnsupportedFilter { offset }.into()),
    };
    let params = match dict.get(b"DecodeParms") {
        Some(Object::Dictionary(p)) => p.clone(),
        Some(Object::Array(a)) if a.len() == 1 => a[0].as_dict().cloned().unwrap_or_default(),
        _ => Dict::default(),
    };
    let predictor = params.integer(b"Predictor").unwrap_or(1);
    match predictor {
        1 => Ok(inflated),
        10..=15 => {
            let columns = params.integer(b"Columns").unwrap_or(1);
            let colors = params.integer(b"Colors").unwrap_or(1);
            let bits = params.integer(b"BitsPerComponent").unwrap_or(8);
            let bytes_per_pixel = usize::try_from(colors.saturating_mul(bits).saturating_add(7) / 8).ok().filter(|b| (1..=32).contains(b));
            let width = usize::try_from(columns.saturating_mul(colors).saturating_mul(bits).saturating_add(7) / 8).ok().filter(|w| *w > 0);
            match (bytes_per_pixel, width) {
                (Some(bpp), Some(width)) => unpredict_png(&inflated, width, bpp).ok_or_else(|| Damage::BadStream { offset }.into()),
                _ => Err(Damage::BadStream { offset }.into()),
            }
        }
        _ => Err(Damage::UnsupportedFilter { offset }.into()),
    }
}

/// Undoes PNG row filters (RFC 2083 §6): each row is a filter-type byte then `width` bytes.
fn unpredict_png(input: &[u8], width: usize, bpp: usize) -> Option<Vec<u8>> {
    let row_len = width.checked_add(1)?;
    let mut out = Vec::with_capacity(input.len() / row_len * width);
    let mut previous = vec![0u8; width];
    for row in input.chunks(row_len) {
        let (&kind, bytes) = row.split_first()?;
        let mut current = bytes.to_vec();
        current.resize(width, 0);
        for i in 0..width {
            let left = if i >= bpp { current[i - bpp] } else { 0 };
            let up = previous[i];
            let up_left = if i >= bpp { previous[i - bpp] } else { 0 };
            let add = match kind {
                0 => 0,
                1 => left,
                2 => up,
                3 => ((u16::from(left) + u16::from(up)) / 2) as u8,
                4 => paeth(left, up, up_left),
                _ => return None,
            };
            current[i] = current[i].wrapping_add(add);
        }
        out.extend_from_slice(&current);
        previous = current;
    }
    Some(out)
}

fn paeth(a: u8, b: u8, c: u8) -> u8 {
    let p = i16::from(a) + i16::from(b) - i16::from(c);
    let (pa, pb, pc) = ((p - i16::from(a)).abs(), (p - i16::from(b)).abs(), (p - i16::from(c)).abs());
    if pa <= pb && pa <= pc {
        a
    } else if pb <= pc {
        b
    } else {
        c
    }
}
