//! The sending side: a PacketWriter behind a key exchange gate.
//!
//! RFC 4253 §7.1: between sending KEXINIT and sending NEWKEYS a party sends
//! only transport and kex messages. Connection-layer senders (the stdin
//! pump, scp, the server's output pumps) wait at the gate; the reader
//! thread, which drives the exchange, sends kex messages past it, and its
//! own replies are held while the gate is shut and sealed, in order, in
//! the same step as our NEWKEYS (so nothing overtakes them).
//!
//! The gate's lock is held only to seal a packet, never across a write:
//! the bytes go out after it is released. Threads that may wait flush and
//! wait for the stream. The reader thread never writes at all: what it
//! seals is written by a flusher thread of the connection's own (or by a
//! sender already writing), so neither a sender stuck on a full socket nor
//! a full socket itself ever stops it from reading what the peer needs
//! read before it can take more. (Two ends whose readers both wrote could
//! each wait for the other to read.)
//!
//! Every message that belongs to a channel is sealed only while we have
//! not sealed that channel's CLOSE ([`SendWindow`]'s flag, checked and set
//! under the gate's lock): nothing follows our CLOSE (RFC 4254 §5.3).

use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use ssh_packetizer::Keys;
use ssh_packetizer::PacketWriter;

use crate::error::{Error, Result};
use crate::kex::{self, Negotiated, Preferences, Side};
use crate::window::SendWindow;

/// Where the key exchange stands, as far as sending is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KexPhase {
    /// No exchange under way.
    Idle,
    /// Our KEXINIT is out, our NEWKEYS is not: the gate is shut.
    Sending,
    /// Our NEWKEYS is out; the peer's is awaited. Sending is allowed, but
    /// a new exchange may not start yet.
    AwaitingPeer,
}

/// Most replies held while our key exchange has the gate shut. A peer
/// that asks for more than that during one exchange is refused rather than
/// allowed to grow our memory.
pub const HELD_REPLIES: usize = 64;

/// A message for the peer, with the channel it belongs to, if any.
#[derive(Debug)]
pub struct Outgoing {
    payload: Vec<u8>,
    channel: Option<Arc<SendWindow>>,
    /// It is that channel's CLOSE.
    closes: bool,
    /// zlib@openssh.com starts right after it (USERAUTH_SUCCESS).
    then_compress: bool,
}

impl Outgoing {
    /// A message of no channel.
    pub fn plain(payload: Vec<u8>) -> Outgoing {
        Outgoing {
            payload,
            channel: None,
            closes: false,
            then_compress: false,
        }
    }

    /// A message on `channel`: dropped if we have closed it.
    pub fn on(channel: Arc<SendWindow>, payload: Vec<u8>) -> Outgoing {
        Outgoing {
            channel: Some(channel),
            ..Outgoing::plain(payload)
        }
    }

    /// `channel`'s CLOSE: sealed once, whoever sends it first.
    pub fn close(channel: Arc<SendWindow>, payload: Vec<u8>) -> Outgoing {
        Outgoing {
            closes: true,
            ..Outgoing::on(channel, payload)
        }
    }

    /// The message.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// Starts delayed compression of what we send right after this one.
    pub fn then_start_compression(mut self) -> Outgoing {
        self.then_compress = true;
        self
    }
}

#[derive(Debug)]
struct Gate {
    phase: KexPhase,
    /// Our KEXINIT payload of the exchange under way (I_C or I_S).
    our_kexinit: Option<Vec<u8>>,
    /// Whether the first KEXINIT has gone out (it alone carries the strict
    /// kex marker).
    sent_first: bool,
    /// The reader's replies while the gate is shut.
    held: Vec<Outgoing>,
    /// How long a rekey may take, once set.
    rekey_deadline: Option<Duration>,
    /// A rekey's deadline is running.
    deadline_running: bool,
    /// Why the connection is gone, once it is.
    dead: Option<String>,
}

/// Wakes the flusher thread.
#[derive(Debug, Default)]
struct Flusher {
    /// Something was sealed since the flusher last looked; `None` once
    /// the connection is over and the flusher is to stop.
    due: Mutex<Option<bool>>,
    wake: Condvar,
}

impl Flusher {
    /// Asks for a flush; false if there is no flusher (any more).
    fn kick(&self) -> bool {
        let mut due = self.due.lock().unwrap_or_else(|e| e.into_inner());
        match due.as_mut() {
            Some(due) => {
                *due = true;
                self.wake.notify_one();
                true
            }
            None => false,
        }
    }

    fn stop(&self) {
        *self.due.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.wake.notify_one();
    }

    /// The flusher thread: writes what was sealed each time it is kicked,
    /// waiting for the stream as long as it takes (the writer's stall
    /// limit bounds that), until stopped or the connection fails.
    fn run(&self, writer: PacketWriter<TcpStream>) {
        loop {
            {
                let mut due = self.due.lock().unwrap_or_else(|e| e.into_inner());
                loop {
                    match *due {
                        None => return,
                        Some(true) => break,
                        Some(false) => {
                            due = self.wake.wait(due).unwrap_or_else(|e| e.into_inner());
                        }
                    }
                }
                *due = Some(false);
            }
            if writer.flush().is_err() {
                return;
            }
        }
    }
}

/// The writer shared by the reader thread and every sending thread.
pub struct Outbound {
    writer: PacketWriter<TcpStream>,
    flusher: Arc<Flusher>,
    prefs: Preferences,
    side: Side,
    gate: Mutex<Gate>,
    opened: Condvar,
    /// Payload bytes sealed, every message counted.
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
        let flusher = Arc::new(Flusher {
            due: Mutex::new(Some(false)),
            wake: Condvar::new(),
        });
        let (thread_flusher, thread_writer) = (flusher.clone(), writer.clone());
        let spawned = std::thread::Builder::new()
            .name("minissh-flusher".into())
            .spawn(move || thread_flusher.run(thread_writer));
        if spawned.is_err() {
            // No thread: the reader then writes itself, when no one else
            // is writing (see `flush_soon`).
            flusher.stop();
        }
        Outbound {
            writer,
            flusher,
            prefs,
            side,
            gate: Mutex::new(Gate {
                phase: KexPhase::Idle,
                our_kexinit: None,
                sent_first: false,
                held: Vec::new(),
                rekey_deadline: None,
                deadline_running: false,
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

    /// Has what the reader sealed written soon, by the flusher thread.
    fn flush_soon(&self) -> Result<()> {
        if !self.flusher.kick() {
            self.writer.try_flush()?;
        }
        Ok(())
    }

    /// Seals one message under the gate's lock (the caller holds it).
    /// Returns false if it was for a channel we have closed.
    fn seal(&self, _gate: &mut Gate, msg: &Outgoing) -> Result<bool> {
        let sealed = self.seal_parts(&msg.payload, msg.channel.as_deref(), msg.closes)?;
        if sealed && msg.then_compress {
            self.writer
                .connection()
                .with(|core| core.start_delayed_compression());
        }
        Ok(sealed)
    }

    fn seal_parts(
        &self,
        payload: &[u8],
        channel: Option<&SendWindow>,
        closes: bool,
    ) -> Result<bool> {
        if let Some(channel) = channel {
            let first_close = closes && channel.mark_closed_by_us();
            if channel.closed_by_us() && !first_close {
                return Ok(false);
            }
        }
        self.sent.fetch_add(payload.len() as u64, Ordering::Relaxed);
        self.writer.queue_message(payload)?;
        Ok(true)
    }

    /// Waits while our key exchange has the gate shut; the gate, locked.
    fn wait_open(&self) -> Result<MutexGuard<'_, Gate>> {
        let mut gate = self.lock();
        while gate.phase == KexPhase::Sending && gate.dead.is_none() {
            gate = self.opened.wait(gate).unwrap_or_else(|e| e.into_inner());
        }
        match &gate.dead {
            Some(why) => Err(Error::Protocol(why.clone())),
            None => Ok(gate),
        }
    }

    /// Sends `payload` from a thread that may wait: at the gate while a
    /// key exchange has it shut, then for the stream. On a `channel` we
    /// have closed it is not sent, and says so; `closes` marks the
    /// channel's CLOSE (sealed only by the first to send it).
    pub fn send_on(
        &self,
        channel: Option<&SendWindow>,
        payload: &[u8],
        closes: bool,
    ) -> Result<()> {
        let queued = self.queue_on(channel, payload, closes);
        self.writer.flush()?;
        queued
    }

    /// As [`Outbound::send_on`], but only sealed: a later
    /// [`Outbound::flush`] (or any other thread's) writes it, so several
    /// messages go out in one write.
    pub fn queue_on(
        &self,
        channel: Option<&SendWindow>,
        payload: &[u8],
        closes: bool,
    ) -> Result<()> {
        let sealed = {
            let mut gate = self.wait_open()?;
            let sealed = self.seal_parts(payload, channel, closes)?;
            self.rekey_if_due(&mut gate)?;
            sealed
        };
        if !sealed {
            return Err(Error::ChannelRefused(
                "more data: the channel is closed".into(),
            ));
        }
        Ok(())
    }

    /// Writes everything sealed so far, waiting for the stream (the
    /// writer's stall limit bounds the wait).
    pub fn flush(&self) -> Result<()> {
        self.writer.flush()?;
        Ok(())
    }

    /// [`Outbound::send_on`] for a message of no channel.
    pub fn send(&self, payload: &[u8]) -> Result<()> {
        self.send_on(None, payload, false)
    }

    /// A reply from the reader thread, which must never wait: sealed now
    /// if the gate is open, else held until our NEWKEYS. Returns whether
    /// it was sealed now.
    pub fn reply(&self, msg: Outgoing) -> Result<bool> {
        let sealed_now = {
            let mut gate = self.lock();
            if let Some(why) = &gate.dead {
                return Err(Error::Protocol(why.clone()));
            }
            if gate.phase == KexPhase::Sending {
                if gate.held.len() >= HELD_REPLIES {
                    return Err(Error::Protocol(format!(
                        "the peer asked for more than {HELD_REPLIES} replies during one key exchange"
                    )));
                }
                gate.held.push(msg);
                false
            } else {
                self.seal(&mut gate, &msg)?;
                self.rekey_if_due(&mut gate)?;
                true
            }
        };
        if sealed_now {
            self.flush_soon()?;
        }
        Ok(sealed_now)
    }

    /// Sends a transport or kex message past the gate, without waiting.
    pub fn send_kex(&self, payload: &[u8]) -> Result<()> {
        self.sent.fetch_add(payload.len() as u64, Ordering::Relaxed);
        self.writer.queue_message(payload)?;
        self.flush_soon()?;
        Ok(())
    }

    /// Sends DISCONNECT and waits (as long as the writer's stall limit
    /// allows) for it to be written, before the caller hangs up.
    pub fn disconnect(&self, payload: &[u8]) -> Result<()> {
        self.writer.queue_message(payload)?;
        self.writer.flush()?;
        Ok(())
    }

    /// Starts a key exchange unless one is under way: sends our KEXINIT and
    /// shuts the gate. Returns whether this call started it.
    pub fn begin_kex(&self) -> Result<bool> {
        let started = self.begin_kex_locked(&mut self.lock())?;
        if started {
            self.flush_soon()?;
        }
        Ok(started)
    }

    /// Starts a rekey from the sending side once what was just sealed
    /// spent the key's budget. The reader would notice only when the next
    /// packet arrives, and a peer that has stopped reading and sending (a
    /// frozen client under a download) never sends one: the kex, and with
    /// it the rekey deadline, would never start.
    fn rekey_if_due(&self, gate: &mut Gate) -> Result<()> {
        // `should_start_kex`, not `need_rekey`: the latter is also true
        // once our reader has read the peer's KEXINIT, which the reader
        // answers itself (a second start here would count the peer's
        // rekey as ours).
        if gate.phase == KexPhase::Idle
            && self
                .writer
                .connection()
                .with(|core| core.should_start_kex())
        {
            log::debug!("starting a rekey: our output spent the key's budget");
            self.begin_kex_locked(gate)?;
            // The KEXINIT goes out now, by the flusher: the caller may only
            // be queueing, and its next message waits at the gate this
            // shut, for an exchange the peer would never see start.
            self.flush_soon()?;
        }
        Ok(())
    }

    fn begin_kex_locked(&self, gate: &mut Gate) -> Result<bool> {
        if gate.phase != KexPhase::Idle {
            return Ok(false);
        }
        let ours = kex::kexinit(self.side, &self.prefs, !gate.sent_first)?;
        self.sent.fetch_add(ours.len() as u64, Ordering::Relaxed);
        self.writer.queue_message(&ours)?;
        if gate.sent_first {
            if let Some(limit) = gate.rekey_deadline {
                // A rekey must finish in time too: a peer that stops
                // answering mid-exchange gets no keepalives (none go out
                // during a kex) and our senders wait at the gate, not on
                // the socket, so nothing else would notice.
                self.writer.connection().start_handshake(limit);
                gate.deadline_running = true;
            }
        }
        gate.sent_first = true;
        gate.our_kexinit = Some(ours);
        gate.phase = KexPhase::Sending;
        Ok(true)
    }

    /// Gives every later key exchange (not the first, which the handshake
    /// deadline covers) `limit` to finish.
    pub fn set_rekey_deadline(&self, limit: Option<Duration>) {
        self.lock().rekey_deadline = limit;
    }

    /// The peer's KEXINIT arrived: sends ours unless it is out already
    /// (either side may have started the exchange), and negotiates. Returns
    /// our KEXINIT, what was agreed, and whether we had started it.
    pub fn on_peer_kexinit(&self, theirs: &[u8]) -> Result<(Vec<u8>, Negotiated, bool)> {
        let (ours, started_by_us) = {
            let mut gate = self.lock();
            if gate.phase == KexPhase::AwaitingPeer {
                return Err(Error::Protocol(
                    "KEXINIT before the key exchange under way finished".into(),
                ));
            }
            let started_by_us = !self.begin_kex_locked(&mut gate)?;
            let ours = gate
                .our_kexinit
                .clone()
                .ok_or_else(|| Error::Protocol("our KEXINIT is missing".into()))?;
            (ours, started_by_us)
        };
        self.flush_soon()?;
        let negotiated = kex::negotiate(self.side, &self.prefs, theirs)?;
        Ok((ours, negotiated, started_by_us))
    }

    /// Payload bytes sent so far.
    pub fn bytes_sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Sends NEWKEYS and switches to `keys` in one step (the packet layer
    /// resets the sequence number under strict kex), seals the replies
    /// held meanwhile right behind it, and opens the gate.
    pub fn send_newkeys(&self, keys: Keys) -> Result<()> {
        {
            let mut gate = self.lock();
            self.writer.queue_newkeys(keys)?;
            for msg in std::mem::take(&mut gate.held) {
                self.seal(&mut gate, &msg)?;
            }
            gate.phase = KexPhase::AwaitingPeer;
        }
        self.opened.notify_all();
        self.flush_soon()?;
        Ok(())
    }

    /// The peer's NEWKEYS arrived: the exchange is over.
    pub fn kex_finished(&self) {
        let mut gate = self.lock();
        gate.phase = KexPhase::Idle;
        gate.our_kexinit = None;
        if std::mem::take(&mut gate.deadline_running) {
            self.writer.connection().complete_handshake();
        }
    }

    /// Marks the connection dead so no sender waits forever.
    pub fn fail(&self, why: &str) {
        self.flusher.stop();
        let mut gate = self.lock();
        if gate.dead.is_none() {
            gate.dead = Some(why.to_owned());
        }
        gate.held.clear();
        drop(gate);
        self.opened.notify_all();
        self.writer.connection().close();
    }
}

impl Drop for Outbound {
    fn drop(&mut self) {
        self.flusher.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Msg;
    use ssh_packetizer::msg;
    use ssh_packetizer::{
        CipherAlgorithm, Direction, KdfHash, KeyDerivation, MacAlgorithm, Packetizer,
    };
    use std::net::TcpListener;

    fn keys() -> (Keys, Keys) {
        let kdf = KeyDerivation::from_encoded_secret(
            KdfHash::Sha256,
            &KeyDerivation::encode_mpint(&[7; 32]),
            &[1; 32],
            &[1; 32],
        );
        let (c, m) = (CipherAlgorithm::Aes128Ctr, MacAlgorithm::HmacSha256);
        (
            kdf.keys(Direction::ClientToServer, c, m).unwrap(),
            kdf.keys(Direction::ClientToServer, c, m).unwrap(),
        )
    }

    #[test]
    fn replies_held_during_our_kex_go_out_right_behind_newkeys_and_are_bounded() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let ours = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let mut peer = Packetizer::tcp(listener.accept().unwrap().0).unwrap();
        let (_reader, writer) = Packetizer::tcp(ours).unwrap().split().unwrap();
        let out = Arc::new(Outbound::new(writer, Preferences::default(), Side::Client));
        assert!(
            out.reply(Outgoing::plain(vec![2, 0xff])).unwrap(),
            "sealed at once"
        );
        assert!(out.begin_kex().unwrap());
        for i in 0..HELD_REPLIES {
            assert!(
                !out.reply(Outgoing::plain(vec![2, i as u8])).unwrap(),
                "held"
            );
        }
        let err = out.reply(Outgoing::plain(vec![2])).unwrap_err();
        assert!(err.to_string().contains("more than 64 replies"), "{err}");
        // A sender waiting at the gate goes after the held replies, however
        // soon it wakes.
        let waiting = {
            let out = out.clone();
            std::thread::spawn(move || out.send(&[2, 0xee]))
        };
        std::thread::sleep(std::time::Duration::from_millis(100));
        let (ours_keys, theirs_keys) = keys();
        out.send_newkeys(ours_keys).unwrap();
        waiting.join().unwrap().unwrap();
        assert_eq!(peer.read_message().unwrap().payload(), [2, 0xff]);
        assert_eq!(
            peer.read_message().unwrap().msg_type(),
            ssh_packetizer::msg::KEXINIT
        );
        assert_eq!(
            peer.read_message().unwrap().msg_type(),
            ssh_packetizer::msg::NEWKEYS
        );
        peer.set_inbound_cipher(theirs_keys).unwrap();
        for i in 0..HELD_REPLIES {
            assert_eq!(peer.read_message().unwrap().payload(), [2, i as u8]);
        }
        assert_eq!(peer.read_message().unwrap().payload(), [2, 0xee]);
    }

    /// An `Outbound` (server side) and its reader past the initial
    /// exchange, both ways, with the peer that saw it; the flusher is idle.
    fn keyed_server() -> (
        ssh_packetizer::PacketReader<TcpStream>,
        Outbound,
        Packetizer<TcpStream>,
    ) {
        keyed_server_with(ssh_packetizer::RekeyLimits::default())
    }

    /// As [`keyed_server`], our side configured with `limits`.
    fn keyed_server_with(
        limits: ssh_packetizer::RekeyLimits,
    ) -> (
        ssh_packetizer::PacketReader<TcpStream>,
        Outbound,
        Packetizer<TcpStream>,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let ours = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let mut peer = Packetizer::tcp(listener.accept().unwrap().0).unwrap();
        // What never arrives fails the test instead of hanging it.
        peer.start_handshake(std::time::Duration::from_secs(10));
        let config = ssh_packetizer::Config::server().rekey_limits(limits);
        let (mut reader, writer) = Packetizer::tcp_with_config(ours, config)
            .unwrap()
            .split()
            .unwrap();
        let out = Outbound::new(writer, Preferences::default(), Side::Server);
        // The initial exchange, both ways (no budget counts before it).
        assert!(out.begin_kex().unwrap());
        let (ours_keys, theirs_keys) = keys();
        out.send_newkeys(ours_keys).unwrap();
        let (peer_out, peer_in) = keys();
        peer.send_newkeys(peer_out).unwrap();
        assert_eq!(reader.read_message().unwrap().msg_type(), msg::NEWKEYS);
        reader.set_inbound_cipher(peer_in).unwrap();
        out.kex_finished();
        assert_eq!(peer.read_message().unwrap().msg_type(), msg::KEXINIT);
        assert_eq!(peer.read_message().unwrap().msg_type(), msg::NEWKEYS);
        peer.set_inbound_cipher(theirs_keys).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(50));
        (reader, out, peer)
    }

    #[test]
    fn a_send_that_spends_the_byte_budget_starts_the_rekey_with_no_read() {
        let (_reader, out, mut peer) = keyed_server_with(ssh_packetizer::RekeyLimits {
            max_bytes: Some(4096),
            ..Default::default()
        });
        // A download spends the budget while the peer sends nothing: our
        // reader reads nothing, yet the rekey starts, and its KEXINIT goes
        // out though the sender only queued (it batches its writes).
        out.queue_on(None, &[94; 8000], false).unwrap();
        assert!(
            !out.reply(Outgoing::plain(vec![2, 0xaa])).unwrap(),
            "the gate is shut: a kex is under way"
        );
        assert_eq!(peer.read_message().unwrap().msg_type(), 94);
        assert_eq!(peer.read_message().unwrap().msg_type(), msg::KEXINIT);
    }

    #[test]
    fn a_send_after_the_peers_kexinit_was_read_leaves_the_answer_to_the_reader() {
        let (mut reader, out, mut peer) = keyed_server();
        // The peer starts a rekey; our reader has read its KEXINIT (the
        // packet layer now wants a rekey) but not yet handed it on.
        let theirs = kex::kexinit(Side::Client, &Preferences::default(), false).unwrap();
        peer.send_message(&theirs).unwrap();
        assert_eq!(reader.read_message().unwrap().payload(), theirs);
        assert!(out.writer().connection().need_rekey());
        assert!(!out.writer().connection().with(|c| c.should_start_kex()));
        // A sender at this moment must not start an exchange of its own.
        out.send(&[2, 0xbb]).unwrap();
        assert_eq!(peer.read_message().unwrap().payload(), [2, 0xbb]);
        let (ours, _, started_by_us) = out.on_peer_kexinit(&theirs).unwrap();
        assert!(!started_by_us, "the peer started this rekey");
        assert_eq!(peer.read_message().unwrap().payload(), ours);
    }

    #[test]
    fn nothing_is_sealed_on_a_channel_after_our_close() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let ours = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let mut peer = Packetizer::tcp(listener.accept().unwrap().0).unwrap();
        let (_reader, writer) = Packetizer::tcp(ours).unwrap().split().unwrap();
        let out = Outbound::new(writer, Preferences::default(), Side::Server);
        let window = Arc::new(SendWindow::default());
        window.open(9, 1000, 1000);
        let close = Msg::new(ssh_packetizer::msg::CHANNEL_CLOSE).u32(9).finish();
        let eof = Msg::new(ssh_packetizer::msg::CHANNEL_EOF).u32(9).finish();
        out.send_on(Some(&window), &eof, false).unwrap();
        assert!(out
            .reply(Outgoing::close(window.clone(), close.clone()))
            .unwrap());
        // A second CLOSE, data and a reply after it are not sealed.
        assert!(out.send_on(Some(&window), &close, true).is_err());
        assert!(out.send_on(Some(&window), &eof, false).is_err());
        out.reply(Outgoing::on(window.clone(), eof.clone()))
            .unwrap();
        out.send(&[2, 1]).unwrap();
        assert_eq!(peer.read_message().unwrap().payload(), eof);
        assert_eq!(peer.read_message().unwrap().payload(), close);
        assert_eq!(peer.read_message().unwrap().payload(), [2, 1]);
    }
}
