//! PDF objects (ISO 32000-1 §7.3): parsed from untrusted bytes with every index checked, and
//! written back in a canonical form when an update rewrites an object.

use std::cell::Cell;
use std::ops::Range;

use super::Damage;
use crate::source::Bytes;

/// How deep arrays and dictionaries may nest before the input is called damaged: no real
/// document comes close, and the limit keeps the recursive parser's stack bounded.
const MAX_DEPTH: usize = 64;

/// A reference to an indirect object: its number and generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct ObjRef {
    pub num: u32,
    pub generation: u16,
}

/// A dictionary, its entries in the order they were read (so a rewritten object reads like the original).
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Dict(pub Vec<(Vec<u8>, Object)>);

impl Dict {
    pub fn get(&self, key: &[u8]) -> Option<&Object> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Sets `key`, replacing its value in place if it is present.
    pub fn set(&mut self, key: &[u8], value: Object) {
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = value,
            None => self.0.push((key.to_vec(), value)),
        }
    }

    pub fn name(&self, key: &[u8]) -> Option<&[u8]> {
        match self.get(key) {
            Some(Object::Name(n)) => Some(n),
            _ => None,
        }
    }

    pub fn integer(&self, key: &[u8]) -> Option<i64> {
        match self.get(key) {
            Some(Object::Integer(i)) => Some(*i),
            _ => None,
        }
    }

    pub fn reference(&self, key: &[u8]) -> Option<ObjRef> {
        match self.get(key) {
            Some(Object::Reference(r)) => Some(*r),
            _ => None,
        }
    }
}

/// A direct object. Streams are not objects here: [`parse_indirect`] returns a stream's data apart.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Object {
    Null,
    Bool(bool),
    Integer(i64),
    /// A real number, kept as written (it is only ever copied).
    Real(Vec<u8>),
    /// A name, its `#xx` escapes decoded.
    Name(Vec<u8>),
    /// A string, literal or hexadecimal, decoded to its bytes.
    String(Vec<u8>),
    Array(Vec<Object>),
    Dictionary(Dict),
    Reference(ObjRef),
}

impl Object {
    pub fn as_dict(&self) -> Option<&Dict> {
        match self {
            Object::Dictionary(d) => Some(d),
            _ => None,
        }
    }
}

/// An indirect object as found in the file: its reference, its value, and for a stream its
/// dictionary's value plus the byte range of its (still encoded) data.
#[derive(Clone, Debug)]
pub(crate) struct Indirect {
    pub id: ObjRef,
    pub object: Object,
    pub stream: Option<Range<usize>>,
}

pub(crate) fn is_whitespace(b: u8) -> bool {
    matches!(b, b'\0' | b'\t' | b'\n' | b'\x0c' | b'\r' | b' ')
}

fn is_delimiter(b: u8) -> bool {
    matches!(b, b'(' | b')' | b'<' | b'>' | b'[' | b']' | b'{' | b'}' | b'/' | b'%')
}

fn is_regular(b: u8) -> bool {
    !is_whitespace(b) && !is_delimiter(b)
}

/// A cursor over untrusted bytes. Every read goes through `peek`/`at`, never an index.
///
/// The bytes may be a window of a larger file (`base` its offset in the file): the lexer
/// remembers whether it looked past the window's end, so that a caller can read a larger
/// window instead of trusting a parse the window cut short ([`windowed`]).
pub(crate) struct Lexer<'a> {
    data: &'a [u8],
    pub pos: usize,
    base: usize,
    hit_end: Cell<bool>,
}

impl<'a> Lexer<'a> {
    pub fn new(data: &'a [u8], pos: usize) -> Self {
        Lexer { data, pos, base: 0, hit_end: Cell::new(false) }
    }

    /// A lexer at the start of `window`, which begins at `base` in the file.
    pub fn window(window: &'a [u8], base: usize) -> Self {
        Lexer { data: window, pos: 0, base, hit_end: Cell::new(false) }
    }

    /// The cursor's offset in the file.
    pub fn offset(&self) -> usize {
        self.base + self.pos
    }

    /// Whether a read looked past the end of the bytes since [`Lexer::clear_end`].
    pub fn hit_end(&self) -> bool {
        self.hit_end.get()
    }

    pub fn clear_end(&self) {
        self.hit_end.set(false);
    }

    /// The byte at `i`, remembering a read past the end.
    pub fn at(&self, i: usize) -> Option<u8> {
        let b = self.data.get(i).copied();
        if b.is_none() {
            self.hit_end.set(true);
        }
        b
    }

    fn peek(&self) -> Option<u8> {
        self.at(self.pos)
    }

    fn damaged(&self) -> Damage {
        Damage::BadObject { offset: self.offset() }
    }

    /// Skips whitespace and comments.
    pub fn skip_space(&mut self) {
        while let Some(b) = self.peek() {
            if is_whitespace(b) {
                self.pos += 1;
            } else if b == b'%' {
                while let Some(c) = self.peek() {
                    if c == b'\n' || c == b'\r' {
                        break;
                    }
                    self.pos += 1;
                }
            } else {
                break;
            }
        }
    }

    /// The run of regular characters at the cursor (a number or keyword), after whitespace.
    pub fn word(&mut self) -> &'a [u8] {
        self.skip_space();
        let start = self.pos;
        while self.peek().is_some_and(is_regular) {
            self.pos += 1;
        }
        self.data.get(start..self.pos).unwrap_or_default()
    }

    /// Consumes `keyword` (after whitespace) or fails without moving.
    pub fn expect_keyword(&mut self, keyword: &[u8]) -> Result<(), Damage> {
        let save = self.pos;
        if self.word() == keyword {
            Ok(())
        } else {
            self.pos = save;
            Err(self.damaged())
        }
    }

    /// A non-negative integer (after whitespace).
    pub fn unsigned(&mut self) -> Result<u64, Damage> {
        let save = self.pos;
        let word = self.word();
        match parse_unsigned(word) {
            Some(n) => Ok(n),
            None => {
                self.pos = save;
                Err(self.damaged())
            }
        }
    }

    /// One direct object (references included).
    pub fn object(&mut self) -> Result<Object, Damage> {
        self.object_at_depth(0)
    }

    fn object_at_depth(&mut self, depth: usize) -> Result<Object, Damage> {
        if depth > MAX_DEPTH {
            return Err(self.damaged());
        }
        self.skip_space();
        let Some(b) = self.peek() else { return Err(Damage::Truncated) };
        match b {
            b'/' => {
                self.pos += 1;
                Ok(Object::Name(self.name_body()?))
            }
            b'(' => {
                self.pos += 1;
                Ok(Object::String(self.literal_string_body()?))
            }
            b'<' if self.at(self.pos + 1) == Some(b'<') => {
                self.pos += 2;
                let mut dict = Dict::default();
                loop {
                    self.skip_space();
                    match self.peek() {
                        Some(b'>') if self.at(self.pos + 1) == Some(b'>') => {
                            self.pos += 2;
                            return Ok(Object::Dictionary(dict));
                        }
                        Some(b'/') => {
                            self.pos += 1;
                            let key = self.name_body()?;
                            let value = self.object_at_depth(depth + 1)?;
                            // A null value is the same as an absent entry (§7.3.7). Entries are
                            // pushed, not set: a hostile dictionary with many keys stays linear.
                            if value != Object::Null {
                                dict.0.push((key, value));
                            }
                        }
                        None => return Err(Damage::Truncated),
                        _ => return Err(self.damaged()),
                    }
                }
            }
            b'<' => {
                self.pos += 1;
                Ok(Object::String(self.hex_string_body()?))
            }
            b'[' => {
                self.pos += 1;
                let mut items = Vec::new();
                loop {
                    self.skip_space();
                    match self.peek() {
                        Some(b']') => {
                            self.pos += 1;
                            return Ok(Object::Array(items));
                        }
                        None => return Err(Damage::Truncated),
                        _ => items.push(self.object_at_depth(depth + 1)?),
                    }
                }
            }
            _ => {
                let start = self.pos;
                let word = self.word();
                match word {
                    b"" => Err(self.damaged()),
                    b"null" => Ok(Object::Null),
                    b"true" => Ok(Object::Bool(true)),
                    b"false" => Ok(Object::Bool(false)),
                    _ => {
                        if let Some(n) = parse_integer(word) {
                            // `n g R` is a reference; look ahead without committing.
                            if let Ok(num) = u32::try_from(n) {
                                let save = self.pos;
                                if let Some(generation) = parse_unsigned(self.word()).and_then(|g| u16::try_from(g).ok())
                                    && self.word() == b"R"
                                {
                                    return Ok(Object::Reference(ObjRef { num, generation }));
                                }
                                self.pos = save;
                            }
                            Ok(Object::Integer(n))
                        } else if is_real(word) {
                            Ok(Object::Real(word.to_vec()))
                        } else {
                            self.pos = start;
                            Err(self.damaged())
                        }
                    }
                }
            }
        }
    }

    fn name_body(&mut self) -> Result<Vec<u8>, Damage> {
        let mut name = Vec::new();
        while let Some(b) = self.peek().filter(|b| is_regular(*b)) {
            self.pos += 1;
            if b == b'#' {
                let hi = self.peek().and_then(hex_value);
                let lo = self.at(self.pos + 1).and_then(hex_value);
                match (hi, lo) {
                    (Some(hi), Some(lo)) => {
                        name.push(hi << 4 | lo);
                        self.pos += 2;
                    }
                    _ => name.push(b'#'),
                }
            } else {
                name.push(b);
            }
        }
        Ok(name)
    }

    fn literal_string_body(&mut self) -> Result<Vec<u8>, Damage> {
        let mut out = Vec::new();
        let mut nesting = 0usize;
        loop {
            let Some(b) = self.peek() else { return Err(Damage::Truncated) };
            self.pos += 1;
            match b {
                b'(' => {
                    nesting += 1;
                    out.push(b);
                }
                b')' if nesting == 0 => return Ok(out),
                b')' => {
                    nesting -= 1;
                    out.push(b);
                }
                b'\\' => {
                    let Some(e) = self.peek() else { return Err(Damage::Truncated) };
                    self.pos += 1;
                    match e {
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'b' => out.push(0x08),
                        b'f' => out.push(0x0c),
                        b'\r' => {
                            if self.peek() == Some(b'\n') {
                                self.pos += 1;
                            }
                        }
                        b'\n' => {}
                        b'0'..=b'7' => {
                            let mut value = u32::from(e - b'0');
                            for _ in 0..2 {
                                match self.peek() {
                                    Some(d @ b'0'..=b'7') => {
                                        value = value * 8 + u32::from(d - b'0');
                                        self.pos += 1;
                                    }
                                    _ => break,
                                }
                            }
                            out.push((value & 0xff) as u8);
                        }
                        other => out.push(other),
                    }
                }
                _ => out.push(b),
            }
        }
    }

    fn hex_string_body(&mut self) -> Result<Vec<u8>, Damage> {
        let mut out = Vec::new();
        let mut high: Option<u8> = None;
        loop {
            let Some(b) = self.peek() else { return Err(Damage::Truncated) };
            self.pos += 1;
            if b == b'>' {
                if let Some(h) = high {
                    out.push(h << 4);
                }
                return Ok(out);
            }
            if is_whitespace(b) {
                continue;
            }
            let Some(v) = hex_value(b) else {
                self.pos -= 1;
                return Err(self.damaged());
            };
            match high.take() {
                Some(h) => out.push(h << 4 | v),
                None => high = Some(v),
            }
        }
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

pub(crate) fn parse_unsigned(word: &[u8]) -> Option<u64> {
    if word.is_empty() || word.len() > 19 || !word.iter().all(u8::is_ascii_digit) {
        return None;
    }
    word.iter().try_fold(0u64, |acc, d| acc.checked_mul(10)?.checked_add(u64::from(d - b'0')))
}

fn parse_integer(word: &[u8]) -> Option<i64> {
    let (negative, digits) = match word.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, word),
    };
    let magnitude = i64::try_from(parse_unsigned(digits)?).ok()?;
    Some(if negative { -magnitude } else { magnitude })
}

fn is_real(word: &[u8]) -> bool {
    let digits = word.strip_prefix(b"-").or_else(|| word.strip_prefix(b"+")).unwrap_or(word);
    !digits.is_empty() && digits.iter().filter(|b| **b == b'.').count() == 1 && digits.iter().all(|b| b.is_ascii_digit() || *b == b'.') && digits.len() > 1
}

/// The first window [`windowed`] reads; most objects fit in it.
const FIRST_WINDOW: usize = 4096;
/// The most an object may take in the file, its stream data apart: a signature dictionary
/// with the largest /Contents a signer reserves (1 MiB of DER is 2 MiB of hexadecimal) fits
/// with room to spare; more is damage, not a reason to read on.
pub(crate) const MAX_OBJECT: usize = 8 * 1024 * 1024;

/// A read error at `offset`, as damage.
pub(crate) fn unreadable(offset: usize) -> impl Fn(std::io::Error) -> Damage {
    move |e| Damage::Unreadable { offset, error: e.to_string() }
}

/// Runs `parse` on a window of `bytes` at `offset`, read again larger (a chunk, then four
/// times larger each time) while the parse looked past the window's end (up to [`MAX_OBJECT`], then [`Damage::ObjectTooLarge`]):
/// what is parsed is never cut short by the window, and never more than an object is held.
pub(crate) fn windowed<T>(bytes: &Bytes<'_>, offset: usize, parse: impl Fn(&mut Lexer<'_>) -> Result<T, Damage>) -> Result<T, Damage> {
    let mut size = FIRST_WINDOW;
    loop {
        let window = bytes.read_up_to(offset, size).map_err(unreadable(offset))?;
        let whole = offset + window.len() >= bytes.len();
        let mut lexer = Lexer::window(&window, offset);
        let parsed = parse(&mut lexer);
        if whole || !lexer.hit_end() {
            return parsed;
        }
        if size >= MAX_OBJECT {
            return Err(Damage::ObjectTooLarge { offset });
        }
        size = if size < crate::source::CHUNK { crate::source::CHUNK } else { size.saturating_mul(4).min(MAX_OBJECT) };
    }
}

/// Parses the indirect object `n g obj … endobj` at `offset`. A stream's data range comes from
/// a direct /Length when it is consistent with an `endstream` right after, otherwise from the
/// position of the next `endstream` (an indirect /Length is not followed: the keyword search is
/// what readers do for damaged files anyway, and the data is bounds-checked either way). The
/// stream's data is not read.
pub(crate) fn parse_indirect(bytes: &Bytes<'_>, offset: usize) -> Result<Indirect, Damage> {
    if offset >= bytes.len() {
        return Err(Damage::BadOffset { offset });
    }
    let (id, object, data_start) = windowed(bytes, offset, |lexer| {
        let num = lexer.unsigned().ok().and_then(|n| u32::try_from(n).ok()).ok_or(Damage::BadObject { offset })?;
        let generation = lexer.unsigned().ok().and_then(|g| u16::try_from(g).ok()).ok_or(Damage::BadObject { offset })?;
        lexer.expect_keyword(b"obj")?;
        let object = lexer.object()?;
        let id = ObjRef { num, generation };
        if lexer.word() != b"stream" {
            return Ok((id, object, None));
        }
        // The keyword is followed by CRLF or LF (§7.3.8.1); a lone CR is tolerated.
        if lexer.at(lexer.pos) == Some(b'\r') {
            lexer.pos += 1;
        }
        if lexer.at(lexer.pos) == Some(b'\n') {
            lexer.pos += 1;
        }
        Ok((id, object, Some(lexer.offset())))
    })?;
    let Some(start) = data_start else { return Ok(Indirect { id, object, stream: None }) };
    let Object::Dictionary(dict) = &object else { return Err(Damage::BadObject { offset }) };
    let declared = match dict.integer(b"Length").and_then(|l| usize::try_from(l).ok()).and_then(|l| start.checked_add(l)) {
        // Anything unexpected after the declared data (even a run of whitespace longer than an
        // object) sends the reader to the keyword search below.
        Some(end) if end <= bytes.len() => windowed(bytes, end, |after| Ok(after.word() == b"endstream")).unwrap_or(false).then_some(end),
        _ => None,
    };
    let end = match declared {
        Some(end) => end,
        None => {
            let mut end = bytes.find(start, b"endstream").map_err(unreadable(start))?.ok_or(Damage::BadStream { offset })?;
            // The EOL before `endstream` is not part of the data.
            let before = bytes.read(end.saturating_sub(2).max(start)..end).map_err(unreadable(end))?;
            let mut tail = before.as_slice();
            if let Some((b'\n', rest)) = tail.split_last() {
                end -= 1;
                tail = rest;
            }
            if let Some((b'\r', _)) = tail.split_last() {
                end -= 1;
            }
            end
        }
    };
    Ok(Indirect { id, object, stream: Some(start..end) })
}

/// The first position of `needle` in `haystack`.
pub(crate) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The last position of `needle` in `haystack`.
pub(crate) fn rfind(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).rposition(|w| w == needle)
}

/// Writes `object` in canonical form: names escaped, printable strings literal and the rest hexadecimal.
pub(crate) fn write_object(out: &mut Vec<u8>, object: &Object) {
    match object {
        Object::Null => out.extend_from_slice(b"null"),
        Object::Bool(true) => out.extend_from_slice(b"true"),
        Object::Bool(false) => out.extend_from_slice(b"false"),
        Object::Integer(i) => out.extend_from_slice(i.to_string().as_bytes()),
        Object::Real(r) => out.extend_from_slice(r),
        Object::Name(n) => write_name(out, n),
        Object::String(s) => write_string(out, s),
        Object::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                write_object(out, item);
            }
            out.push(b']');
        }
        Object::Dictionary(dict) => write_dict(out, dict),
        Object::Reference(r) => out.extend_from_slice(format!("{} {} R", r.num, r.generation).as_bytes()),
    }
}

pub(crate) fn write_dict(out: &mut Vec<u8>, dict: &Dict) {
    out.extend_from_slice(b"<<");
    for (key, value) in &dict.0 {
        write_name(out, key);
        out.push(b' ');
        write_object(out, value);
    }
    out.extend_from_slice(b">>");
}

fn write_name(out: &mut Vec<u8>, name: &[u8]) {
    out.push(b'/');
    for &b in name {
        if (0x21..=0x7e).contains(&b) && is_regular(b) && b != b'#' {
            out.push(b);
        } else {
            out.extend_from_slice(format!("#{b:02X}").as_bytes());
        }
    }
}

fn write_string(out: &mut Vec<u8>, s: &[u8]) {
    if s.iter().all(|b| (0x20..=0x7e).contains(b)) {
        out.push(b'(');
        for &b in s {
            if matches!(b, b'(' | b')' | b'\\') {
                out.push(b'\\');
            }
            out.push(b);
        }
        out.push(b')');
    } else {
        out.push(b'<');
        for b in s {
            out.extend_from_slice(format!("{b:02X}").as_bytes());
        }
        out.push(b'>');
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_and_writes_back() {
        let src = b"<</Type /Page /Kids [1 0 R 2 0 R] /N -3 /R .5 /S (a\\(b\\)) /H <4142> /E /A#20B /Z null>>";
        let object = Lexer::new(src, 0).object().unwrap();
        let dict = object.as_dict().unwrap();
        assert_eq!(dict.name(b"Type"), Some(&b"Page"[..]));
        assert_eq!(
            dict.get(b"Kids"),
            Some(&Object::Array(vec![Object::Reference(ObjRef { num: 1, generation: 0 }), Object::Reference(ObjRef { num: 2, generation: 0 })]))
        );
        assert_eq!(dict.integer(b"N"), Some(-3));
        assert_eq!(dict.get(b"S"), Some(&Object::String(b"a(b)".to_vec())));
        assert_eq!(dict.get(b"H"), Some(&Object::String(b"AB".to_vec())));
        assert_eq!(dict.name(b"E"), Some(&b"A B"[..]));
        assert_eq!(dict.get(b"Z"), None);
        let mut out = Vec::new();
        write_object(&mut out, &object);
        assert_eq!(out, b"<</Type /Page/Kids [1 0 R 2 0 R]/N -3/R .5/S (a\\(b\\))/H (AB)/E /A#20B>>");
    }

    #[test]
    fn an_object_is_read_in_growing_windows_and_one_too_large_is_refused() {
        // A string of 100 KB: more than the first window and a chunk, read whole.
        let long = [b"7 0 obj\n(".as_slice(), &vec![b'a'; 100_000], b")\nendobj\n"].concat();
        let found = parse_indirect(&Bytes::new(&long), 0).unwrap();
        assert_eq!(found.object, Object::String(vec![b'a'; 100_000]));
        // An array that never ends within MAX_OBJECT: refused, not read on to the file's end.
        let endless = [b"7 0 obj\n[".as_slice(), &b"1 ".repeat(MAX_OBJECT)].concat();
        assert_eq!(parse_indirect(&Bytes::new(&endless), 0).err(), Some(Damage::ObjectTooLarge { offset: 0 }));
        // The same cut at the file's end is truncated, as before.
        assert_eq!(parse_indirect(&Bytes::new(&&endless[..4096]), 0).err(), Some(Damage::Truncated));
    }

    #[test]
    fn deep_nesting_is_damage_not_a_stack_overflow() {
        let src = vec![b'['; 100_000];
        assert!(matches!(Lexer::new(&src, 0).object(), Err(Damage::BadObject { .. })));
    }
}
