//! The reader thread: reads every packet, hands the transport's to the
//! shared [`Transport`](crate::transport::Transport) (key exchanges, the
//! first and every rekey, whoever starts it), feeds channel data to its
//! sinks, and passes the rest of the connection layer to the main thread.

use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use ssh_packetizer::PacketReader;

use crate::client::channel;
use crate::client::link::{Link, Outgoing};
use crate::error::{Error, Result};
use crate::msg;
use crate::transport::{self, algorithms::Agreed, Handled};
use crate::wire::{Msg, Reader};

/// What the reader thread tells the main thread.
#[derive(Debug)]
pub enum Notice {
    /// A key exchange finished.
    KexDone,
    /// A connection-layer message for the main thread.
    Message(Vec<u8>),
    /// The connection failed; nothing follows.
    Failed(Error),
}

/// Facts about the connection for the user and the tests.
#[derive(Clone, Debug, Default)]
pub struct Info {
    /// The server's identification line.
    pub server_id: String,
    /// The host key's SHA256 fingerprint.
    pub host_key_fingerprint: String,
    /// The algorithms of the latest exchange.
    pub negotiated: Option<Agreed>,
    /// Whether strict kex is in force.
    pub strict_kex: bool,
    /// The crypto provider the packet layer runs the keys on.
    pub provider: &'static str,
    /// Key exchanges completed, the first included.
    pub kex_count: u32,
    /// Rekeys the server started.
    pub server_rekeys: u32,
    /// Rekeys we started.
    pub client_rekeys: u32,
    /// The first exchange hash, which authentication signs.
    pub session_id: Vec<u8>,
    /// The known_hosts file the host key was just recorded in, if the
    /// host was new.
    pub host_key_recorded: Option<std::path::PathBuf>,
}

/// How many events may wait for the main thread.
pub(crate) const EVENT_QUEUE: usize = 16;

/// The reader thread's end of the queue to the main thread: at most
/// [`EVENT_QUEUE`] events wait (the count says how many), and the channel
/// holds one more, so the final failure always fits.
pub(crate) struct EventQueue {
    pub(crate) sender: SyncSender<Notice>,
    pub(crate) queued: Arc<AtomicUsize>,
}

impl EventQueue {
    /// Both ends of a new queue; the main thread decrements the count as
    /// it takes each event.
    pub(crate) fn new() -> (EventQueue, Receiver<Notice>, Arc<AtomicUsize>) {
        let (sender, receiver) = sync_channel(EVENT_QUEUE + 1);
        let queued = Arc::new(AtomicUsize::new(0));
        let queue = EventQueue {
            sender,
            queued: queued.clone(),
        };
        (queue, receiver, queued)
    }
}

/// The reader thread's state.
pub(crate) struct ReaderThread {
    pub(crate) reader: PacketReader<TcpStream>,
    pub(crate) out: Arc<Link>,
    pub(crate) events: EventQueue,
    pub(crate) channels: Arc<channel::Channels>,
    pub(crate) info: Arc<Mutex<Info>>,
    /// The first exchange is done (channel traffic may flow).
    pub(crate) initial_done: bool,
    /// Set when we disconnect on purpose, so the EOF that follows is quiet.
    pub(crate) closing: Arc<std::sync::atomic::AtomicBool>,
}

impl ReaderThread {
    /// The thread body: runs until the connection ends.
    pub fn run(mut self) {
        let result = self.run_loop();
        let quiet = self.closing.load(Ordering::SeqCst);
        let err = match result {
            Ok(()) => Error::PeerClosed,
            Err(e) => e,
        };
        let why = err.to_string();
        if !quiet {
            log::debug!("reader thread ends: {why}");
        }
        self.out.fail();
        self.channels.fail(&why);
        // The queue always has room for this one (see `EventQueue`).
        let _ = self.events.sender.try_send(Notice::Failed(err));
    }

    fn run_loop(&mut self) -> Result<()> {
        loop {
            let packet = match self.reader.read_message() {
                Ok(packet) => packet,
                Err(ssh_packetizer::Error::NeedRekey) => {
                    self.start_rekey()?;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let (msg_type, seqno) = (packet.msg_type(), packet.seqno());
            match msg_type {
                // Channel traffic straight from the reader's buffer (the
                // bulk of a session; the transport has no part in it once
                // the first exchange is done, which it checks for the rest).
                msg::CHANNEL_WINDOW_ADJUST
                | msg::CHANNEL_DATA
                | msg::CHANNEL_EXTENDED_DATA
                | msg::CHANNEL_EOF
                | msg::CHANNEL_CLOSE
                | msg::CHANNEL_REQUEST
                    if self.initial_done =>
                {
                    if let Some(reply) = self.channels.on_message(packet.payload())? {
                        self.out.reply(reply)?;
                    }
                }
                _ => {
                    // The transport needs the reader too (key switches):
                    // these few messages are copied out of its buffer.
                    let payload = packet.payload().to_vec();
                    let (handled, events) = self.out.handle(&mut self.reader, &payload, seqno)?;
                    for event in events {
                        self.on_transport_event(event)?;
                    }
                    if handled == Handled::Connection {
                        self.on_connection_message(&payload, seqno)?;
                    }
                }
            }
            if self
                .reader
                .connection()
                .with(|core| core.should_start_kex())
            {
                self.start_rekey()?;
            }
        }
    }

    /// A connection-layer message that is not channel traffic.
    fn on_connection_message(&mut self, payload: &[u8], seqno: u32) -> Result<()> {
        match payload[0] {
            msg::CHANNEL_WINDOW_ADJUST
            | msg::CHANNEL_DATA
            | msg::CHANNEL_EXTENDED_DATA
            | msg::CHANNEL_EOF
            | msg::CHANNEL_CLOSE
            | msg::CHANNEL_REQUEST => {
                if let Some(reply) = self.channels.on_message(payload)? {
                    self.out.reply(reply)?;
                }
            }
            msg::GLOBAL_REQUEST => {
                let mut r = Reader::body(payload);
                r.string()?;
                if r.bool()? {
                    self.out
                        .reply(Outgoing::plain(vec![msg::REQUEST_FAILURE]))?;
                }
            }
            msg::USERAUTH_SUCCESS => {
                self.reader.connection().with(|core| {
                    core.start_delayed_compression();
                    core.complete_handshake();
                });
                self.to_main(Notice::Message(payload.to_vec()))?;
            }
            // What the main thread waits for: it asks, then reads one
            // answer.
            msg::SERVICE_ACCEPT
            | msg::USERAUTH_FAILURE
            | msg::USERAUTH_PK_OK
            | msg::CHANNEL_OPEN_CONFIRMATION
            | msg::CHANNEL_OPEN_FAILURE
            | msg::CHANNEL_SUCCESS
            | msg::CHANNEL_FAILURE => {
                self.to_main(Notice::Message(payload.to_vec()))?;
            }
            // Nothing to do: we never send global requests, and a banner
            // changes nothing here.
            msg::REQUEST_SUCCESS | msg::REQUEST_FAILURE | msg::USERAUTH_BANNER => {}
            msg::CHANNEL_OPEN => {
                // RFC 4254 §5.1: the server may not open channels to us
                // (no forwarding here); 1 is "administratively
                // prohibited".
                let mut r = Reader::body(payload);
                r.string()?;
                let sender = r.u32()?;
                let refusal = Msg::new(msg::CHANNEL_OPEN_FAILURE)
                    .u32(sender)
                    .u32(1)
                    .string("minissh accepts no channels")
                    .string("")
                    .finish();
                self.out.reply(Outgoing::plain(refusal))?;
            }
            _ => {
                // RFC 4253 §11.4: anything else is unimplemented.
                let reply = Msg::new(msg::UNIMPLEMENTED).u32(seqno).finish();
                self.out.reply(Outgoing::plain(reply))?;
            }
        }
        Ok(())
    }

    /// Records a finished exchange; the main thread waits for the first.
    fn on_transport_event(&mut self, event: transport::KexDone) -> Result<()> {
        let initial = event.initial;
        let provider = self
            .reader
            .connection()
            .with(|core| core.crypto_provider().name());
        self.out.with_transport(|t| {
            let mut info = self.info_mut();
            let stats = t.stats();
            info.kex_count = stats.kex_count;
            info.client_rekeys = stats.rekeys_by_us;
            info.server_rekeys = stats.rekeys_by_peer;
            info.negotiated = t.agreed();
            info.strict_kex = t.is_strict_kex();
            info.provider = provider;
            if initial {
                info.session_id = t.session_id().unwrap_or_default().to_vec();
                if let Some(key) = t.host_key() {
                    info.host_key_fingerprint = key.fingerprint();
                }
            }
        });
        if initial {
            self.initial_done = true;
            // Only the first exchange is waited for; later ones are no
            // news to the main thread, and a long session has many.
            self.to_main(Notice::KexDone)?;
        }
        Ok(())
    }

    /// Passes an event to the main thread. The queue is bounded: the main
    /// thread has at most one question outstanding, so a full queue means
    /// the server sent answers nobody asked for, and a hostile server
    /// cannot grow our memory that way.
    fn to_main(&self, event: Notice) -> Result<()> {
        if self.events.queued.load(Ordering::SeqCst) >= EVENT_QUEUE {
            return Err(Error::Protocol(format!(
                "the server sent more than {EVENT_QUEUE} answers nobody asked for"
            )));
        }
        self.events.queued.fetch_add(1, Ordering::SeqCst);
        match self.events.sender.try_send(event) {
            Ok(()) => Ok(()),
            // Not reached: the queue has room for one more than the
            // count allows, kept for the failure.
            Err(TrySendError::Full(_)) => Err(Error::Protocol("the event queue is full".into())),
            // A main thread that went away is no reason to fail the
            // reader; the connection ends when the session is dropped.
            Err(TrySendError::Disconnected(_)) => Ok(()),
        }
    }

    fn start_rekey(&mut self) -> Result<()> {
        if self.out.start_kex()? {
            log::debug!("starting a rekey");
        }
        Ok(())
    }

    fn info_mut(&self) -> std::sync::MutexGuard<'_, Info> {
        self.info.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// SSH_MSG_DISCONNECT "by application", sent when we are done.
pub fn disconnect_message() -> Vec<u8> {
    Msg::new(msg::DISCONNECT)
        .u32(11)
        .string("bye")
        .string("")
        .finish()
}
