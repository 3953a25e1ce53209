//! The sending side: a PacketWriter behind a key exchange gate.
//!
//! RFC 4253 §7.1: between sending KEXINIT and sending NEWKEYS a party sends
//! only transport and kex messages. Connection-layer senders (the stdin
//! pump, scp, window adjusts) wait at the gate; the reader thread, which
//! drives the exchange, sends kex messages past it.

use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};

use ssh_packetizer::Keys;
use ssh_packetizer::PacketWriter;

use crate::error::{Error, Result};
use crate::kex::{self, Preferences, Side};

/// Where the key exchange stands, as far as sending is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KexPhase {
    /// No exchange under way.
    Idle,
    /// Our KEXINIT is out, our NEWKEYS is not: the gate is shut.
    Sending,
    /// Our NEWKEYS is out; the server's is awaited. Sending is allowed, but
    /// a new exchange may not start yet.
    AwaitingPeer,
}

#[derive(Debug)]
struct Gate {
    phase: KexPhase,
    /// Our KEXINIT payload of the exchange under way (I_C).
    our_kexinit: Option<Vec<u8>>,
    /// Whether the first KEXINIT has gone out (it alone carries the strict
    /// kex marker).
    sent_first: bool,
    /// Why the connection is gone, once it is.
    dead: Option<String>,
}

/// The writer shared by the main thread, the stdin pump and the reader.
pub struct Outbound {
    writer: PacketWriter<TcpStream>,
    prefs: Preferences,
    side: Side,
    gate: Mutex<Gate>,
    opened: Condvar,
    /// Payload bytes sent, every message counted.
    sent: AtomicU64,
}

impl std::fmt::Debug for Outbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbound").finish_non_exhaustive()
    }
}

impl Outbound {
    /// Wraps the writing half of our `side` of a connection.
    pub fn new(writer: PacketWriter<TcpStream>, prefs: Preferences, side: Side) -> Outbound {
        Outbound {
            writer,
            prefs,
            side,
            gate: Mutex::new(Gate {
                phase: KexPhase::Idle,
                our_kexinit: None,
                sent_first: false,
                dead: None,
            }),
            opened: Condvar::new(),
            sent: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Gate> {
        // A panic elsewhere never leaves the gate half-updated: recover it.
        self.gate.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The writing half, for settings (rekey limits, compression).
    pub fn writer(&self) -> &PacketWriter<TcpStream> {
        &self.writer
    }

    /// Sends a connection-layer message, waiting while a key exchange has
    /// the gate shut. A spent budget is the reader thread's to act on: the
    /// packet layer raises it there (a peer's KEXINIT raises it too, and a
    /// sender starting an exchange then would race the reader answering it).
    pub fn send(&self, payload: &[u8]) -> Result<()> {
        {
            let mut gate = self.lock();
            while gate.phase == KexPhase::Sending && gate.dead.is_none() {
                gate = self.opened.wait(gate).unwrap_or_else(|e| e.into_inner());
            }
            if let Some(why) = &gate.dead {
                return Err(Error::Protocol(why.clone()));
            }
            self.count(payload.len());
            self.writer.send_message(payload)?;
        }
        Ok(())
    }

    /// Sends a message now if the gate is open; `Ok(false)` if a key
    /// exchange shut it (the reader thread must not wait for itself).
    pub fn try_send(&self, payload: &[u8]) -> Result<bool> {
        let gate = self.lock();
        if gate.phase == KexPhase::Sending {
            return Ok(false);
        }
        self.count(payload.len());
        self.writer.send_message(payload)?;
        Ok(true)
    }

    /// Sends a transport or kex message past the gate.
    pub fn send_kex(&self, payload: &[u8]) -> Result<()> {
        self.count(payload.len());
        self.writer.send_message(payload)?;
        Ok(())
    }

    /// Starts a key exchange unless one is under way: sends our KEXINIT and
    /// shuts the gate. Returns whether this call started it.
    pub fn begin_kex(&self) -> Result<bool> {
        let mut gate = self.lock();
        if gate.phase != KexPhase::Idle {
            return Ok(false);
        }
        let ours = kex::kexinit(self.side, &self.prefs, !gate.sent_first)?;
        self.count(ours.len());
        self.writer.send_message(&ours)?;
        gate.sent_first = true;
        gate.our_kexinit = Some(ours);
        gate.phase = KexPhase::Sending;
        Ok(true)
    }

    fn count(&self, bytes: usize) {
        self.sent.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Payload bytes sent so far.
    pub fn bytes_sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Our KEXINIT of the exchange under way.
    pub fn our_kexinit(&self) -> Option<Vec<u8>> {
        self.lock().our_kexinit.clone()
    }

    /// The phase, for the reader's bookkeeping.
    pub fn phase(&self) -> KexPhase {
        self.lock().phase
    }

    /// Sends NEWKEYS and switches to `keys` in one step (the packet layer
    /// resets the sequence number under strict kex), and opens the gate.
    pub fn send_newkeys(&self, keys: Keys) -> Result<()> {
        let mut gate = self.lock();
        self.writer.send_newkeys(keys)?;
        gate.phase = KexPhase::AwaitingPeer;
        drop(gate);
        self.opened.notify_all();
        Ok(())
    }

    /// The server's NEWKEYS arrived: the exchange is over.
    pub fn kex_finished(&self) {
        let mut gate = self.lock();
        gate.phase = KexPhase::Idle;
        gate.our_kexinit = None;
    }

    /// Marks the connection dead so no sender waits forever.
    pub fn fail(&self, why: &str) {
        let mut gate = self.lock();
        if gate.dead.is_none() {
            gate.dead = Some(why.to_owned());
        }
        drop(gate);
        self.opened.notify_all();
        self.writer.close();
    }
}

/// Most replies held while our key exchange has the gate shut. A peer
/// that sends more requests than that during one exchange is refused
/// rather than allowed to grow our memory.
pub const HELD_REPLIES: usize = 64;

/// Replies from the reader thread, which must never wait at the gate (it
/// drives the exchange that opens it): sent at once when the gate is open,
/// else held, in order, until our NEWKEYS.
#[derive(Debug, Default)]
pub struct Replies {
    held: Vec<Vec<u8>>,
}

impl Replies {
    /// Sends `payload`, or holds it behind earlier held replies. Returns
    /// whether it went out now.
    pub fn send(&mut self, out: &Outbound, payload: Vec<u8>) -> Result<bool> {
        if self.held.is_empty() && out.try_send(&payload)? {
            return Ok(true);
        }
        if self.held.len() >= HELD_REPLIES {
            return Err(Error::Protocol(format!(
                "the peer asked for more than {HELD_REPLIES} replies during one key exchange"
            )));
        }
        self.held.push(payload);
        Ok(false)
    }

    /// Sends what was held (after our NEWKEYS). Returns whether all of it
    /// went out.
    pub fn flush(&mut self, out: &Outbound) -> Result<bool> {
        for payload in std::mem::take(&mut self.held) {
            self.send(out, payload)?;
        }
        Ok(self.held.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ssh_packetizer::Packetizer;
    use std::net::TcpListener;

    #[test]
    fn replies_are_held_while_the_gate_is_shut_and_bounded() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let ours = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let mut peer = Packetizer::tcp(listener.accept().unwrap().0).unwrap();
        let (_reader, writer) = Packetizer::tcp(ours).unwrap().split().unwrap();
        let out = Outbound::new(writer, Preferences::default(), Side::Client);
        let mut replies = Replies::default();
        assert!(replies.send(&out, vec![2, 0xff]).unwrap(), "sent at once");
        assert!(out.begin_kex().unwrap());
        for i in 0..HELD_REPLIES {
            assert!(!replies.send(&out, vec![2, i as u8]).unwrap(), "held");
        }
        let err = replies.send(&out, vec![2]).unwrap_err();
        assert!(err.to_string().contains("more than 64 replies"), "{err}");
        // The gate opens: everything held goes out, in order.
        out.kex_finished();
        assert!(replies.flush(&out).unwrap());
        assert_eq!(peer.read_message().unwrap().payload(), [2, 0xff]);
        assert_eq!(
            peer.read_message().unwrap().msg_type(),
            ssh_packetizer::msg::KEXINIT
        );
        for i in 0..HELD_REPLIES {
            assert_eq!(peer.read_message().unwrap().payload(), [2, i as u8]);
        }
    }
}
