//! The reader thread: reads every packet, runs key exchanges (the first one
//! and every rekey, whoever starts it), feeds channel data to its sinks, and
//! passes the rest of the connection layer to the main thread.

use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use ssh_packetizer::PacketReader;
use ssh_packetizer::{CompressionAlgorithm, Keys};

use crate::channel;
use crate::error::{Error, Result};
use crate::hostkey::{HostKey, HostKeyCheck, Verdict};
use crate::kex::{self, check_first_packet, Ephemeral, Negotiated, Preferences, Transcript};
use crate::msg;
use crate::outbound::{Outbound, Outgoing};
use crate::wire::{Msg, Reader};

/// What the reader thread tells the main thread.
#[derive(Debug)]
pub enum Event {
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
    pub negotiated: Option<Negotiated>,
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

pub(crate) enum Phase {
    Idle,
    /// Server KEXINIT received, our ECDH_INIT sent.
    AwaitReply {
        ours: Vec<u8>,
        theirs: Vec<u8>,
        negotiated: Negotiated,
        ephemeral: Ephemeral,
    },
    /// Our NEWKEYS sent; the server's switches our inbound keys.
    AwaitNewKeys {
        keys: Keys,
        negotiated: Negotiated,
    },
}

/// How many events may wait for the main thread.
pub(crate) const EVENT_QUEUE: usize = 16;

/// The reader thread's end of the queue to the main thread: at most
/// [`EVENT_QUEUE`] events wait (the count says how many), and the channel
/// holds one more, so the final failure always fits.
pub(crate) struct EventQueue {
    pub(crate) sender: SyncSender<Event>,
    pub(crate) queued: Arc<AtomicUsize>,
}

impl EventQueue {
    /// Both ends of a new queue; the main thread decrements the count as
    /// it takes each event.
    pub(crate) fn new() -> (EventQueue, Receiver<Event>, Arc<AtomicUsize>) {
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
pub(crate) struct Inbound {
    pub(crate) reader: PacketReader<TcpStream>,
    pub(crate) out: Arc<Outbound>,
    pub(crate) prefs: Preferences,
    pub(crate) check: HostKeyCheck,
    /// The server as the user named it, and its port (for known_hosts).
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) client_id: Vec<u8>,
    pub(crate) server_id: Vec<u8>,
    pub(crate) events: EventQueue,
    pub(crate) channels: Arc<channel::Channels>,
    pub(crate) info: Arc<Mutex<Info>>,
    pub(crate) session_id: Option<Vec<u8>>,
    pub(crate) host_key: Option<HostKey>,
    pub(crate) strict: bool,
    pub(crate) phase: Phase,
    pub(crate) initial_done: bool,
    /// Set when we disconnect on purpose, so the EOF that follows is quiet.
    pub(crate) closing: Arc<std::sync::atomic::AtomicBool>,
}

impl Inbound {
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
        self.out.fail(&why);
        self.channels.fail(&why);
        // The queue always has room for this one (see `EventQueue`).
        let _ = self.events.sender.try_send(Event::Failed(err));
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
            let seqno = packet.seqno();
            // The payload borrows the reader's buffer; a kex step needs the
            // reader itself, so those few messages are copied out.
            let msg_type = packet.msg_type();
            if !self.initial_done {
                check_first_packet(msg_type, seqno)?;
            }
            match msg_type {
                msg::KEXINIT | msg::NEWKEYS | msg::KEX_ECDH_REPLY => {
                    let payload = packet.payload().to_vec();
                    self.on_kex(&payload)?;
                }
                t if msg::is_kex(t) => {
                    return Err(Error::Protocol(format!("unexpected kex message {t}")));
                }
                msg::DISCONNECT => {
                    let mut r = Reader::body(packet.payload());
                    let code = r.u32()?;
                    let description = r.text().unwrap_or_default().to_owned();
                    return Err(Error::Disconnected { code, description });
                }
                msg::IGNORE | msg::DEBUG | msg::UNIMPLEMENTED => {}
                msg::CHANNEL_WINDOW_ADJUST
                | msg::CHANNEL_DATA
                | msg::CHANNEL_EXTENDED_DATA
                | msg::CHANNEL_EOF
                | msg::CHANNEL_CLOSE
                | msg::CHANNEL_REQUEST => {
                    if let Some(reply) = self.channels.on_message(packet.payload())? {
                        self.out.reply(reply)?;
                    }
                }
                msg::GLOBAL_REQUEST => {
                    let mut r = Reader::body(packet.payload());
                    r.string()?;
                    if r.bool()? {
                        self.out
                            .reply(Outgoing::plain(vec![msg::REQUEST_FAILURE]))?;
                    }
                }
                msg::USERAUTH_SUCCESS => {
                    let payload = packet.payload().to_vec();
                    self.start_delayed_compression();
                    self.reader.connection().complete_handshake();
                    self.to_main(Event::Message(payload))?;
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
                    let payload = packet.payload().to_vec();
                    self.to_main(Event::Message(payload))?;
                }
                // Nothing to do: we never send global requests, and a
                // banner or the server's extensions change nothing here.
                msg::REQUEST_SUCCESS
                | msg::REQUEST_FAILURE
                | msg::USERAUTH_BANNER
                | msg::EXT_INFO => {}
                msg::CHANNEL_OPEN => {
                    // RFC 4254 §5.1: the server may not open channels to us
                    // (no forwarding here); 1 is "administratively
                    // prohibited".
                    let mut r = Reader::body(packet.payload());
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
            if self.reader.connection().need_rekey() {
                self.start_rekey()?;
            }
        }
    }

    /// Passes an event to the main thread. The queue is bounded: the main
    /// thread has at most one question outstanding, so a full queue means
    /// the server sent answers nobody asked for, and a hostile server
    /// cannot grow our memory that way.
    fn to_main(&self, event: Event) -> Result<()> {
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
        if self.initial_done && self.out.begin_kex()? {
            log::debug!("starting a rekey");
        }
        Ok(())
    }

    fn info_mut(&self) -> std::sync::MutexGuard<'_, Info> {
        self.info.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn start_delayed_compression(&mut self) {
        let negotiated = self.info_mut().negotiated;
        if let Some(n) = negotiated {
            if n.comp_s2c == CompressionAlgorithm::ZlibOpenSsh {
                self.reader
                    .connection()
                    .with(|core| core.start_delayed_compression());
            }
            if n.comp_c2s == CompressionAlgorithm::ZlibOpenSsh {
                self.out
                    .writer()
                    .connection()
                    .with(|core| core.start_delayed_compression());
            }
        }
    }

    fn on_kex(&mut self, payload: &[u8]) -> Result<()> {
        let phase = std::mem::replace(&mut self.phase, Phase::Idle);
        self.phase = match (phase, payload[0]) {
            (Phase::Idle, msg::KEXINIT) => self.on_server_kexinit(payload)?,
            (
                Phase::AwaitReply {
                    ours,
                    theirs,
                    negotiated,
                    ephemeral,
                },
                msg::KEX_ECDH_REPLY,
            ) => self.on_reply(payload, &ours, &theirs, negotiated, ephemeral)?,
            (Phase::AwaitNewKeys { keys, negotiated }, msg::NEWKEYS) => {
                self.on_newkeys(keys, negotiated)?;
                Phase::Idle
            }
            (_, t) => return Err(Error::Protocol(format!("kex message {t} out of order"))),
        };
        Ok(())
    }

    fn on_server_kexinit(&mut self, theirs: &[u8]) -> Result<Phase> {
        let (ours, negotiated, started_by_us) = self.out.on_peer_kexinit(theirs)?;
        if self.initial_done {
            // Whoever sent KEXINIT first started it (the main thread may
            // have, when its sending budget ran out).
            let mut info = self.info_mut();
            if started_by_us {
                info.client_rekeys += 1;
            } else {
                info.server_rekeys += 1;
            }
        }
        if self.session_id.is_none() {
            self.strict = self.prefs.strict_kex && negotiated.peer_strict;
            self.reader
                .connection()
                .with(|core| core.set_strict_kex(self.strict));
        }
        let ephemeral = Ephemeral::generate()?;
        self.out.send_kex(&ephemeral.init_message())?;
        Ok(Phase::AwaitReply {
            ours,
            theirs: theirs.to_vec(),
            negotiated,
            ephemeral,
        })
    }

    fn on_reply(
        &mut self,
        reply: &[u8],
        ours: &[u8],
        theirs: &[u8],
        negotiated: Negotiated,
        ephemeral: Ephemeral,
    ) -> Result<Phase> {
        let transcript = Transcript {
            client_id: &self.client_id,
            server_id: &self.server_id,
            client_kexinit: ours,
            server_kexinit: theirs,
        };
        let outcome = kex::finish(
            ephemeral,
            reply,
            &transcript,
            &negotiated,
            self.session_id.as_deref(),
        )?;
        match &self.host_key {
            None => {
                let verdict = self.check.check(&outcome.host_key, &self.host, self.port)?;
                if let Verdict::Recorded(path) = verdict {
                    self.info_mut().host_key_recorded = Some(path);
                }
            }
            // A rekey must not change the host key.
            Some(first) if *first != outcome.host_key => {
                return Err(Error::HostKeyMismatch {
                    expected: HostKey::fingerprint(first),
                    got: outcome.host_key.fingerprint(),
                });
            }
            Some(_) => {}
        }
        if self.host_key.is_none() {
            self.info_mut().host_key_fingerprint = outcome.host_key.fingerprint();
            self.host_key = Some(outcome.host_key);
        }
        if self.session_id.is_none() {
            self.info_mut().session_id = outcome.exchange_hash.clone();
            self.session_id = Some(outcome.exchange_hash.clone());
        }
        self.out.send_newkeys(outcome.client_to_server)?;
        Ok(Phase::AwaitNewKeys {
            keys: outcome.server_to_client,
            negotiated,
        })
    }

    fn on_newkeys(&mut self, keys: Keys, negotiated: Negotiated) -> Result<()> {
        // The core resets the inbound sequence number itself under strict
        // kex, and marks the initial kex done once both directions switched.
        self.reader.set_inbound_cipher(keys)?;
        let first = {
            let mut info = self.info_mut();
            info.kex_count += 1;
            info.negotiated = Some(negotiated);
            info.strict_kex = self.strict;
            info.provider = self
                .reader
                .connection()
                .with(|core| core.crypto_provider().name());
            info.kex_count == 1
        };
        if first {
            self.initial_done = true;
        }
        self.out.kex_finished();
        if first {
            // Only the first exchange is waited for; later ones are no news
            // to the main thread, and a long session has many.
            self.to_main(Event::KexDone)?;
        }
        Ok(())
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
