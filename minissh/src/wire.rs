//! SSH data types (RFC 4251 §5): building message payloads and parsing them.

use crate::error::Error;

/// Builds a message payload, message number first.
#[derive(Debug, Default)]
pub struct Msg {
    buf: Vec<u8>,
}

impl Msg {
    /// A message starting with its number.
    pub fn new(msg_type: u8) -> Msg {
        Msg {
            buf: vec![msg_type],
        }
    }

    /// A `byte`.
    pub fn byte(mut self, b: u8) -> Msg {
        self.buf.push(b);
        self
    }

    /// A `boolean`.
    pub fn bool(self, b: bool) -> Msg {
        self.byte(u8::from(b))
    }

    /// A `uint32`.
    pub fn u32(mut self, v: u32) -> Msg {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// A `string` (length-prefixed bytes).
    pub fn string(mut self, s: impl AsRef<[u8]>) -> Msg {
        put_string(&mut self.buf, s.as_ref());
        self
    }

    /// Bytes with no length prefix (an mpint already encoded, a cookie).
    pub fn raw(mut self, bytes: &[u8]) -> Msg {
        self.buf.extend_from_slice(bytes);
        self
    }

    /// The finished payload.
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}

/// Appends an SSH `string`.
pub fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    // Every string here is far below 4 GiB: payloads are capped well before.
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s);
}

/// Reads SSH data types off a payload; every shortfall is a protocol error.
#[derive(Debug)]
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Reads `payload` from its start (the message number included).
    pub fn new(payload: &'a [u8]) -> Reader<'a> {
        Reader { rest: payload }
    }

    /// Reads a payload after its message number.
    pub fn body(payload: &'a [u8]) -> Reader<'a> {
        Reader {
            rest: payload.get(1..).unwrap_or_default(),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        if self.rest.len() < n {
            return Err(Error::Protocol("message too short".into()));
        }
        let (head, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(head)
    }

    /// A `byte`.
    pub fn byte(&mut self) -> Result<u8, Error> {
        Ok(self.take(1)?[0])
    }

    /// A `boolean`.
    pub fn bool(&mut self) -> Result<bool, Error> {
        Ok(self.byte()? != 0)
    }

    /// A `uint32`.
    pub fn u32(&mut self) -> Result<u32, Error> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A `string` as bytes.
    pub fn string(&mut self) -> Result<&'a [u8], Error> {
        let len = self.u32()? as usize;
        self.take(len)
    }

    /// A `string` that must be UTF-8 (names, descriptions).
    pub fn text(&mut self) -> Result<&'a str, Error> {
        std::str::from_utf8(self.string()?)
            .map_err(|_| Error::Protocol("text field is not UTF-8".into()))
    }

    /// Exactly `n` bytes with no length prefix.
    pub fn fixed(&mut self, n: usize) -> Result<&'a [u8], Error> {
        self.take(n)
    }

    /// Whether everything has been read.
    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// A `name-list`.
    pub fn name_list(&mut self) -> Result<Vec<&'a str>, Error> {
        let text = self.text()?;
        Ok(if text.is_empty() {
            Vec::new()
        } else {
            text.split(',').collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_fields_read_back() {
        let msg = Msg::new(7)
            .bool(true)
            .u32(0xdead_beef)
            .string("a,b")
            .string([])
            .finish();
        let mut r = Reader::body(&msg);
        assert!(r.bool().unwrap());
        assert_eq!(r.u32().unwrap(), 0xdead_beef);
        assert_eq!(r.name_list().unwrap(), ["a", "b"]);
        assert!(r.name_list().unwrap().is_empty());
        assert!(r.byte().is_err());
    }

    #[test]
    fn a_string_longer_than_the_message_is_refused() {
        let msg = Msg::new(1).u32(1000).raw(b"short").finish();
        assert!(Reader::body(&msg).string().is_err());
    }
}
