//! Key exchange state: key switches both ways, the initial kex, strict kex,
//! the one rekey request (see [`super::rekey`]) and delayed compression.

use std::time::Instant;

use super::hold;
use super::{hexdump::hexdump, rekey, Connection, Event, Policy, IN, OUT};
use crate::error::Error;
use crate::keys::Keys;
use crate::msg;

/// Where a key exchange stands, from its first KEXINIT either way until both
/// directions switched.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Kex {
    switched: [bool; 2],
}

impl Policy {
    pub(super) fn want_rekey(&mut self, why: &str) {
        if !self.initial_kex_done || self.rekey.is_some() || self.latch.is_set() {
            return;
        }
        log::debug!("rekey needed: {why}");
        // An exchange under way satisfies the request: the directions it
        // already switched count, and nobody needs telling to start one.
        let mut request = rekey::Request::default();
        match self.kex {
            Some(kex) => {
                for (direction, &done) in kex.switched.iter().enumerate() {
                    if done {
                        request.switched(direction);
                    }
                }
            }
            None => {
                self.rekeys_wanted += 1;
                self.raise(Event::RekeyWanted);
            }
        }
        self.rekey = Some(request);
    }

    pub(super) fn kex_started(&mut self) {
        self.kex.get_or_insert_with(Kex::default);
    }

    pub(super) fn is_kex_in_progress(&self) -> bool {
        self.holding || self.kex.is_some()
    }
}

impl Connection {
    /// Sends NEWKEYS under the current keys and switches the outbound keys
    /// to `keys`, in one step: no other packet is sealed between them. With
    /// strict kex the outbound sequence number then resets to 0. Messages
    /// held during the exchange follow at once, under the new keys. If
    /// `keys` cannot be installed nothing is sent. Returns NEWKEYS's
    /// sequence number. The switch is stamped with `now` (for the key age
    /// limit), after the timers due by then ran: a handshake deadline
    /// passed by `now` fails it with [`Error::HandshakeTimeout`].
    pub fn send_newkeys(&mut self, keys: Keys, now: Instant) -> Result<u32, Error> {
        self.handle_timeout(now);
        self.check()?;
        log::debug!("outbound keys: {} + {}", keys.cipher(), keys.mac());
        let cipher_on = keys.cipher() != crate::CipherAlgorithm::None;
        let seqno = match self.sealer.seal_newkeys(keys, &mut self.out) {
            Ok(seqno) => seqno,
            Err(e) => return Err(self.fail(e)),
        };
        if self.policy.hexdump {
            hexdump("out", seqno, &[msg::NEWKEYS]);
        }
        if self.policy.strict_kex {
            self.sealer.reset_seqno();
        }
        self.policy.holding = false;
        self.switched(OUT, cipher_on);
        let held = self.hold.take();
        let mut result = Ok(seqno);
        for payload in hold::payloads(&held) {
            if let Err(e) = self.seal(payload) {
                // The keys switched and the message was promised: the
                // connection cannot go on without it, whatever the error.
                result = Err(self.policy.latch.record_fatal(e));
                break;
            }
        }
        self.hold.restore(held);
        result
    }

    /// Installs the inbound keys, at a packet boundary: normally right after
    /// the peer's NEWKEYS, which holds further packets until this call.
    /// Like [`Connection::send_newkeys`], the switch is stamped with `now`
    /// (for the key age limit), after the timers due by then ran (a
    /// handshake deadline passed by `now` fails it with
    /// [`Error::HandshakeTimeout`]).
    pub fn set_inbound_keys(&mut self, keys: Keys, now: Instant) -> Result<(), Error> {
        self.handle_timeout(now);
        self.check()?;
        log::debug!("inbound keys: {} + {}", keys.cipher(), keys.mac());
        let cipher_on = keys.cipher() != crate::CipherAlgorithm::None;
        self.opener.set_keys(keys)?;
        self.switched(IN, cipher_on);
        Ok(())
    }

    pub(super) fn switched(&mut self, direction: usize, cipher_on: bool) {
        let policy = &mut self.policy;
        policy.switched_once[direction] = true;
        policy.timers.keys_since[direction] = cipher_on.then_some(policy.timers.now);
        if let Some(request) = &mut policy.rekey {
            if request.switched(direction) {
                policy.rekey = None;
                policy.events.retain(|&e| e != Event::RekeyWanted);
            }
        }
        if let Some(kex) = &mut policy.kex {
            kex.switched[direction] = true;
            if kex.switched == [true; 2] {
                policy.kex = None;
            }
        }
        if !policy.initial_kex_done && policy.switched_once == [true; 2] {
            policy.initial_kex_done = true;
            self.sealer.mark_initial_kex_done();
            self.opener.mark_initial_kex_done();
            policy.raise(Event::InitialKexDone);
            // Keepalive idle time counts from here.
            policy.timers.touch();
        }
        // A direction that switched first can spend its new budget before
        // the other switches (a small limit, a peer slow to send NEWKEYS).
        // That spending asked for a rekey while the request just cleared
        // was pending, and was absorbed by it; ask again, or nobody would
        // until the next packet, which may never come (a sender waiting
        // for window from a peer that has stopped).
        if self.policy.rekey.is_none() && (self.sealer.budget_spent() || self.opener.budget_spent())
        {
            self.policy
                .want_rekey("a budget was spent again before the exchange finished");
        }
    }

    /// Whether a key exchange should start (see [`Event::RekeyWanted`]);
    /// true from the request until both directions switched keys. As of
    /// the last `now` the core was given ([`Connection::handle_timeout`]
    /// runs the key age).
    pub fn need_rekey(&self) -> bool {
        self.policy.rekey.is_some()
    }

    /// Asks for a rekey now, as if a budget were spent (no-op before the
    /// initial kex is done or while one is wanted already).
    pub fn request_rekey(&mut self) {
        self.policy.want_rekey("the caller asked");
    }

    /// How many times a rekey became wanted with no exchange under way:
    /// each such request raised [`Event::RekeyWanted`]. A driver that
    /// reports rekeys (the Packetizers' [`Error::NeedRekey`](crate::Error::NeedRekey))
    /// remembers the count it last reported, so it needs no event: the
    /// events stay the caller's to take.
    pub fn rekeys_wanted(&self) -> u64 {
        self.policy.rekeys_wanted
    }

    /// Whether a key exchange should be started now: a rekey is wanted and
    /// none is under way (during one, [`Connection::need_rekey`] stays true
    /// until both directions switched).
    pub fn should_start_kex(&self) -> bool {
        self.need_rekey() && !self.is_kex_in_progress()
    }

    /// Whether a key exchange is under way (a KEXINIT went either way and
    /// not both directions switched since).
    pub fn is_kex_in_progress(&self) -> bool {
        self.policy.is_kex_in_progress()
    }

    /// Whether a keepalive may go out now: after the initial kex and not
    /// during a key exchange. A driver that runs a keepalive callback some
    /// time after [`Event::KeepaliveDue`] asks this first.
    pub fn keepalive_allowed(&self) -> bool {
        self.policy.initial_kex_done && !self.policy.is_kex_in_progress()
    }

    /// Whether both directions have switched keys at least once.
    pub fn is_initial_kex_done(&self) -> bool {
        self.policy.initial_kex_done
    }

    /// Whether the peer's NEWKEYS was read and the inbound keys are not
    /// installed yet.
    pub fn is_awaiting_keys(&self) -> bool {
        self.opener.is_awaiting_keys()
    }

    /// Strict key exchange (`kex-strict-*-v00@openssh.com`, both sides
    /// offered it): sequence numbers reset to 0 right after each NEWKEYS,
    /// each direction by itself. Until the peer's first NEWKEYS it also
    /// holds the peer to OpenSSH's order: its KEXINIT was its first packet,
    /// and only the key exchange's messages (KEXINIT, NEWKEYS, 30 to 49)
    /// come before that NEWKEYS. A packet that breaks it fails the
    /// connection with [`Error::StrictKexViolation`] and a DISCONNECT;
    /// turned on after a late KEXINIT was read, the next call answers it.
    pub fn set_strict_kex(&mut self, on: bool) {
        self.policy.strict_kex = on;
        let late = self.policy.first_kexinit.filter(|&first| first != 0);
        if let (true, false, Some(seqno)) = (on, self.policy.switched_once[IN], late) {
            let msg_type = msg::KEXINIT;
            self.fail(Error::StrictKexViolation { msg_type, seqno });
        }
    }

    /// Whether strict key exchange is on.
    pub fn is_strict_kex(&self) -> bool {
        self.policy.strict_kex
    }

    /// Starts `zlib@openssh.com` compression both ways: user authentication
    /// succeeded (the server after sending USERAUTH_SUCCESS, the client after
    /// reading it). Plain `zlib` starts with the keys and needs no call.
    pub fn start_delayed_compression(&mut self) {
        self.sealer.start_delayed_compression();
        self.opener.start_delayed_compression();
    }
}
