//! The reader thread: reads every packet, runs key exchanges (the first one
//! and every rekey, whoever starts it), feeds channel data to its sinks, and
//! passes the rest of the connection layer to the main thread.

use std::net::TcpStream;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};

use ssh_packetizer::PacketReader;
use ssh_packetizer::{CompressionAlgorithm, Keys};

use crate::channel;
use crate::error::{Error, Result};
use crate::hostkey::{HostKey, HostKeyCheck};
use crate::kex::{self, Ephemeral, Negotiated, Preferences, Transcript};
use crate::msg;
use crate::outbound::{KexPhase, Outbound};
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
    /// Key exchanges completed, the first included.
    pub kex_count: u32,
    /// Rekeys the server started.
    pub server_rekeys: u32,
    /// Rekeys we started.
    pub client_rekeys: u32,
    /// The first exchange hash, which authentication signs.
    pub session_id: Vec<u8>,
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

/// The reader thread's state.
pub(crate) struct Inbound {
    pub(crate) reader: PacketReader<TcpStream>,
    pub(crate) out: Arc<Outbound>,
    pub(crate) prefs: Preferences,
    pub(crate) check: HostKeyCheck,
    pub(crate) client_id: Vec<u8>,
    pub(crate) server_id: Vec<u8>,
    pub(crate) events: Sender<Event>,
    pub(crate) channel: Arc<channel::Shared>,
    pub(crate) info: Arc<Mutex<Info>>,
    pub(crate) session_id: Option<Vec<u8>>,
    pub(crate) host_key: Option<HostKey>,
    pub(crate) strict: bool,
    pub(crate) phase: Phase,
    pub(crate) initial_done: bool,
    /// Replies held back while the gate is shut (window adjusts, closes).
    pub(crate) deferred: Vec<Vec<u8>>,
    /// Set when we disconnect on purpose, so the EOF that follows is quiet.
    pub(crate) closing: Arc<std::sync::atomic::AtomicBool>,
}

impl Inbound {
    /// The thread body: runs until the connection ends.
    pub fn run(mut self) {
        let result = self.run_loop();
        let quiet = self.closing.load(std::sync::atomic::Ordering::SeqCst);
        let err = match result {
            Ok(()) => Error::PeerClosed,
            Err(e) => e,
        };
        let why = err.to_string();
        if !quiet {
            log::debug!("reader thread ends: {why}");
        }
        self.out.fail(&why);
        self.channel.fail(&why);
        let _ = self.events.send(Event::Failed(err));
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
                check_initial_kex_rules(self.strict, msg_type, seqno)?;
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
                    if let Some(reply) = self.channel.on_message(packet.payload())? {
                        self.send_or_defer(reply)?;
                    }
                }
                msg::GLOBAL_REQUEST => {
                    let mut r = Reader::body(packet.payload());
                    r.string()?;
                    if r.bool()? {
                        self.send_or_defer(vec![msg::REQUEST_FAILURE])?;
                    }
                }
                msg::USERAUTH_SUCCESS => {
                    let payload = packet.payload().to_vec();
                    self.start_delayed_compression();
                    self.reader.complete_handshake();
                    self.to_main(Event::Message(payload));
                }
                _ => {
                    let payload = packet.payload().to_vec();
                    self.to_main(Event::Message(payload));
                }
            }
            if self.reader.need_rekey() {
                self.start_rekey()?;
            }
        }
    }

    fn to_main(&self, event: Event) {
        // A main thread that went away is no reason to fail the reader; the
        // connection ends when the session is dropped.
        let _ = self.events.send(event);
    }

    fn send_or_defer(&mut self, payload: Vec<u8>) -> Result<()> {
        if !self.deferred.is_empty() || !self.out.try_send(&payload)? {
            self.deferred.push(payload);
        }
        Ok(())
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
                self.reader.start_delayed_compression();
            }
            if n.comp_c2s == CompressionAlgorithm::ZlibOpenSsh {
                self.out.writer().start_delayed_compression();
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
        let started_by_us = self.out.phase() == KexPhase::Sending;
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
        self.out.begin_kex()?;
        let ours = self
            .out
            .our_kexinit()
            .ok_or_else(|| Error::Protocol("our KEXINIT is missing".into()))?;
        let negotiated = kex::negotiate(&self.prefs, theirs)?;
        if self.session_id.is_none() {
            self.strict = self.prefs.strict_kex && negotiated.server_strict;
            self.reader.set_strict_kex(self.strict);
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
            None => self.check.check(&outcome.host_key)?,
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
            info.kex_count == 1
        };
        if first {
            self.initial_done = true;
        }
        self.out.kex_finished();
        for payload in std::mem::take(&mut self.deferred) {
            self.send_or_defer(payload)?;
        }
        self.to_main(Event::KexDone);
        Ok(())
    }
}

/// Strict kex (and RFC 4253 in general): the server's KEXINIT comes first;
/// under strict kex nothing but kex messages until NEWKEYS.
fn check_initial_kex_rules(strict: bool, msg_type: u8, seqno: u32) -> Result<()> {
    if seqno == 0 && msg_type != msg::KEXINIT {
        return Err(Error::Protocol(format!(
            "the server's first packet is message {msg_type}, not KEXINIT"
        )));
    }
    if strict && !msg::is_kex(msg_type) {
        return Err(Error::Protocol(format!(
            "message {msg_type} during the initial strict key exchange"
        )));
    }
    Ok(())
}

/// SSH_MSG_DISCONNECT "by application", sent when we are done.
pub fn disconnect_message() -> Vec<u8> {
    Msg::new(msg::DISCONNECT)
        .u32(11)
        .string("bye")
        .string("")
        .finish()
}
