//! Sending: our identification, sealing messages (or holding them while
//! our key exchange is under way), DISCONNECT, and the output the driver
//! writes.

use std::time::Instant;

use super::hold::HOLD_LIMIT;
use super::{hexdump::hexdump, Connection, Event, Sent, OUT};
use crate::banner;
use crate::error::Error;
use crate::msg;
use crate::padding::PaddingSource;

impl Connection {
    /// Queues our identification line (e.g. `SSH-2.0-myssh_1.0`, without
    /// line ending: CR LF is added). The key exchange hashes `id` as given.
    pub fn send_identification(&mut self, id: &str) -> Result<(), Error> {
        self.check()?;
        self.raw_allowed()?;
        let line = banner::identification_line(id)?;
        self.out.extend_from_slice(&line);
        Ok(())
    }

    /// Queues raw bytes for the wire as they are (an identification line a
    /// caller built itself); refused once a packet was sealed.
    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.check()?;
        self.raw_allowed()?;
        self.out.extend_from_slice(bytes);
        Ok(())
    }

    /// Raw bytes go only before the first packet.
    fn raw_allowed(&self) -> Result<(), Error> {
        if self.sealer.seqno() != 0 || self.policy.switched_once[OUT] {
            return Err(Error::InvalidCall {
                reason: "raw bytes after the first packet would break the packet stream",
            });
        }
        Ok(())
    }

    /// Seals one message (message type byte first) into the output, or holds
    /// it while our key exchange is under way (see [`Sent::Held`]).
    ///
    /// NEWKEYS goes through [`Connection::send_newkeys`] only. Non-fatal
    /// errors (nothing changes): an empty payload, one too large for the
    /// maximum packet length, [`Error::KexHoldFull`].
    pub fn send_message(&mut self, payload: &[u8]) -> Result<Sent, Error> {
        self.check()?;
        let msg_type = *payload.first().ok_or(Error::EmptyPayload)?;
        if msg_type == msg::NEWKEYS {
            return Err(Error::InvalidCall {
                reason: "NEWKEYS is sent with send_newkeys, which also switches the keys",
            });
        }
        if self.policy.holding && !msg::allowed_during_kex(msg_type) {
            if !self.sealer.fits_after_any_switch(payload.len()) {
                return Err(Error::PayloadTooLarge {
                    len: payload.len(),
                    max: self.sealer.max_packet_len(),
                });
            }
            if !self.hold.has_room(payload.len()) {
                return Err(Error::KexHoldFull {
                    held: self.hold.len(),
                    max: HOLD_LIMIT,
                });
            }
            self.hold.push(payload);
            return Ok(Sent::Held);
        }
        if msg_type != msg::KEXINIT {
            return self.seal(payload).map(|seqno| Sent::Sealed { seqno });
        }
        // Our KEXINIT: the exchange is under way from this packet on, so a
        // budget it spends asks for nothing more, and a request already
        // queued is answered.
        let before = (self.policy.holding, self.policy.kex);
        self.policy.holding = true;
        self.policy.kex_started();
        match self.seal(payload) {
            Ok(seqno) => {
                self.policy.events.retain(|&e| e != Event::RekeyWanted);
                Ok(Sent::Sealed { seqno })
            }
            Err(e) => {
                (self.policy.holding, self.policy.kex) = before;
                Err(e)
            }
        }
    }

    pub(super) fn seal(&mut self, payload: &[u8]) -> Result<u32, Error> {
        let seqno = match self.sealer.seal(payload, &mut self.out) {
            Ok(seqno) => seqno,
            Err(e) => return Err(self.fail(e)),
        };
        if self.policy.hexdump {
            hexdump("out", seqno, payload);
        }
        if self.sealer.budget_spent() {
            self.policy.want_rekey("the outbound budget is spent");
        }
        Ok(seqno)
    }

    /// Queues a DISCONNECT with `reason` ([`msg::reason`]) and
    /// `description`, then closes the connection: write out
    /// [`Connection::pending_output`] and hang up.
    pub fn send_disconnect(&mut self, reason: u32, description: &str) -> Result<(), Error> {
        self.check()?;
        self.seal(&msg::disconnect_payload(reason, description))?;
        self.close();
        Ok(())
    }

    /// Sealed bytes waiting to be written, oldest first.
    pub fn pending_output(&self) -> &[u8] {
        &self.out
    }

    /// Records that the first `n` bytes of [`Connection::pending_output`]
    /// were written, at `now`.
    pub fn output_written(&mut self, n: usize, now: Instant) {
        let n = n.min(self.out.len());
        if n == self.out.len() {
            self.out.clear();
        } else {
            self.out.drain(..n);
        }
        self.traffic(n, now);
    }

    /// Moves the pending output into `into` (which is cleared first; its
    /// capacity is kept for the next swap, so nothing is copied), for a
    /// writer that writes it without holding the connection
    /// ([`Outbound`](super::Outbound)). The bytes count as written at
    /// `now`: they are the writer's to write from here.
    pub(super) fn take_output(&mut self, into: &mut Vec<u8>, now: Instant) {
        into.clear();
        std::mem::swap(&mut self.out, into);
        let n = into.len();
        self.traffic(n, now);
    }

    /// Payload bytes held for after our key exchange.
    pub fn held_bytes(&self) -> usize {
        self.hold.len()
    }

    /// Replaces the source of outbound padding bytes (reproducible vectors).
    pub fn set_padding_source(&mut self, source: Box<dyn PaddingSource>) {
        self.sealer.set_padding_source(source);
    }
}
