//! The transport on threads: one [`Transport`] shared by the thread that
//! reads and the threads that send, over the crate's split halves.
//!
//! Nothing here gates or holds messages: between our KEXINIT and our
//! NEWKEYS the packet layer holds connection messages itself and seals
//! them right behind NEWKEYS. Senders stop short of filling that hold
//! ([`SENDER_HOLD_BUDGET`]) and wait for our NEWKEYS, so the reading
//! thread's replies always fit; the reading thread never waits on it (a
//! hold full of replies fails instead), since the exchange that empties it
//! needs that thread to read.
//!
//! Messages are only sealed under the lock, never written: nobody waits
//! for the socket while holding it. Afterwards the reading thread writes
//! only if no sender is writing (`try_flush`; a busy sender writes what it
//! sealed too), and a sender writes when it flushes. Two ends whose
//! readers both waited to write could each wait for the other to read.
//!
//! Every message that belongs to a channel is sealed only while we have
//! not sealed that channel's CLOSE ([`SendWindow`]'s flag, checked and set
//! under the transport's lock): nothing follows our CLOSE (RFC 4254 §5.3).

use std::net::TcpStream;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use ssh_packetizer::{PacketReader, PacketWriter};

use crate::client::send_window::SendWindow;
use crate::error::{Error, Result};

/// Held payload past which senders wait during our key exchange, leaving
/// the rest of the packet layer's hold (256 KiB) to the reading thread's
/// replies (window adjusts, a CLOSE).
pub const SENDER_HOLD_BUDGET: usize = 64 * 1024;
use crate::transport::{Handled, InboundChange, KexDone, Transmit, Transport};

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

/// The transport and what goes with it: what the threads share.
struct State {
    transport: Transport,
    /// How long a rekey may take, once set.
    rekey_deadline: Option<Duration>,
    /// A rekey's deadline is running.
    deadline_running: bool,
    /// Events for the reading thread, taken by [`Link::handle`].
    events: Vec<KexDone>,
}

/// The writer and the transport, shared by the reading thread and every
/// sending thread.
pub struct Link {
    writer: PacketWriter<TcpStream>,
    shared: Mutex<State>,
    /// Signalled when our NEWKEYS is sealed: the packet layer's hold has
    /// room again.
    newkeys_sent: Condvar,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link").finish_non_exhaustive()
    }
}

impl Link {
    /// Wraps the writing half of a connection and its transport.
    pub fn new(writer: PacketWriter<TcpStream>, transport: Transport) -> Link {
        Link {
            writer,
            shared: Mutex::new(State {
                transport,
                rekey_deadline: None,
                deadline_running: false,
                events: Vec::new(),
            }),
            newkeys_sent: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere never leaves the state half-updated: recover it.
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The writing half (its core, in tests).
    #[cfg(test)]
    pub fn writer(&self) -> &PacketWriter<TcpStream> {
        &self.writer
    }

    /// Reads the transport (its counts, what was agreed).
    pub fn with_transport<T>(&self, f: impl FnOnce(&Transport) -> T) -> T {
        f(&self.lock().transport)
    }

    /// Seals what the transport has to send, in order (under the lock, so
    /// nothing else lands between them), and starts or stops a rekey's
    /// deadline.
    fn transmit(&self, shared: &mut State) -> Result<()> {
        let was_running = shared.deadline_running;
        while let Some(transmit) = shared.transport.poll_transmit() {
            match transmit {
                Transmit::Message(m) => {
                    self.writer
                        .connection()
                        .with(|core| core.send_message(&m))?;
                }
                Transmit::NewKeys(keys) => {
                    self.writer.queue_newkeys(keys)?;
                    self.newkeys_sent.notify_all();
                }
            }
        }
        let t = &shared.transport;
        if t.is_initial_kex_done() && t.is_kex_in_progress() && !was_running {
            if let Some(limit) = shared.rekey_deadline {
                // A rekey must finish in time too: a peer that stops
                // answering mid-exchange gets no keepalives (none go out
                // during a kex), and senders wait on the packet layer's
                // hold, not on the socket, so nothing else would notice.
                self.writer.connection().start_handshake(limit);
                shared.deadline_running = true;
            }
        }
        Ok(())
    }

    /// Starts a key exchange unless one is under way; returns whether this
    /// call started it. Never waits for the socket.
    pub fn start_kex(&self) -> Result<bool> {
        let started = {
            let mut shared = self.lock();
            let started = shared.transport.start_kex()?;
            self.transmit(&mut shared)?;
            started
        };
        self.writer.try_flush()?;
        Ok(started)
    }

    /// Hands one message read by `reader` to the transport and does what it
    /// asks (sends, key switches). Returns whose the message is, and the
    /// transport's events. Never waits for the socket.
    pub fn handle(
        &self,
        reader: &mut PacketReader<TcpStream>,
        payload: &[u8],
        seqno: u32,
    ) -> Result<(Handled, Vec<KexDone>)> {
        let (handled, events) = {
            let mut shared = self.lock();
            let handled = shared.transport.handle(payload, seqno)?;
            self.transmit(&mut shared)?;
            while let Some(change) = shared.transport.poll_inbound() {
                match change {
                    InboundChange::StrictKex(on) => {
                        reader.connection().with(|core| core.set_strict_kex(on))
                    }
                    InboundChange::Keys(keys) => reader.set_inbound_cipher(keys)?,
                }
            }
            while let Some(event) = shared.transport.poll_kex_done() {
                if !event.initial && std::mem::take(&mut shared.deadline_running) {
                    self.writer.connection().complete_handshake();
                }
                shared.events.push(event);
            }
            (handled, std::mem::take(&mut shared.events))
        };
        self.writer.try_flush()?;
        Ok((handled, events))
    }

    /// Gives every later key exchange (not the first, which the handshake
    /// deadline covers) `limit` to finish.
    pub fn set_rekey_deadline(&self, limit: Option<Duration>) {
        self.lock().rekey_deadline = limit;
    }

    /// Seals one message; returns false if it was for a channel we have
    /// closed. The channel's flag is checked and the message sealed under
    /// one lock, so nothing lands behind our CLOSE. `wait`: a sender waits
    /// while the packet layer's hold is full (until our NEWKEYS, which the
    /// reading thread sends: the wait lets go of the lock); the reading
    /// thread may not wait, and fails instead.
    fn seal(
        &self,
        payload: &[u8],
        channel: Option<&SendWindow>,
        closes: bool,
        then_compress: bool,
        wait: bool,
    ) -> Result<bool> {
        let mut shared = self.lock();
        loop {
            // Checked again after each wait: another thread may have
            // sealed the CLOSE meanwhile.
            if channel.is_some_and(|c| c.closed_by_us()) {
                return Ok(false);
            }
            let sealed = self.writer.connection().with(|core| {
                if wait && core.is_kex_in_progress() && core.held_bytes() >= SENDER_HOLD_BUDGET {
                    return Ok(false);
                }
                core.send_message(payload).map(|_| true)
            });
            match sealed {
                Ok(true) => break,
                Ok(false) | Err(ssh_packetizer::Error::KexHoldFull { .. }) if wait => {
                    // Woken when NEWKEYS goes out; the tick re-checks a
                    // connection that failed meanwhile.
                    shared = self
                        .newkeys_sent
                        .wait_timeout(shared, Duration::from_millis(100))
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                    self.writer.connection().with(|core| core.check())?;
                }
                Err(ssh_packetizer::Error::KexHoldFull { held, .. }) => {
                    return Err(Error::Protocol(format!(
                        "the peer asked for more replies than fit in one key exchange's hold ({held} bytes)"
                    )));
                }
                Ok(false) => unreachable!("only a sender is told to wait"),
                Err(e) => return Err(e.into()),
            }
        }
        if let Some(channel) = channel {
            if closes {
                channel.mark_closed_by_us();
            }
        }
        if then_compress {
            self.writer
                .connection()
                .with(|core| core.start_delayed_compression());
        }
        if self.rekey_if_due(&mut shared)? {
            // Our KEXINIT goes out now, whatever the caller does next (it
            // may only be queueing).
            drop(shared);
            self.writer.try_flush()?;
        }
        Ok(true)
    }

    /// Starts a rekey from the sending side once what was just sealed
    /// spent the key's budget. The reader would notice only when the next
    /// packet arrives, and a peer that has stopped reading and sending (a
    /// frozen client under a download) never sends one: the kex, and with
    /// it the rekey deadline, would never start.
    fn rekey_if_due(&self, shared: &mut State) -> Result<bool> {
        // `should_start_kex`, not `need_rekey`: the latter is also true
        // once the reader has read the peer's KEXINIT, which the reader
        // answers itself.
        if self
            .writer
            .connection()
            .with(|core| core.should_start_kex())
            && shared.transport.start_kex()?
        {
            log::debug!("starting a rekey: our output spent the key's budget");
            self.transmit(shared)?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Sends `payload` from a thread that may wait: while the packet
    /// layer's hold is full, then for the stream. On a `channel` we have
    /// closed it is not sent, and says so; `closes` marks the channel's
    /// CLOSE (sealed only by the first to send it).
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

    /// As [`Link::send_on`], but only sealed: a later
    /// [`Link::flush`] (or any other thread's) writes it, so several
    /// messages go out in one write.
    pub fn queue_on(
        &self,
        channel: Option<&SendWindow>,
        payload: &[u8],
        closes: bool,
    ) -> Result<()> {
        if !self.seal(payload, channel, closes, false, true)? {
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

    /// [`Link::send_on`] for a message of no channel.
    pub fn send(&self, payload: &[u8]) -> Result<()> {
        self.send_on(None, payload, false)
    }

    /// A reply from the reading thread, which must never wait: sealed now
    /// (held by the packet layer during our key exchange) and written if
    /// no sender is writing. Returns whether it was sealed (not for a
    /// channel we closed).
    pub fn reply(&self, msg: Outgoing) -> Result<bool> {
        let channel = msg.channel.as_deref();
        let sealed = self.seal(&msg.payload, channel, msg.closes, msg.then_compress, false)?;
        self.writer.try_flush()?;
        Ok(sealed)
    }

    /// Sends DISCONNECT and waits (as long as the writer's stall limit
    /// allows) for it to be written, before the caller hangs up.
    pub fn disconnect(&self, payload: &[u8]) -> Result<()> {
        self.writer.queue_message(payload)?;
        self.writer.flush()?;
        Ok(())
    }

    /// Ends the connection so no sender waits forever.
    pub fn fail(&self) {
        self.writer.connection().close();
        self.newkeys_sent.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;
    use crate::msg;
    use crate::transport::{HostKeys, Transport};
    use crate::wire::Msg;
    use crate::Preferences;
    use ssh_packetizer::Packetizer;
    use std::net::TcpListener;

    fn server_transport() -> Transport {
        Transport::new(
            HostKeys::Sign(Arc::new(Identity::generate().unwrap())),
            Preferences::default(),
            b"SSH-2.0-peer".to_vec(),
            b"SSH-2.0-us".to_vec(),
        )
    }

    /// The peer: a client transport over a plain Packetizer, driven on the
    /// test's thread.
    struct Peer {
        transport: Transport,
        p: Packetizer<TcpStream>,
    }

    impl Peer {
        fn apply(&mut self) {
            while let Some(t) = self.transport.poll_transmit() {
                match t {
                    Transmit::Message(m) => self.p.send_message(&m).map(|_| ()).unwrap(),
                    Transmit::NewKeys(k) => self.p.send_newkeys(k).map(|_| ()).unwrap(),
                }
            }
            while let Some(change) = self.transport.poll_inbound() {
                match change {
                    InboundChange::StrictKex(on) => self.p.connection_mut().set_strict_kex(on),
                    InboundChange::Keys(k) => self.p.set_inbound_cipher(k).unwrap(),
                }
            }
        }

        /// Reads one message; the connection layer's come back.
        fn step(&mut self) -> Option<Vec<u8>> {
            let packet = self.p.read_message().unwrap();
            let (payload, seqno) = (packet.payload().to_vec(), packet.seqno());
            let handled = self.transport.handle(&payload, seqno).unwrap();
            self.apply();
            (handled == Handled::Connection).then_some(payload)
        }
    }

    /// Reads one message on our side and hands it to the transport.
    fn our_step(reader: &mut PacketReader<TcpStream>, out: &Link) -> Option<Vec<u8>> {
        let packet = reader.read_message().unwrap();
        let (payload, seqno) = (packet.payload().to_vec(), packet.seqno());
        let (handled, _) = out.handle(reader, &payload, seqno).unwrap();
        (handled == Handled::Connection).then_some(payload)
    }

    /// Our side (a server `Link` configured with `limits`) and its
    /// reader past the initial exchange, with the peer that saw it.
    fn keyed_server_with(
        limits: ssh_packetizer::RekeyLimits,
    ) -> (PacketReader<TcpStream>, Link, Peer) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let ours = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let mut p = Packetizer::tcp(listener.accept().unwrap().0).unwrap();
        // What never arrives fails the test instead of hanging it.
        p.start_handshake(Duration::from_secs(10));
        let transport = Transport::new(
            HostKeys::Verify(Box::new(|_| Ok(()))),
            Preferences::default(),
            b"SSH-2.0-peer".to_vec(),
            b"SSH-2.0-us".to_vec(),
        );
        let mut peer = Peer { transport, p };
        let config = ssh_packetizer::Config::server().rekey_limits(limits);
        let (mut reader, writer) = Packetizer::tcp_with_config(ours, config)
            .unwrap()
            .split()
            .unwrap();
        let out = Link::new(writer, server_transport());
        assert!(out.start_kex().unwrap());
        peer.transport.start_kex().unwrap();
        peer.apply();
        while !peer.transport.is_initial_kex_done()
            || !out.with_transport(|t| t.is_initial_kex_done())
        {
            if !out.with_transport(|t| t.is_initial_kex_done()) {
                assert_eq!(our_step(&mut reader, &out), None);
            }
            if !peer.transport.is_initial_kex_done() {
                assert_eq!(peer.step(), None);
            }
        }
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
        assert!(out.with_transport(|t| t.is_kex_in_progress()));
        assert_eq!(peer.step(), Some(vec![94; 8000]));
        assert_eq!(peer.p.read_message().unwrap().msg_type(), msg::KEXINIT);
    }

    #[test]
    fn a_send_after_the_peers_kexinit_was_read_leaves_the_answer_to_the_reader() {
        let (mut reader, out, mut peer) = keyed_server_with(Default::default());
        // The peer starts a rekey; our reader has read its KEXINIT (the
        // packet layer now wants a rekey) but not yet handed it on.
        assert!(peer.transport.start_kex().unwrap());
        peer.apply();
        let packet = reader.read_message().unwrap();
        let (theirs, seqno) = (packet.payload().to_vec(), packet.seqno());
        assert!(out.writer().connection().need_rekey());
        assert!(!out.writer().connection().with(|c| c.should_start_kex()));
        // A sender at this moment must not start an exchange of its own.
        out.send(&[94, 0xbb]).unwrap();
        assert!(!out.with_transport(|t| t.is_kex_in_progress()));
        out.handle(&mut reader, &theirs, seqno).unwrap();
        assert_eq!(out.with_transport(|t| t.stats().rekeys_by_peer), 1);
        assert_eq!(out.with_transport(|t| t.stats().rekeys_by_us), 0);
        assert_eq!(peer.step(), Some(vec![94, 0xbb]));
    }

    #[test]
    fn a_sender_waits_while_the_hold_is_full_and_goes_after_newkeys() {
        let (mut reader, out, mut peer) = keyed_server_with(Default::default());
        let out = Arc::new(out);
        // Our rekey: KEXINIT is out, so connection messages are held.
        assert!(out.start_kex().unwrap());
        let big = vec![94u8; 200_000];
        out.queue_on(None, &big, false).unwrap();
        // The hold has no room for a second: this sender waits.
        let waiting = {
            let (out, big) = (out.clone(), big.clone());
            std::thread::spawn(move || out.send(&big))
        };
        std::thread::sleep(Duration::from_millis(100));
        assert!(!waiting.is_finished(), "waits for the hold");
        // A reply from the reading thread fails rather than wait.
        let err = out.reply(Outgoing::plain(vec![94; 100_000])).unwrap_err();
        assert!(err.to_string().contains("hold"), "{err}");
        // The exchange runs; our NEWKEYS lets both go, in order.
        assert_eq!(peer.step(), None); // our KEXINIT
        assert_eq!(our_step(&mut reader, &out), None); // the peer's
        assert_eq!(our_step(&mut reader, &out), None); // its ECDH_INIT
        assert_eq!(peer.step(), None); // ECDH_REPLY
        assert_eq!(peer.step(), None); // NEWKEYS
        assert_eq!(peer.step(), Some(big.clone()));
        assert_eq!(peer.step(), Some(big));
        waiting.join().unwrap().unwrap();
    }

    #[test]
    fn nothing_is_sealed_on_a_channel_after_our_close() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let ours = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let mut peer = Packetizer::tcp(listener.accept().unwrap().0).unwrap();
        let (_reader, writer) = Packetizer::tcp(ours).unwrap().split().unwrap();
        let out = Link::new(writer, server_transport());
        let window = Arc::new(SendWindow::default());
        window.open(9, 1000, 1000);
        let close = Msg::new(msg::CHANNEL_CLOSE).u32(9).finish();
        let eof = Msg::new(msg::CHANNEL_EOF).u32(9).finish();
        out.send_on(Some(&window), &eof, false).unwrap();
        assert!(out
            .reply(Outgoing::close(window.clone(), close.clone()))
            .unwrap());
        // A second CLOSE, data and a reply after it are not sealed.
        assert!(out.send_on(Some(&window), &close, true).is_err());
        assert!(out.send_on(Some(&window), &eof, false).is_err());
        assert!(!out
            .reply(Outgoing::on(window.clone(), eof.clone()))
            .unwrap());
        out.send(&[2, 1]).unwrap();
        assert_eq!(peer.read_message().unwrap().payload(), eof);
        assert_eq!(peer.read_message().unwrap().payload(), close);
        assert_eq!(peer.read_message().unwrap().payload(), [2, 1]);
    }
}
