//! The server role's identification rules: a server reads the client's
//! identification line first (RFC 4253 §4.2 lets only a server send lines
//! before its own), so anything else before it is refused.
//!
//! The input is the stream, handed over in pieces whose sizes the first
//! byte picks (0: all at once), then the end of the stream.

use std::time::Instant;

use ssh_packetizer::{Config, Connection, InputBuffer};

/// Feeds `data` to a server-role core reading the client's identification.
pub fn identification_server(data: &[u8]) {
    let Some((&piece, stream)) = data.split_first() else {
        return;
    };
    let piece = if piece == 0 {
        usize::MAX
    } else {
        usize::from(piece)
    };
    let now = Instant::now();
    let mut core = Connection::new(Config::server(), now);
    let mut input = InputBuffer::new();
    let mut fed = 0;
    loop {
        match core.poll_identification(&mut input) {
            Ok(Some(id)) => {
                // A server takes no line before the identification.
                assert!(id.pre_banner.is_empty() && !id.pre_banner_truncated);
                assert!(id.line.starts_with(b"SSH-"), "{:?}", id.line);
                assert!(id.line.len() <= 8192, "{} bytes", id.line.len());
                assert!(!id.line.contains(&0) && !id.line.contains(&b'\r'));
                // The line was the stream's first: it and its ending are
                // all that was taken, the rest waits for the first packet.
                assert!(stream.starts_with(&id.line));
                // The ending: CRs (OpenSSH skips any number) then LF.
                let ending = &stream[id.line.len()..];
                let crs = ending.iter().take_while(|&&b| b == b'\r').count();
                assert_eq!(ending.get(crs), Some(&b'\n'), "the line ended early");
                let taken = crs + 1;
                assert_eq!(input.buffered(), fed - id.line.len() - taken);
                return;
            }
            Ok(None) if fed < stream.len() => {
                let end = fed.saturating_add(piece).min(stream.len());
                let took = core.feed(&mut input, &stream[fed..end], now);
                // A full input with no line in it is an error, not a stall.
                assert!(took > 0, "the core took nothing and found no line");
                fed += took;
            }
            Ok(None) => {
                // The stream ends before a whole line: a typed error, and
                // the core is closed with it.
                let e = core.recv_eof(&input, None);
                assert!(core.is_closed(), "{e:?} left the core open");
                return;
            }
            Err(e) => {
                assert!(core.is_closed(), "{e:?} left the core open");
                // Every later call reports that first error.
                assert!(core.poll_identification(&mut input).is_err());
                return;
            }
        }
    }
}
