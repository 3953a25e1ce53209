//! Receiving: the input the driver lends, packets (with the rules every
//! packet read passes), raw reads, lines and the identification exchange.

use std::time::Instant;

use super::hexdump::hexdump;
use super::{Connection, Role, IN};
use crate::banner::{self, Identification, LineScan};
use crate::codec::{InputBuffer, Opened};
use crate::error::Error;
use crate::msg;

impl Connection {
    /// Free room in `input` to read wire bytes into; report how many were
    /// written with [`Connection::recv_filled`]. Empty once
    /// [`Connection::input_limit`] bytes are buffered: take packets out
    /// first.
    pub fn recv_buf<'a>(&self, input: &'a mut InputBuffer) -> &'a mut [u8] {
        self.opener.unfilled(input)
    }

    /// Records that `n` bytes were written at the start of the room
    /// [`Connection::recv_buf`] offered last, at `now`; runs the timers.
    pub fn recv_filled(&mut self, input: &mut InputBuffer, n: usize, now: Instant) {
        self.opener.filled(input, n);
        self.traffic(n, now);
    }

    /// Copies as much of `data` into `input` as the input bound allows, at
    /// `now`, and returns how many bytes were taken; offer the rest once
    /// packets were taken out.
    pub fn feed(&mut self, input: &mut InputBuffer, data: &[u8], now: Instant) -> usize {
        let n = self.opener.feed(input, data);
        self.traffic(n, now);
        n
    }

    /// The peer closed its side of the stream. Returns (and keeps) the
    /// error that says what that means here, with what `input` holds:
    /// [`Error::Closed`] at a packet boundary with nothing buffered,
    /// [`Error::EofWhileDiscarding`] while a corrupt CBC packet is being
    /// discarded (nothing is sent to the peer), [`Error::Eof`] inside any
    /// other packet or a raw read. `raw_needed` is the bytes a raw read
    /// ([`Connection::poll_raw`], a line) needs in all, 0 for a line;
    /// `None` while reading packets.
    pub fn recv_eof(&mut self, input: &InputBuffer, raw_needed: Option<usize>) -> Error {
        if let Err(e) = self.check() {
            return e;
        }
        let e = match raw_needed {
            // A packet half read (a read given up inside one, a discard
            // under way) says what it says whatever read came next.
            Some(needed) if !self.opener.is_mid_packet() => {
                // A line (needed 0) has no known length: at least one more.
                let got = self.opener.raw_buffered(input).len();
                if needed == 0 && got == 0 {
                    Error::Closed
                } else {
                    Error::Eof {
                        needed: needed.max(got + 1),
                        got,
                    }
                }
            }
            _ => self.opener.eof(input.buffered()),
        };
        self.fail(e)
    }

    /// The most input bytes held at once: one maximum packet plus 64 KiB.
    pub fn input_limit(&self) -> usize {
        self.opener.input_limit()
    }

    /// Takes the next packet out of `input` if it is whole; it stays in
    /// `input` ([`InputBuffer::packet`]) until the next read.
    /// [`Opened::AwaitingKeys`] after the peer's NEWKEYS until
    /// [`Connection::set_inbound_keys`]. A DISCONNECT is returned as
    /// [`Error::Disconnected`].
    pub fn poll_packet<'a>(&mut self, input: &'a mut InputBuffer) -> Result<Opened<'a>, Error> {
        self.check()?;
        let packet = match self.opener.next_packet(input) {
            Ok(Opened::Packet(packet)) => packet,
            Ok(other) => return Ok(other),
            Err(e) => return Err(self.fail(e)),
        };
        let (msg_type, seqno) = (packet.msg_type(), packet.seqno());
        if self.policy.hexdump {
            hexdump("in", seqno, packet.payload());
        }
        if msg_type == msg::DISCONNECT {
            return Err(self.fail(msg::parse_disconnect(packet.payload())));
        }
        if msg_type == msg::NEWKEYS && self.policy.strict_kex {
            self.opener.reset_seqno();
        }
        self.after_inbound(msg_type, seqno)?;
        Ok(Opened::Packet(packet))
    }

    /// The rules every packet read passes: strict kex's order during the
    /// initial exchange, the grace allowance is counted, a KEXINIT or a
    /// spent budget asks for a rekey.
    fn after_inbound(&mut self, msg_type: u8, seqno: u32) -> Result<(), Error> {
        if !self.policy.switched_once[IN] {
            if msg_type == msg::KEXINIT && self.policy.first_kexinit.is_none() {
                self.policy.first_kexinit = Some(seqno);
            }
            // As OpenSSH: the peer's KEXINIT is its first packet, and only
            // the key exchange's messages come before its NEWKEYS.
            let kexinit_late = self.policy.first_kexinit.is_some_and(|first| first != 0);
            if self.policy.strict_kex && (kexinit_late || !msg::is_kex(msg_type)) {
                return Err(self.fail(Error::StrictKexViolation { msg_type, seqno }));
            }
        }
        if let Some(request) = &mut self.policy.rekey {
            // A packet beyond the grace allowance is refused, whole as it is.
            if request.grace_exceeded(&self.policy.limits) {
                return Err(self.fail(Error::RekeyIgnored));
            }
            request.count_inbound(self.opener.last_wire_len());
        }
        let policy = &mut self.policy;
        if msg_type == msg::KEXINIT {
            // The request first: if no exchange of ours is under way, the
            // transport must be told to answer this one.
            policy.want_rekey("the peer sent KEXINIT");
            policy.kex_started();
        }
        if self.opener.budget_spent() {
            policy.want_rekey("the inbound budget is spent");
        }
        Ok(())
    }

    /// The bytes in `input` no packet has claimed, for raw reads (the
    /// identification line, paramiko's `read_all`). Empty while a packet is
    /// half read.
    pub fn raw_buffered<'a>(&self, input: &'a InputBuffer) -> &'a [u8] {
        self.opener.raw_buffered(input)
    }

    /// Takes `n` raw bytes off the front of `input`. Only between packets.
    pub fn consume_raw(&mut self, input: &mut InputBuffer, n: usize) -> Result<(), Error> {
        self.check()?;
        self.opener.consume_raw(input, n)
    }

    /// `n` raw bytes off the front of `input` once all are buffered;
    /// nothing is taken before (`None`). Only between packets.
    pub fn poll_raw(
        &mut self,
        input: &mut InputBuffer,
        n: usize,
    ) -> Result<Option<Vec<u8>>, Error> {
        self.check()?;
        let raw = self.opener.raw_buffered(input);
        if raw.len() < n {
            return Ok(None);
        }
        let bytes = raw[..n].to_vec();
        self.opener.consume_raw(input, n)?;
        Ok(Some(bytes))
    }

    /// One line of at most 8192 bytes from the raw input, without its CR LF
    /// (or bare LF), if a whole one is buffered; the bytes after it stay.
    pub fn poll_line(&mut self, input: &mut InputBuffer) -> Result<Option<Vec<u8>>, Error> {
        self.check()?;
        let max = banner::MAX_PEER_LINE_LEN;
        match banner::scan_line(self.opener.raw_buffered(input), max) {
            LineScan::Line { content, consumed } => {
                let line = self.opener.raw_buffered(input)[..content].to_vec();
                self.opener.consume_raw(input, consumed)?;
                Ok(Some(line))
            }
            LineScan::TooLong => Err(self.fail(Error::LineTooLong { max })),
            LineScan::Partial => Ok(None),
        }
    }

    /// The peer's identification line once it is buffered in `input` (RFC
    /// 4253 §4.2), with the lines before it, read as OpenSSH reads them:
    /// every line ends at LF, a CR only right before it, no NUL, at most
    /// 8192 bytes besides the ending. A client accepts up to 1023 lines
    /// before the identification and keeps up to
    /// [`Identification::MAX_PRE_BANNER_KEPT`] bytes of them; a server
    /// accepts none. The line must announce protocol 2.0 (or 1.99). Bytes
    /// after it stay buffered for the first packet. `None`: not all of it
    /// arrived yet.
    pub fn poll_identification(
        &mut self,
        input: &mut InputBuffer,
    ) -> Result<Option<Identification>, Error> {
        self.check()?;
        loop {
            let raw = self.opener.raw_buffered(input);
            let (content, consumed) = match banner::scan_peer_line(raw) {
                Ok(LineScan::Line { content, consumed }) => (content, consumed),
                Ok(LineScan::Partial) => return Ok(None),
                Ok(LineScan::TooLong) => {
                    return Err(self.fail(Error::LineTooLong {
                        max: banner::MAX_PEER_LINE_LEN,
                    }))
                }
                Err(e) => return Err(self.fail(e)),
            };
            let line = &raw[..content];
            if banner::is_identification(line) {
                if let Err(reason) = banner::check_identification(line) {
                    return Err(self.fail(Error::BadIdentification { reason }));
                }
                let line = line.to_vec();
                self.opener.consume_raw(input, consumed)?;
                return Ok(Some(self.policy.pre_banner.finish(line)));
            }
            if self.policy.role == Role::Server {
                return Err(self.fail(Error::BadIdentification {
                    reason: "a client must send its identification line first",
                }));
            }
            if let Err(e) = self.policy.pre_banner.push(line) {
                return Err(self.fail(e));
            }
            self.opener.consume_raw(input, consumed)?;
        }
    }
}
