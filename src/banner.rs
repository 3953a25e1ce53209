//! The identification exchange (RFC 4253 §4.2), on byte slices.
//!
//! We send `SSH-protoversion-softwareversion SP comments CR LF` in at most
//! 255 bytes. We accept what OpenSSH's reading loop accepts: a line ends at
//! LF, a CR may only come right before the LF (or before another CR), NUL is
//! refused anywhere, and a line may hold up to 8192 bytes besides its
//! ending; its text is otherwise not checked (a tab or UTF-8 in the comment
//! passes). A server may send other lines first; like OpenSSH, a client
//! accepts up to 1023 of them (the identification must come within the
//! first 1024 lines) and keeps a bounded amount of their text.
//! Bytes after the line belong to the first binary packet and are left
//! where they are.

/// The longest identification line we send, CR LF included.
pub(crate) const MAX_IDENTIFICATION_LEN: usize = 255;
/// The longest line accepted from the peer, without its line ending
/// (OpenSSH's `SSH_MAX_BANNER_LEN`).
pub(crate) const MAX_PEER_LINE_LEN: usize = 8192;
/// How many lines a peer may send up to and including its identification
/// line (OpenSSH's `SSH_MAX_PRE_BANNER_LINES`): at most 1023 before it.
pub(crate) const MAX_PRE_BANNER_LINES: usize = 1024;
/// How many bytes of the lines before the identification line are kept
/// (see [`Identification::MAX_PRE_BANNER_KEPT`]).
const MAX_PRE_BANNER_KEPT: usize = 64 * 1024;
/// How many CRs may end a line before its LF: OpenSSH takes any number,
/// but a stream of CRs must not be buffered without bound.
const MAX_TRAILING_CRS: usize = 64;

/// The peer's identification line and the lines that came before it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Identification {
    /// The identification line without its line ending, exactly as
    /// received: the key exchange hashes these bytes (V_C or V_S).
    pub line: Vec<u8>,
    /// Lines the peer sent before it (a server may), without line endings,
    /// as long as their bytes fit [`Identification::MAX_PRE_BANNER_KEPT`].
    pub pre_banner: Vec<Vec<u8>>,
    /// Whether lines before the identification were dropped because the
    /// kept ones reached [`Identification::MAX_PRE_BANNER_KEPT`] bytes.
    pub pre_banner_truncated: bool,
}

impl Identification {
    /// How many bytes of the lines before the identification line a client
    /// keeps; later lines are dropped (see
    /// [`Identification::pre_banner_truncated`]), never an error.
    pub const MAX_PRE_BANNER_KEPT: usize = MAX_PRE_BANNER_KEPT;

    /// The longest identification line we send, CR LF included (RFC 4253
    /// §4.2); a peer's may be up to 8192 bytes, as OpenSSH takes.
    pub const MAX_SENT_LEN: usize = MAX_IDENTIFICATION_LEN;

    /// The line as text, up to its first byte that is not UTF-8 (the exact
    /// bytes are in [`Identification::line`]).
    pub fn as_str(&self) -> &str {
        match std::str::from_utf8(&self.line) {
            Ok(text) => text,
            // The prefix up to `valid_up_to` is UTF-8 by definition.
            Err(e) => std::str::from_utf8(&self.line[..e.valid_up_to()]).unwrap_or_default(),
        }
    }

    /// The software version: what follows `SSH-2.0-`, up to a space.
    pub fn software_version(&self) -> &str {
        let rest = self.as_str().splitn(3, '-').nth(2).unwrap_or_default();
        rest.split(' ').next().unwrap_or_default()
    }
}

/// The lines before the identification line, as they are kept while it is
/// read: whole lines while their bytes fit the bound, then a flag.
#[derive(Debug, Default)]
pub(crate) struct PreBanner {
    lines: Vec<Vec<u8>>,
    kept: usize,
    seen: usize,
    truncated: bool,
}

impl PreBanner {
    /// Counts one more line before the identification, keeping it if it
    /// fits; `Err` once no line is left for the identification itself.
    pub(crate) fn push(&mut self, line: &[u8]) -> Result<(), crate::Error> {
        if self.seen + 1 >= MAX_PRE_BANNER_LINES {
            return Err(crate::Error::BadIdentification {
                reason: "no identification line in the first 1024 lines",
            });
        }
        self.seen += 1;
        if self.truncated || self.kept + line.len() > MAX_PRE_BANNER_KEPT {
            self.truncated = true;
        } else {
            self.kept += line.len();
            self.lines.push(line.to_vec());
        }
        Ok(())
    }

    /// The identification with the lines kept before it.
    pub(crate) fn finish(&mut self, line: Vec<u8>) -> Identification {
        let kept = std::mem::take(self);
        Identification {
            line,
            pre_banner: kept.lines,
            pre_banner_truncated: kept.truncated,
        }
    }
}

/// What the start of a buffer holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LineScan {
    /// A whole line: `content` bytes without its ending, `consumed` with it.
    Line {
        /// Length of the line without its line ending.
        content: usize,
        /// Bytes up to and including the LF.
        consumed: usize,
    },
    /// No LF yet, and the bytes so far are within the bound.
    Partial,
    /// No LF within the bound: the line is too long.
    TooLong,
}

/// Looks for one line at the start of `buf`, at most `max` bytes long with
/// its line ending (CR LF or a bare LF), for paramiko's `read_line`.
pub(crate) fn scan_line(buf: &[u8], max: usize) -> LineScan {
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

/// Looks for one line of the identification exchange at the start of
/// `buf`, by OpenSSH's rules: it ends at LF; CRs may only stand right
/// before it; NUL is refused; at most [`MAX_PEER_LINE_LEN`] bytes besides
/// the ending. The bytes are checked once the LF is in (the search for it
/// is bounded, so a line dribbled a byte at a time costs no more than
/// one read each).
pub(crate) fn scan_peer_line(buf: &[u8]) -> Result<LineScan, crate::Error> {
    let bound = MAX_PEER_LINE_LEN + MAX_TRAILING_CRS + 1;
    let window = &buf[..buf.len().min(bound)];
    let lf = window.iter().position(|&b| b == b'\n');
    let before = &window[..lf.unwrap_or(window.len())];
    // A CR may only stand in a run right before the LF: the text is what
    // comes before that run.
    let content = before
        .iter()
        .rposition(|&b| b != b'\r')
        .map_or(0, |last| last + 1);
    if content > MAX_PEER_LINE_LEN {
        // Refused as soon as the text is too long, as OpenSSH does, not
        // once the LF comes.
        return Ok(LineScan::TooLong);
    }
    if before.len() - content > MAX_TRAILING_CRS {
        return Err(crate::Error::BadIdentification {
            reason: "too many CRs at the end of a line of the identification exchange",
        });
    }
    let Some(lf) = lf else {
        return Ok(LineScan::Partial);
    };
    let text = &before[..content];
    if text.contains(&0) {
        return Err(crate::Error::BadIdentification {
            reason: "NUL in a line of the identification exchange",
        });
    }
    if text.contains(&b'\r') {
        return Err(crate::Error::BadIdentification {
            reason: "a CR not followed by LF in a line of the identification exchange",
        });
    }
    Ok(LineScan::Line {
        content,
        consumed: lf + 1,
    })
}

/// Whether a line is the identification line: `SSH-` and more, as OpenSSH
/// takes it (a bare `SSH-` is just another line).
pub(crate) fn is_identification(line: &[u8]) -> bool {
    line.len() > 4 && line.starts_with(b"SSH-")
}

/// Checks the peer's identification line (without its ending, already
/// scanned: no NUL, no stray CR) for a protocol version of 2.0 (or 1.99,
/// which announces 2.0 compatibility) and a software version.
pub(crate) fn check_identification(line: &[u8]) -> Result<(), &'static str> {
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
/// ending, e.g. `SSH-2.0-myssh_1.0`) checked against RFC 4253 §4.2 (255
/// bytes with CR LF, printable US-ASCII, protocol 2.0), with CR LF added.
/// The key exchange hashes `id` without the CR LF.
pub(crate) fn identification_line(id: &str) -> Result<Vec<u8>, crate::Error> {
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
    if !bytes.iter().all(|&b| (0x20..0x7f).contains(&b)) {
        return Err(crate::Error::BadIdentification {
            reason: "our identification line must be printable US-ASCII",
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
    fn read_line_ends_with_crlf_or_bare_lf_within_its_bound() {
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
        assert_eq!(scan_line(b"SSH-2.0-x\r", 255), LineScan::Partial);
        assert_eq!(scan_line(&[b'x'; 254], 255), LineScan::Partial);
        assert_eq!(scan_line(&[b'x'; 255], 255), LineScan::TooLong);
    }

    #[test]
    fn peer_lines_follow_openssh_endings() {
        for (wire, content) in [
            (&b"SSH-2.0-x\r\nrest"[..], 9),
            (b"SSH-2.0-x\nrest", 9),
            (b"SSH-2.0-x\r\r\nrest", 9),
            (b"\n", 0),
            (b"\r\n", 0),
        ] {
            let consumed = wire.iter().position(|&b| b == b'\n').unwrap() + 1;
            assert_eq!(
                scan_peer_line(wire).unwrap(),
                LineScan::Line { content, consumed },
                "{wire:?}"
            );
        }
        assert_eq!(scan_peer_line(b"SSH-2.0-x\r").unwrap(), LineScan::Partial);
        assert!(scan_peer_line(b"SSH-2.0-a\rb\r\n").is_err());
        assert!(scan_peer_line(b"SSH-2.0-a\0b\r\n").is_err());
        assert!(scan_peer_line(b"hello\0\n").is_err());
    }

    #[test]
    fn peer_lines_take_8192_bytes_besides_the_ending() {
        let mut line = vec![b'a'; MAX_PEER_LINE_LEN];
        line.extend_from_slice(b"\r\n");
        assert!(matches!(
            scan_peer_line(&line).unwrap(),
            LineScan::Line { content: 8192, .. }
        ));
        line.insert(0, b'a');
        assert_eq!(scan_peer_line(&line).unwrap(), LineScan::TooLong);
        // No LF at all: refused once the bound is passed, not buffered on.
        assert_eq!(scan_peer_line(&[b'a'; 8000]).unwrap(), LineScan::Partial);
        assert_eq!(scan_peer_line(&[b'a'; 8192]).unwrap(), LineScan::Partial);
        assert_eq!(scan_peer_line(&[b'a'; 8193]).unwrap(), LineScan::TooLong);
        assert_eq!(scan_peer_line(&[b'a'; 100_000]).unwrap(), LineScan::TooLong);
        // A run of CRs is refused, not buffered on (and not called long).
        assert!(matches!(
            scan_peer_line(&[b'\r'; 100_000]),
            Err(crate::Error::BadIdentification { .. })
        ));
    }

    #[test]
    fn identification_rules() {
        assert!(check_identification(b"SSH-2.0-OpenSSH_9.6 Debian").is_ok());
        assert!(check_identification(b"SSH-2.0-x \tcomment \xc3\xa9").is_ok());
        assert!(check_identification(b"SSH-1.99-old").is_ok());
        assert!(check_identification(b"SSH-1.5-ancient").is_err());
        assert!(check_identification(b"SSH-2.0").is_err());
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
    fn our_line_gets_its_crlf_and_stays_within_255_printable_bytes() {
        assert_eq!(
            identification_line("SSH-2.0-me").unwrap(),
            b"SSH-2.0-me\r\n"
        );
        assert!(identification_line("SSH-2.0-me\r\n").is_err());
        assert!(identification_line("SSH-2.0-me\tx").is_err());
        assert!(identification_line("SSH-1.5-old").is_err());
        assert!(identification_line(&format!("SSH-2.0-{}", "x".repeat(250))).is_err());
    }

    #[test]
    fn the_text_of_a_line_with_latin1_stops_at_the_first_foreign_byte() {
        let id = PreBanner::default().finish(b"SSH-2.0-x_1 caf\xe9".to_vec());
        assert_eq!(id.as_str(), "SSH-2.0-x_1 caf");
        assert_eq!(id.software_version(), "x_1");
    }

    #[test]
    fn kept_lines_before_the_identification_are_bounded_in_bytes() {
        let mut kept = PreBanner::default();
        let line = vec![b'm'; 8000];
        // As OpenSSH: 1023 lines before the identification, which is the
        // 1024th.
        for _ in 0..MAX_PRE_BANNER_LINES - 1 {
            kept.push(&line).unwrap();
        }
        assert!(kept.push(b"one too many").is_err());
        let id = kept.finish(b"SSH-2.0-x".to_vec());
        assert_eq!(id.pre_banner.len(), MAX_PRE_BANNER_KEPT / 8000);
        assert!(id.pre_banner_truncated);
        let mut few = PreBanner::default();
        few.push(b"hello").unwrap();
        let id = few.finish(b"SSH-2.0-x".to_vec());
        assert_eq!((id.pre_banner.len(), id.pre_banner_truncated), (1, false));
    }
}
