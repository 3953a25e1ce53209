//! The SSH transport layer of both roles, sans-IO: the key exchanges (the
//! first and every rekey, whoever starts it), NEWKEYS both ways, and the
//! transport's own messages. It never touches a socket or a thread.
//!
//! A driver reads a message from its packetizer and hands it to
//! [`Transport::handle`]; whatever that message asks for comes back as
//! [`Transmit`]s (send a message, send NEWKEYS and switch keys), at most
//! one [`InboundChange`] (strict kex on, the inbound keys) and
//! [`KexDone`]s, which the driver applies to its packetizer. What is not the
//! transport's ([`Handled::Connection`]) is the caller's: authentication
//! and channels.
//!
//! The packet layer's rules are not repeated here: the core holds our
//! connection messages between our KEXINIT and our NEWKEYS, enforces
//! strict kex's order, asks for rekeys when a budget is spent (the driver
//! then calls [`Transport::start_kex`]), and turns DISCONNECT into an
//! error.
//!
//! ```
//! use minissh::transport::{HostKeys, Transmit, Transport};
//! use minissh::Preferences;
//!
//! // A server's transport: its first KEXINIT is ready before any read.
//! let host = minissh::identity::Identity::generate().unwrap();
//! let mut t = Transport::new(
//!     HostKeys::Sign(std::sync::Arc::new(host)),
//!     Preferences::default(),
//!     b"SSH-2.0-client".to_vec(),
//!     b"SSH-2.0-server".to_vec(),
//! );
//! assert!(t.start_kex().unwrap());
//! let Some(Transmit::Message(kexinit)) = t.poll_transmit() else { panic!() };
//! assert_eq!(kexinit[0], minissh::msg::KEXINIT);
//! ```

pub mod algorithms;
pub mod curve25519;

use std::collections::VecDeque;
use std::sync::Arc;

use ssh_packetizer::{Keys, Role};

use crate::error::{Error, Result};
use crate::hostkey::HostKey;
use crate::identity::Identity;
use crate::msg;
use algorithms::{Agreed, Preferences};
use curve25519::{Ephemeral, Transcript};

/// Checks the server's host key (the client's side); an error refuses it.
pub type Verifier = Box<dyn FnMut(&HostKey) -> Result<()> + Send>;

/// The host key's part in the exchange, which also says our role.
pub enum HostKeys {
    /// We are the client: the server's key is checked by this, the first
    /// time; a rekey must present the same key.
    Verify(Verifier),
    /// We are the server: we sign the exchange hash with this key.
    Sign(Arc<Identity>),
}

impl std::fmt::Debug for HostKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HostKeys::Verify(_) => f.write_str("HostKeys::Verify(..)"),
            HostKeys::Sign(_) => f.write_str("HostKeys::Sign(..)"),
        }
    }
}

/// Something to send, in this order.
#[derive(Debug)]
pub enum Transmit {
    /// A transport message (KEXINIT, a kex method's message): send it now.
    Message(Vec<u8>),
    /// Send NEWKEYS and switch the outbound keys to these, in one step.
    NewKeys(Keys),
}

/// A change to the receiving side, to make before the next packet is read.
#[derive(Debug)]
pub enum InboundChange {
    /// Strict kex is on or off for this connection (decided by the first
    /// KEXINITs).
    StrictKex(bool),
    /// The peer's NEWKEYS was read: install these inbound keys.
    Keys(Keys),
}

/// A key exchange finished both ways (the peer's NEWKEYS was read and ours
/// was sent).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KexDone {
    /// It was the connection's first.
    pub initial: bool,
    /// We sent the first KEXINIT of it (a rekey we started).
    pub started_by_us: bool,
}

/// Whose a message was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handled {
    /// The transport's: it has done what the message asks.
    Transport,
    /// The connection layer's (authentication, channels): the caller's.
    Connection,
}

/// Counts over the connection's life.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Key exchanges completed, the first included.
    pub kex_count: u32,
    /// Rekeys we started.
    pub rekeys_by_us: u32,
    /// Rekeys the peer started.
    pub rekeys_by_peer: u32,
}

/// Where a key exchange stands.
enum Phase {
    /// None under way.
    Idle,
    /// Our KEXINIT is out; the peer's is awaited.
    Sent { ours: Vec<u8> },
    /// Both KEXINITs are in; the kex method's messages are under way.
    Method {
        ours: Vec<u8>,
        theirs: Vec<u8>,
        agreed: Agreed,
        started_by_us: bool,
        /// The client's half (the server makes its own when answering).
        ephemeral: Option<Ephemeral>,
    },
    /// Our NEWKEYS is out; the peer's switches the inbound keys.
    AwaitNewKeys {
        keys: Keys,
        agreed: Agreed,
        started_by_us: bool,
    },
}

/// The transport layer of one connection (see the module docs).
pub struct Transport {
    host_keys: HostKeys,
    prefs: Preferences,
    client_id: Vec<u8>,
    server_id: Vec<u8>,
    phase: Phase,
    /// Whether our first KEXINIT (the one with the strict kex marker) went.
    sent_first: bool,
    /// The first exchange hash.
    session_id: Option<Vec<u8>>,
    /// The server's host key, from the first exchange.
    host_key: Option<HostKey>,
    /// The algorithms of the latest completed exchange.
    agreed: Option<Agreed>,
    strict: bool,
    /// The peer guessed its kex method's first packet wrongly (RFC 4253
    /// §7): the next kex method message is dropped.
    ignore_guess: bool,
    stats: Stats,
    transmits: VecDeque<Transmit>,
    inbound: Option<InboundChange>,
    done: VecDeque<KexDone>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("role", &self.role())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Transport {
    /// A transport for one connection, after the identification lines
    /// were exchanged (`client_id` and `server_id` without CR LF).
    pub fn new(
        host_keys: HostKeys,
        prefs: Preferences,
        client_id: Vec<u8>,
        server_id: Vec<u8>,
    ) -> Transport {
        Transport {
            host_keys,
            prefs,
            client_id,
            server_id,
            phase: Phase::Idle,
            sent_first: false,
            session_id: None,
            host_key: None,
            agreed: None,
            strict: false,
            ignore_guess: false,
            stats: Stats::default(),
            transmits: VecDeque::new(),
            inbound: None,
            done: VecDeque::new(),
        }
    }

    /// Our role, which the host key's part says.
    pub fn role(&self) -> Role {
        match self.host_keys {
            HostKeys::Verify(_) => Role::Client,
            HostKeys::Sign(_) => Role::Server,
        }
    }

    /// Starts a key exchange unless one is under way: queues our KEXINIT.
    /// Call it once at the start, and whenever the packet layer wants a
    /// rekey (`Connection::should_start_kex`). Returns whether it started
    /// one.
    pub fn start_kex(&mut self) -> Result<bool> {
        if !matches!(self.phase, Phase::Idle) {
            return Ok(false);
        }
        let ours = algorithms::kexinit(self.role(), &self.prefs, !self.sent_first)?;
        self.sent_first = true;
        self.transmits.push_back(Transmit::Message(ours.clone()));
        self.phase = Phase::Sent { ours };
        Ok(true)
    }

    /// Takes one message the peer sent (its payload, message type first,
    /// and its sequence number). A transport message is acted on; anything
    /// else is [`Handled::Connection`], once the first exchange is done.
    pub fn handle(&mut self, payload: &[u8], seqno: u32) -> Result<Handled> {
        let msg_type = *payload
            .first()
            .ok_or_else(|| Error::Protocol("an empty message".into()))?;
        let initial_done = self.stats.kex_count > 0;
        // RFC 4253 §7.1: the first packet is KEXINIT.
        if !initial_done && seqno == 0 && msg_type != msg::KEXINIT && self.session_id.is_none() {
            return Err(Error::Protocol(format!(
                "the peer's first packet is message {msg_type}, not KEXINIT"
            )));
        }
        match msg_type {
            t if msg::is_kex(t) => {
                self.on_kex(payload)?;
                Ok(Handled::Transport)
            }
            msg::IGNORE | msg::DEBUG | msg::UNIMPLEMENTED => Ok(Handled::Transport),
            // The server's extensions (RFC 8308) change nothing here.
            msg::EXT_INFO if self.role() == Role::Client => Ok(Handled::Transport),
            _ if !initial_done => Err(Error::Protocol(format!(
                "message {msg_type} before the first key exchange finished"
            ))),
            _ => Ok(Handled::Connection),
        }
    }

    /// The next message to send, in order.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// A change to make on the receiving side before the next read.
    pub fn poll_inbound(&mut self) -> Option<InboundChange> {
        self.inbound.take()
    }

    /// The next finished key exchange.
    pub fn poll_kex_done(&mut self) -> Option<KexDone> {
        self.done.pop_front()
    }

    /// The first exchange hash, which authentication signs.
    pub fn session_id(&self) -> Option<&[u8]> {
        self.session_id.as_deref()
    }

    /// The server's host key, once the first exchange verified it.
    pub fn host_key(&self) -> Option<&HostKey> {
        self.host_key.as_ref()
    }

    /// The algorithms of the latest completed exchange.
    pub fn agreed(&self) -> Option<Agreed> {
        self.agreed
    }

    /// Whether strict kex is in force.
    pub fn is_strict_kex(&self) -> bool {
        self.strict
    }

    /// Whether the first exchange is complete.
    pub fn is_initial_kex_done(&self) -> bool {
        self.stats.kex_count > 0
    }

    /// Whether a key exchange is under way.
    pub fn is_kex_in_progress(&self) -> bool {
        !matches!(self.phase, Phase::Idle)
    }

    /// Counts over the connection's life.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    fn on_kex(&mut self, payload: &[u8]) -> Result<()> {
        let msg_type = payload[0];
        if self.ignore_guess && msg_type >= msg::KEX_ECDH_INIT {
            // The wrongly guessed packet, whatever method it guessed
            // (30-49 are the methods' own numbers).
            self.ignore_guess = false;
            return Ok(());
        }
        let phase = std::mem::replace(&mut self.phase, Phase::Idle);
        self.phase = match (phase, msg_type) {
            (Phase::Idle, msg::KEXINIT) => self.on_kexinit(None, payload)?,
            (Phase::Sent { ours }, msg::KEXINIT) => self.on_kexinit(Some(ours), payload)?,
            (phase @ Phase::Method { .. }, msg::KEX_ECDH_INIT | msg::KEX_ECDH_REPLY) => {
                self.on_method(phase, payload)?
            }
            (
                Phase::AwaitNewKeys {
                    keys,
                    agreed,
                    started_by_us,
                },
                msg::NEWKEYS,
            ) => {
                self.on_newkeys(keys, agreed, started_by_us);
                Phase::Idle
            }
            (_, t) => return Err(Error::Protocol(format!("kex message {t} out of order"))),
        };
        Ok(())
    }

    /// The peer's KEXINIT: ours goes out unless it already has (either
    /// side may start), and the lists are negotiated.
    fn on_kexinit(&mut self, ours: Option<Vec<u8>>, theirs: &[u8]) -> Result<Phase> {
        let started_by_us = ours.is_some();
        let ours = match ours {
            Some(ours) => ours,
            None => {
                self.start_kex()?;
                match std::mem::replace(&mut self.phase, Phase::Idle) {
                    Phase::Sent { ours } => ours,
                    _ => unreachable!("start_kex from Idle leaves Sent"),
                }
            }
        };
        if self.is_initial_kex_done() {
            if started_by_us {
                self.stats.rekeys_by_us += 1;
            } else {
                self.stats.rekeys_by_peer += 1;
            }
        }
        let role = self.role();
        let agreed = algorithms::negotiate(role, &self.prefs, theirs)?;
        if self.session_id.is_none() {
            self.strict = self.prefs.strict_kex && agreed.peer_strict;
            self.inbound = Some(InboundChange::StrictKex(self.strict));
        }
        self.ignore_guess = agreed.ignore_guess;
        let ephemeral = match role {
            Role::Server => None,
            _ => {
                let ephemeral = Ephemeral::generate()?;
                self.transmits
                    .push_back(Transmit::Message(ephemeral.init_message()));
                Some(ephemeral)
            }
        };
        Ok(Phase::Method {
            ours,
            theirs: theirs.to_vec(),
            agreed,
            started_by_us,
            ephemeral,
        })
    }

    /// The kex method's message: the client's ECDH_INIT (we answer and
    /// send NEWKEYS) or the server's ECDH_REPLY (we check the host key and
    /// send NEWKEYS).
    fn on_method(&mut self, phase: Phase, payload: &[u8]) -> Result<Phase> {
        let Phase::Method {
            ours,
            theirs,
            agreed,
            started_by_us,
            ephemeral,
        } = phase
        else {
            unreachable!("called in the method phase");
        };
        let (client_kexinit, server_kexinit) = match self.role() {
            Role::Server => (&theirs, &ours),
            _ => (&ours, &theirs),
        };
        let transcript = Transcript {
            client_id: &self.client_id,
            server_id: &self.server_id,
            client_kexinit,
            server_kexinit,
        };
        let session_id = self.session_id.as_deref();
        let (outcome, ours_out, theirs_in) = match (&mut self.host_keys, payload[0], ephemeral) {
            (HostKeys::Sign(host), msg::KEX_ECDH_INIT, None) => {
                let (reply, outcome) =
                    curve25519::answer(host, payload, &transcript, &agreed, session_id)?;
                self.transmits.push_back(Transmit::Message(reply));
                (
                    outcome.exchange_hash,
                    outcome.server_to_client,
                    outcome.client_to_server,
                )
            }
            (HostKeys::Verify(verify), msg::KEX_ECDH_REPLY, Some(ephemeral)) => {
                let outcome =
                    curve25519::finish(ephemeral, payload, &transcript, &agreed, session_id)?;
                match &self.host_key {
                    None => {
                        verify(&outcome.host_key)?;
                        self.host_key = Some(outcome.host_key);
                    }
                    // A rekey must not change the host key.
                    Some(first) if *first != outcome.host_key => {
                        return Err(Error::HostKeyMismatch {
                            expected: first.fingerprint(),
                            got: outcome.host_key.fingerprint(),
                        });
                    }
                    Some(_) => {}
                }
                (
                    outcome.exchange_hash,
                    outcome.client_to_server,
                    outcome.server_to_client,
                )
            }
            (_, t, _) => return Err(Error::Protocol(format!("kex message {t} out of order"))),
        };
        if self.session_id.is_none() {
            self.session_id = Some(outcome);
        }
        self.transmits.push_back(Transmit::NewKeys(ours_out));
        Ok(Phase::AwaitNewKeys {
            keys: theirs_in,
            agreed,
            started_by_us,
        })
    }

    fn on_newkeys(&mut self, keys: Keys, agreed: Agreed, started_by_us: bool) {
        self.inbound = Some(InboundChange::Keys(keys));
        self.agreed = Some(agreed);
        let initial = self.stats.kex_count == 0;
        self.stats.kex_count += 1;
        self.done.push_back(KexDone {
            initial,
            started_by_us,
        });
    }
}

#[cfg(test)]
mod tests;
