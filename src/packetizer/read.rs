//! The receiving side: large reads into the Opener's buffer, and paramiko's
//! loop semantics on each read timeout.

use std::io::{self, ErrorKind};
use std::time::Duration;

use super::shared::{Shared, Way};
use super::write::hex;
use super::SendMessage;
use crate::banner::{self, Identification, LineScan};
use crate::codec::opener::Ready;
use crate::codec::{Opener, Packet};
use crate::error::Error;
use crate::keys::Keys;

/// The keepalive callback: given a handle to send with when the connection
/// has been idle for the interval.
pub type KeepaliveCallback = Box<dyn FnMut(&mut dyn SendMessage) -> Result<(), Error> + Send>;

pub(crate) struct Keepalive {
    pub(crate) interval: Duration,
    pub(crate) callback: KeepaliveCallback,
}

/// Where the read side gets bytes and how its keepalive sends.
pub(crate) trait Endpoint {
    fn read_bytes(&mut self, buf: &mut [u8]) -> io::Result<usize>;
    fn sink(&mut self) -> &mut dyn SendMessage;
}

/// What a read that needs more bytes is waiting for.
#[derive(Clone, Copy)]
struct Want {
    /// Raise [`Error::NeedRekey`] on a tick if nothing of this read has
    /// arrived yet and a rekey is wanted.
    check_rekey: bool,
    /// The bytes the read needs in all, for [`Error::Eof`].
    needed: usize,
}

/// The inbound half's state.
pub(crate) struct ReadSide {
    pub(crate) opener: Opener,
    pub(crate) keepalive: Option<Keepalive>,
}

impl ReadSide {
    pub(crate) fn new() -> ReadSide {
        ReadSide {
            opener: Opener::new(),
            keepalive: None,
        }
    }

    /// Installs inbound keys (between packets) and records the switch.
    pub(crate) fn switch_keys(&mut self, shared: &Shared, keys: Keys) -> Result<(), Error> {
        if shared.is_closed() {
            return Err(Error::Closed);
        }
        log::debug!("inbound keys: {} + {}", keys.cipher(), keys.mac());
        self.opener.set_keys(keys)?;
        shared.keys_switched(Way::In);
        Ok(())
    }

    /// One successful read into the buffer, running the timers on each read
    /// timeout while waiting.
    fn fill(&mut self, ep: &mut impl Endpoint, shared: &Shared, want: Want) -> Result<(), Error> {
        loop {
            if shared.is_closed() {
                return Err(Error::Closed);
            }
            let room = self.opener.unfilled();
            match ep.read_bytes(room) {
                Ok(0) => {
                    let got = self.opener.buffered();
                    return Err(if got == 0 && want.needed == 0 {
                        Error::Closed
                    } else {
                        Error::Eof {
                            needed: want.needed,
                            got,
                        }
                    });
                }
                Ok(n) => {
                    self.opener.filled(n);
                    shared.touch();
                    // Checked on data too, not only on timeouts as paramiko
                    // does: a peer dripping bytes faster than the read
                    // timeout must not outlive the deadline.
                    if shared.handshake_timed_out() {
                        return Err(Error::HandshakeTimeout);
                    }
                    return Ok(());
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    self.tick(ep, shared, want)?;
                }
                Err(e) => return Err(Error::Io(e)),
            }
        }
    }

    /// A read timed out with nothing new: paramiko's order of checks.
    fn tick(&mut self, ep: &mut impl Endpoint, shared: &Shared, want: Want) -> Result<(), Error> {
        if shared.is_closed() {
            return Err(Error::Closed);
        }
        let between_packets = self.opener.buffered() == 0;
        if want.check_rekey && between_packets && shared.rekey_wanted() {
            return Err(Error::NeedRekey);
        }
        if between_packets {
            self.run_keepalive(ep, shared)?;
        }
        if shared.handshake_timed_out() {
            return Err(Error::HandshakeTimeout);
        }
        Ok(())
    }

    fn run_keepalive(&mut self, ep: &mut impl Endpoint, shared: &Shared) -> Result<(), Error> {
        let Some(keepalive) = &mut self.keepalive else {
            return Ok(());
        };
        if shared.idle_for() < keepalive.interval {
            return Ok(());
        }
        log::debug!("idle for {:?}: keepalive", keepalive.interval);
        (keepalive.callback)(ep.sink())?;
        // The timer restarts whether or not the callback sent anything.
        shared.touch();
        Ok(())
    }

    /// The next packet; waits at a packet boundary with rekey checks on.
    pub(crate) fn read_message(
        &mut self,
        ep: &mut impl Endpoint,
        shared: &Shared,
    ) -> Result<Packet<'_>, Error> {
        if shared.is_closed() {
            return Err(Error::Closed);
        }
        let (payload, seqno) = loop {
            match self.opener.advance()? {
                Ready::Packet { payload, seqno } => break (payload, seqno),
                Ready::NeedMore(more) => {
                    let got = self.opener.buffered();
                    let want = Want {
                        check_rekey: true,
                        needed: if got == 0 { 0 } else { got + more },
                    };
                    self.fill(ep, shared, want)?;
                }
            }
        };
        if self.opener.needs_rekey() {
            shared.want_rekey();
        }
        if shared.rekey_wanted() {
            // The outbound side (or the clock) asked: the peer's grace starts.
            self.opener.request_rekey();
        }
        let packet = self.opener.packet_at(payload, seqno);
        if shared.hexdump() {
            log::debug!(target: "ssh_packetizer::hexdump", "in #{seqno}: {}", hex(packet.payload()));
        }
        Ok(packet)
    }

    /// Exactly `n` raw bytes, through the same buffer as the packets.
    pub(crate) fn read_all(
        &mut self,
        ep: &mut impl Endpoint,
        shared: &Shared,
        n: usize,
        check_rekey: bool,
    ) -> Result<Vec<u8>, Error> {
        if shared.is_closed() {
            return Err(Error::Closed);
        }
        let mut out = Vec::with_capacity(n.min(1 << 20));
        while out.len() < n {
            let raw = self.opener.raw_buffered();
            if raw.is_empty() {
                let want = Want {
                    check_rekey: check_rekey && out.is_empty(),
                    needed: n,
                };
                match self.fill(ep, shared, want) {
                    Err(Error::Eof { needed, .. }) => {
                        return Err(Error::Eof {
                            needed,
                            got: out.len(),
                        })
                    }
                    Err(Error::Closed) if !out.is_empty() => {
                        return Err(Error::Eof {
                            needed: n,
                            got: out.len(),
                        })
                    }
                    other => other?,
                }
                continue;
            }
            let take = raw.len().min(n - out.len());
            out.extend_from_slice(&raw[..take]);
            self.opener.consume_raw(take)?;
        }
        Ok(out)
    }

    /// One line of at most `max` bytes with its ending; returns it without
    /// CR LF, with the bytes it took with its ending, and leaves the bytes
    /// after it buffered.
    fn read_raw_line(
        &mut self,
        ep: &mut impl Endpoint,
        shared: &Shared,
        max: usize,
    ) -> Result<(Vec<u8>, usize), Error> {
        if shared.is_closed() {
            return Err(Error::Closed);
        }
        loop {
            match banner::scan_line(self.opener.raw_buffered(), max) {
                LineScan::Line { content, consumed } => {
                    let line = self.opener.raw_buffered()[..content].to_vec();
                    self.opener.consume_raw(consumed)?;
                    return Ok((line, consumed));
                }
                LineScan::TooLong => return Err(Error::LineTooLong { max }),
                LineScan::Partial => {
                    let got = self.opener.raw_buffered().len();
                    let want = Want {
                        check_rekey: false,
                        // A line has no known length: at least one more byte.
                        needed: if got == 0 { 0 } else { got + 1 },
                    };
                    self.fill(ep, shared, want)?;
                }
            }
        }
    }

    pub(crate) fn read_line(
        &mut self,
        ep: &mut impl Endpoint,
        shared: &Shared,
    ) -> Result<String, Error> {
        let (line, _) = self.read_raw_line(ep, shared, banner::MAX_PRE_BANNER_LINE_LEN)?;
        Ok(String::from_utf8_lossy(&line).into_owned())
    }

    pub(crate) fn read_identification(
        &mut self,
        ep: &mut impl Endpoint,
        shared: &Shared,
    ) -> Result<Identification, Error> {
        let mut pre_banner = Vec::new();
        loop {
            // Scan with the larger bound; an identification line must also
            // fit the smaller one, checked once it is known to be one.
            let (line, consumed) =
                self.read_raw_line(ep, shared, banner::MAX_PRE_BANNER_LINE_LEN)?;
            if banner::is_identification(&line) {
                if consumed > banner::MAX_IDENTIFICATION_LEN {
                    return Err(Error::LineTooLong {
                        max: banner::MAX_IDENTIFICATION_LEN,
                    });
                }
                banner::check_identification(&line)
                    .map_err(|reason| Error::BadIdentification { reason })?;
                return Ok(Identification { line, pre_banner });
            }
            if pre_banner.len() == banner::MAX_PRE_BANNER_LINES {
                return Err(Error::BadIdentification {
                    reason: "more than 1024 lines before the identification line",
                });
            }
            pre_banner.push(line);
        }
    }
}
