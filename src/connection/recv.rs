//! Receiving: the input the driver fills, packets (with the rules every
//! packet read passes), raw reads, lines and the identification exchange.

use std::time::Instant;

use super::hexdump::hexdump;
use super::{inbound, Connection, Role};
use crate::banner::{self, Identification, LineScan};
use crate::codec::input::InputBuffer;
use crate::codec::opener::OpenCore;
use crate::codec::{Frame, Packet, Step};
use crate::error::Error;
use crate::msg;

impl Connection {
    /// Free room to read wire bytes into; report how many were written with
    /// [`Connection::recv_filled`]. Empty once one maximum packet plus 64 KiB
    /// is buffered: take packets out first.
    pub fn recv_buf(&mut self) -> &mut [u8] {
        let (core, input) = self.opener.parts();
        core.room(input)
    }

    /// Records that `n` bytes were written at the start of
    /// [`Connection::recv_buf`], at `now`; runs the timers.
    pub fn recv_filled(&mut self, n: usize, now: Instant) {
        self.opener.filled(n);
        self.received(n, now);
    }

    /// Copies as much of `data` as the input bound allows, at `now`, and
    /// returns how many bytes were taken; offer the rest once packets were
    /// taken out.
    pub fn feed(&mut self, data: &[u8], now: Instant) -> usize {
        let n = self.opener.feed(data);
        self.received(n, now);
        n
    }

    pub(crate) fn received(&mut self, n: usize, now: Instant) {
        self.policy.timers.advance(now);
        if n > 0 {
            self.policy.timers.touch();
        }
        self.handle_timeout(now);
    }

    /// The peer closed its side of the stream. Returns (and keeps) the
    /// error that says what that means here: [`Error::Closed`] at a packet
    /// boundary with nothing buffered, [`Error::EofWhileDiscarding`] while a
    /// corrupt CBC packet is being discarded (nothing is sent to the peer),
    /// [`Error::Eof`] inside any other packet or a raw read. `raw_needed` is the bytes a raw read (`read_all`,
    /// `read_line`) needs in all; `None` while reading packets.
    pub fn recv_eof(&mut self, raw_needed: Option<usize>) -> Error {
        self.recv_eof_in(None, raw_needed)
    }

    pub(crate) fn recv_eof_in(
        &mut self,
        external: Option<&mut InputBuffer>,
        raw_needed: Option<usize>,
    ) -> Error {
        if let Err(e) = self.check() {
            return e;
        }
        let (core, input) = inbound(&mut self.opener, external);
        let e = match raw_needed {
            // A packet half read (a read given up inside one, a discard
            // under way) says what it says whatever read came next.
            Some(_) if core.mid_packet() => core.eof(input.buffered()),
            Some(needed) => {
                // A line (needed 0) has no known length: at least one more.
                let got = core.raw_buffered(input).len();
                if needed == 0 && got == 0 {
                    Error::Closed
                } else {
                    Error::Eof {
                        needed: needed.max(got + 1),
                        got,
                    }
                }
            }
            None => core.eof(input.buffered()),
        };
        self.fail(e)
    }

    /// Copies bytes a driver read elsewhere into the input, without the time
    /// (the driver reports it with `received` right after).
    #[cfg(feature = "tokio")]
    pub(crate) fn feed_bytes(&mut self, data: &[u8]) -> usize {
        self.opener.feed(data)
    }

    /// As `feed_bytes`, into a driver's own input buffer.
    #[cfg(feature = "tokio")]
    pub(crate) fn feed_in(&mut self, input: &mut InputBuffer, data: &[u8]) -> usize {
        let room = self.opener.core_mut().feed_room(input, data.len());
        let n = room.len().min(data.len());
        room[..n].copy_from_slice(&data[..n]);
        input.filled(n);
        n
    }

    /// As [`Connection::recv_eof`] for a driver that reads packets in place
    /// from its own buffer, which holds `got` bytes.
    #[cfg(feature = "tokio")]
    pub(crate) fn recv_eof_in_place(&mut self, got: usize) -> Error {
        if let Err(e) = self.check() {
            return e;
        }
        let e = self.opener.core().eof(got);
        self.fail(e)
    }

    /// Reads start at 16 KiB and grow while they fill their room, up to
    /// 64 KiB (the async drivers, which keep many connections).
    #[cfg(feature = "tokio")]
    pub(crate) fn set_adaptive_reads(&mut self) {
        self.opener.set_adaptive_reads();
    }

    /// Bytes the connection's own input buffer has allocated.
    #[cfg(feature = "tokio")]
    pub(crate) fn input_allocated(&self) -> usize {
        self.opener.input_allocated()
    }

    /// Records bytes read into [`Connection::recv_buf`] without the time
    /// (the driver reports it with `received` right after).
    pub(crate) fn recv_filled_bytes(&mut self, n: usize) {
        self.opener.filled(n);
    }

    /// The room a driver's own input buffer offers for the next read, under
    /// this connection's bounds.
    pub(crate) fn recv_room_in<'a>(&mut self, input: &'a mut InputBuffer) -> &'a mut [u8] {
        self.opener.core_mut().room(input)
    }

    /// `n` raw bytes once all are buffered; nothing is taken before.
    pub(crate) fn take_raw_in(
        &mut self,
        external: Option<&mut InputBuffer>,
        n: usize,
    ) -> Result<Option<Vec<u8>>, Error> {
        self.check()?;
        let (core, input) = inbound(&mut self.opener, external);
        let raw = core.raw_buffered(input);
        if raw.len() < n {
            return Ok(None);
        }
        let bytes = raw[..n].to_vec();
        core.consume_raw(input, n)?;
        Ok(Some(bytes))
    }

    /// Bytes buffered that no returned packet has claimed.
    pub fn buffered(&self) -> usize {
        self.opener.buffered()
    }

    /// The most input bytes held at once: one maximum packet plus 64 KiB.
    pub fn input_limit(&self) -> usize {
        self.opener.input_limit()
    }

    /// Takes the next packet off the input if it is whole; borrow it with
    /// [`Connection::packet`]. [`Step::AwaitingKeys`] after the peer's
    /// NEWKEYS until [`Connection::set_inbound_keys`]. A DISCONNECT is
    /// returned as [`Error::Disconnected`].
    pub fn poll_packet(&mut self) -> Result<Step, Error> {
        self.poll_packet_in(None)
    }

    pub(crate) fn poll_packet_in(
        &mut self,
        external: Option<&mut InputBuffer>,
    ) -> Result<Step, Error> {
        self.check()?;
        let (core, input) = inbound(&mut self.opener, external);
        let step = match core.advance(input) {
            Ok(step) => step,
            Err(e) => return Err(self.fail(e)),
        };
        if step != Step::Ready {
            return Ok(step);
        }
        let Some(packet) = core.packet(input) else {
            return Ok(Step::NeedMore(0));
        };
        let (msg_type, seqno) = (packet.msg_type(), packet.seqno());
        let disconnect = inspect_inbound(self.policy.hexdump, packet.payload(), seqno);
        let wire_len = core.last_wire_len();
        let budget_spent = core.budget_spent();
        if msg_type == msg::NEWKEYS && self.policy.strict_kex {
            core.reset_seqno();
        }
        self.after_inbound(msg_type, wire_len, budget_spent, disconnect)?;
        Ok(Step::Ready)
    }

    /// The rules every packet read passes, whichever buffer it was read
    /// from: a DISCONNECT ends the connection, the grace allowance is
    /// counted, a KEXINIT or a spent budget asks for a rekey.
    fn after_inbound(
        &mut self,
        msg_type: u8,
        wire_len: usize,
        budget_spent: bool,
        disconnect: Option<Error>,
    ) -> Result<(), Error> {
        if let Some(e) = disconnect {
            return Err(self.fail(e));
        }
        if let Some(request) = &mut self.policy.rekey {
            // A packet beyond the grace allowance is refused, whole as it is.
            if request.grace_exceeded(&self.policy.limits) {
                return Err(self.fail(Error::RekeyIgnored));
            }
            request.count_inbound(wire_len);
        }
        let policy = &mut self.policy;
        if msg_type == msg::KEXINIT {
            // The request first: if no exchange of ours is under way, the
            // transport must be told to answer this one.
            policy.want_rekey("the peer sent KEXINIT");
            policy.kex_started();
        }
        if budget_spent {
            policy.want_rekey("the inbound budget is spent");
        }
        Ok(())
    }

    /// Reads the next packet straight from a caller's buffer, decrypting it
    /// in place (see [`crate::Opener::open_in_place`]), under every rule
    /// [`Connection::poll_packet`] applies: for a driver that owns its
    /// buffer (the tokio codec's `BytesMut`). Do not mix with the
    /// connection's own input ([`Connection::feed`], `recv_buf`).
    /// [`Frame::AwaitingKeys`] after the peer's NEWKEYS until
    /// [`Connection::set_inbound_keys`]. Not while compression is on.
    pub fn open_in_place(&mut self, buf: &mut [u8]) -> Result<Frame, Error> {
        self.check()?;
        let core = self.opener.core_mut();
        let frame = match core.open_in_place(buf) {
            Ok(frame) => frame,
            Err(e) => return Err(self.fail(e)),
        };
        let Frame::Packet {
            payload,
            wire_len,
            seqno,
        } = &frame
        else {
            return Ok(frame);
        };
        let budget_spent = core.budget_spent();
        let msg_type = buf[payload.start];
        if msg_type == msg::NEWKEYS && self.policy.strict_kex {
            self.opener.core_mut().reset_seqno();
        }
        let disconnect = inspect_inbound(self.policy.hexdump, &buf[payload.clone()], *seqno);
        self.after_inbound(msg_type, *wire_len, budget_spent, disconnect)?;
        Ok(frame)
    }

    /// The packet the last [`Connection::poll_packet`] made ready, until the
    /// next call that takes `&mut self`.
    pub fn packet(&self) -> Option<Packet<'_>> {
        self.opener.packet()
    }

    pub(crate) fn opener_core(&self) -> &OpenCore {
        self.opener.core()
    }

    /// The buffered bytes no packet has claimed, for raw reads (the
    /// identification line, paramiko's `read_all`). Empty while a packet is
    /// half read.
    pub fn raw_buffered(&self) -> &[u8] {
        self.opener.raw_buffered()
    }

    /// Takes `n` raw bytes off the front of the input. Only between packets.
    pub fn consume_raw(&mut self, n: usize) -> Result<(), Error> {
        self.check()?;
        self.opener.consume_raw(n)
    }

    /// One line of at most 8192 bytes from the raw input, without its CR LF
    /// (or bare LF), if a whole one is buffered; the bytes after it stay.
    pub fn poll_line(&mut self) -> Result<Option<Vec<u8>>, Error> {
        Ok(self
            .poll_raw_line_in(None, banner::MAX_PEER_LINE_LEN)?
            .map(|(line, _)| line))
    }

    pub(crate) fn poll_raw_line_in(
        &mut self,
        external: Option<&mut InputBuffer>,
        max: usize,
    ) -> Result<Option<(Vec<u8>, usize)>, Error> {
        self.check()?;
        let (core, input) = inbound(&mut self.opener, external);
        match banner::scan_line(core.raw_buffered(input), max) {
            LineScan::Line { content, consumed } => {
                let line = core.raw_buffered(input)[..content].to_vec();
                core.consume_raw(input, consumed)?;
                Ok(Some((line, consumed)))
            }
            LineScan::TooLong => Err(self.fail(Error::LineTooLong { max })),
            LineScan::Partial => Ok(None),
        }
    }

    /// The peer's identification line once it is buffered (RFC 4253 §4.2),
    /// with the lines before it, read as OpenSSH reads them: every line ends
    /// at LF, a CR only right before it, no NUL, at most 8192 bytes besides
    /// the ending. A client accepts up to 1023 lines before the
    /// identification and keeps up to [`Identification::MAX_PRE_BANNER_KEPT`] bytes
    /// of them; a server accepts none. The line must announce protocol 2.0
    /// (or 1.99). Bytes after it stay buffered for the first packet.
    /// `None`: not all of it arrived yet.
    pub fn poll_identification(&mut self) -> Result<Option<Identification>, Error> {
        self.poll_identification_in(None)
    }

    pub(crate) fn poll_identification_in(
        &mut self,
        mut external: Option<&mut InputBuffer>,
    ) -> Result<Option<Identification>, Error> {
        self.check()?;
        loop {
            let (core, input) = inbound(&mut self.opener, external.as_deref_mut());
            let scanned = banner::scan_peer_line(core.raw_buffered(input));
            let (content, consumed) = match scanned {
                Ok(LineScan::Line { content, consumed }) => (content, consumed),
                Ok(LineScan::Partial) => return Ok(None),
                Ok(LineScan::TooLong) => {
                    return Err(self.fail(Error::LineTooLong {
                        max: banner::MAX_PEER_LINE_LEN,
                    }))
                }
                Err(e) => return Err(self.fail(e)),
            };
            let raw = core.raw_buffered(input);
            if banner::is_identification(&raw[..content]) {
                if let Err(reason) = banner::check_identification(&raw[..content]) {
                    return Err(self.fail(Error::BadIdentification { reason }));
                }
                let line = raw[..content].to_vec();
                core.consume_raw(input, consumed)?;
                return Ok(Some(self.policy.pre_banner.finish(line)));
            }
            if self.policy.role == Role::Server {
                return Err(self.fail(Error::BadIdentification {
                    reason: "a client must send its identification line first",
                }));
            }
            if let Err(e) = self.policy.pre_banner.push(&raw[..content]) {
                return Err(self.fail(e));
            }
            core.consume_raw(input, consumed)?;
        }
    }

    /// The Opener's input buffer, for a split reader that keeps it.
    pub(crate) fn take_input(&mut self) -> InputBuffer {
        self.opener.take_input()
    }
}

/// Logs a packet just read (if the hexdump is on) and parses it if it is a
/// DISCONNECT.
fn inspect_inbound(hexdump_on: bool, payload: &[u8], seqno: u32) -> Option<Error> {
    if hexdump_on {
        hexdump("in", seqno, payload);
    }
    (payload[0] == msg::DISCONNECT).then(|| msg::parse_disconnect(payload))
}
