//! The identification exchange (RFC 4253 §4.2), on byte slices.
//!
//! `SSH-protoversion-softwareversion SP comments CR LF`, at most 255 bytes
//! with the CR LF. A server may send other lines first; like OpenSSH, a client
//! accepts up to 1024 of them, each at most 8192 bytes. A bare LF ends a line
//! too (old servers send it). Bytes after the line belong to the first binary
//! packet and are left where they are.

/// The longest identification line, CR LF included.
pub const MAX_IDENTIFICATION_LEN: usize = 255;
/// The longest line accepted before the identification line.
pub const MAX_PRE_BANNER_LINE_LEN: usize = 8192;
/// How many lines may come before the identification line.
pub const MAX_PRE_BANNER_LINES: usize = 1024;

/// The peer's identification line and the lines that came before it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identification {
    /// The identification line without its CR LF, exactly as received: the
    /// key exchange hashes these bytes (V_C or V_S).
    pub line: Vec<u8>,
    /// Lines the peer sent before it (a server may), without line endings.
    pub pre_banner: Vec<Vec<u8>>,
}

impl Identification {
    /// The line as text (it was checked to be printable US-ASCII).
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.line).unwrap_or_default()
    }

    /// The software version: what follows `SSH-2.0-`, up to a space.
    pub fn software_version(&self) -> &str {
        let rest = self.as_str().splitn(3, '-').nth(2).unwrap_or_default();
        rest.split(' ').next().unwrap_or_default()
    }
}

/// What the start of a buffer holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineScan {
    /// A whole line: `content` bytes without CR LF, `consumed` with them.
    Line {
        /// Length of the line without its CR LF (or bare LF).
        content: usize,
        /// Bytes up to and including the LF.
        consumed: usize,
    },
    /// No LF yet, and the bytes so far are within `max`.
    Partial,
    /// No LF within `max` bytes: the line is too long.
    TooLong,
}

/// Looks for one line at the start of `buf`, at most `max` bytes long with its
/// line ending.
pub fn scan_line(buf: &[u8], max: usize) -> LineScan {
    let window = &buf[..buf.len().min(max)];
    match window.iter().position(|&b| b == b'\n') {
        Some(lf) => {
            let content = if lf > 0 && window[lf - 1] == b'\r' {
                lf - 1
            } else {
                lf
            };
            LineScan::Line {
                content,
                consumed: lf + 1,
            }
        }
        None if buf.len() >= max => LineScan::TooLong,
        None => LineScan::Partial,
    }
}

/// Whether a line is the identification line (starts with `SSH-`).
pub fn is_identification(line: &[u8]) -> bool {
    line.starts_with(b"SSH-")
}

/// Checks an identification line (without CR LF) against RFC 4253 §4.2: no
/// NUL, printable US-ASCII, a protocol version of 2.0 (or 1.99, which
/// announces 2.0 compatibility).
pub fn check_identification(line: &[u8]) -> Result<(), &'static str> {
    if line.contains(&0) {
        return Err("NUL in the identification line");
    }
    if !line.iter().all(|&b| (0x20..0x7f).contains(&b)) {
        return Err("identification line is not printable US-ASCII");
    }
    let Some(rest) = line.strip_prefix(b"SSH-") else {
        return Err("the identification line does not start with SSH-");
    };
    let version_end = rest.iter().position(|&b| b == b'-');
    match version_end.map(|end| &rest[..end]) {
        Some(b"2.0") | Some(b"1.99") => Ok(()),
        Some(_) => Err("unsupported protocol version"),
        None => Err("no software version in the identification line"),
    }
}

/// Our identification line as it goes on the wire: `id` (without line
/// ending, e.g. `SSH-2.0-myssh_1.0`) checked against the same rules the
/// peer's line must meet, with CR LF added. The key exchange hashes `id`
/// without the CR LF.
pub fn identification_line(id: &str) -> Result<Vec<u8>, crate::Error> {
    let bytes = id.as_bytes();
    if bytes.len() + 2 > MAX_IDENTIFICATION_LEN {
        return Err(crate::Error::LineTooLong {
            max: MAX_IDENTIFICATION_LEN,
        });
    }
    if bytes.contains(&b'\r') || bytes.contains(&b'\n') {
        return Err(crate::Error::BadIdentification {
            reason: "our identification line must not hold CR or LF (CR LF is added)",
        });
    }
    check_identification(bytes).map_err(|reason| crate::Error::BadIdentification { reason })?;
    let mut line = Vec::with_capacity(bytes.len() + 2);
    line.extend_from_slice(bytes);
    line.extend_from_slice(b"\r\n");
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_end_with_crlf_or_bare_lf() {
        assert_eq!(
            scan_line(b"SSH-2.0-x\r\nrest", 255),
            LineScan::Line {
                content: 9,
                consumed: 11
            }
        );
        assert_eq!(
            scan_line(b"SSH-2.0-x\nrest", 255),
            LineScan::Line {
                content: 9,
                consumed: 10
            }
        );
        assert_eq!(
            scan_line(b"\n", 255),
            LineScan::Line {
                content: 0,
                consumed: 1
            }
        );
        assert_eq!(scan_line(b"SSH-2.0-x\r", 255), LineScan::Partial);
    }

    #[test]
    fn bounds_count_the_line_ending() {
        let mut line = vec![b'a'; 253];
        line.extend_from_slice(b"\r\n");
        assert!(matches!(scan_line(&line, 255), LineScan::Line { .. }));
        line.insert(0, b'a');
        assert_eq!(scan_line(&line, 255), LineScan::TooLong);
        assert_eq!(scan_line(&[b'x'; 254], 255), LineScan::Partial);
        assert_eq!(scan_line(&[b'x'; 255], 255), LineScan::TooLong);
    }

    #[test]
    fn identification_rules() {
        assert!(check_identification(b"SSH-2.0-OpenSSH_9.6 Debian").is_ok());
        assert!(check_identification(b"SSH-1.99-old").is_ok());
        assert!(check_identification(b"SSH-1.5-ancient").is_err());
        assert!(check_identification(b"SSH-2.0").is_err());
        assert!(check_identification(b"SSH-2.0-a\0b").is_err());
        assert!(check_identification(b"SSH-2.0-\xff").is_err());
    }

    #[test]
    fn short_or_foreign_lines_are_refused_not_a_panic() {
        for line in [
            &b""[..],
            b"S",
            b"SS",
            b"SSH",
            b"SSH-",
            b"ssh-2.0-x",
            b"HTTP/1.1 200",
        ] {
            assert!(check_identification(line).is_err(), "{line:?}");
        }
    }

    #[test]
    fn our_line_gets_its_crlf_and_the_same_checks() {
        assert_eq!(
            identification_line("SSH-2.0-me").unwrap(),
            b"SSH-2.0-me\r\n"
        );
        assert!(identification_line("SSH-2.0-me\r\n").is_err());
        assert!(identification_line("SSH-1.5-old").is_err());
        assert!(identification_line(&format!("SSH-2.0-{}", "x".repeat(250))).is_err());
    }
}
