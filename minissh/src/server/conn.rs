//! One connection on the server, on its own thread: identification, the
//! key exchanges (the first and every rekey, whoever starts it),
//! authentication, and the channel messages, until the connection ends.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use ssh_packetizer::{CompressionAlgorithm, Keys, PacketReader, Packetizer};

use super::auth::{Auth, Step};
use super::channels::Channels;
use super::log::Record;
use super::{Shared, SERVER_ID};
use crate::error::{Error, Result};
use crate::kex::{self, check_first_packet, Negotiated, Side, Transcript};
use crate::msg;
use crate::outbound::{Outbound, Outgoing};
use crate::wire::{Msg, Reader};

/// SSH_DISCONNECT_PROTOCOL_ERROR.
const PROTOCOL_ERROR: u32 = 2;
/// SSH_DISCONNECT_SERVICE_NOT_AVAILABLE.
const SERVICE_NOT_AVAILABLE: u32 = 7;
/// SSH_DISCONNECT_NO_MORE_AUTH_METHODS_AVAILABLE.
const NO_MORE_AUTH_METHODS: u32 = 14;

/// Data and window adjusts: the messages that are most of a session.
fn is_channel_traffic(msg_type: u8) -> bool {
    matches!(
        msg_type,
        msg::CHANNEL_DATA | msg::CHANNEL_EXTENDED_DATA | msg::CHANNEL_WINDOW_ADJUST
    )
}

/// Serves one connection to its end; returns what the log says about it.
pub(super) fn serve(stream: TcpStream, peer: SocketAddr, shared: &Shared) -> Record {
    let mut record = Record::new(peer);
    let commands = Arc::new(Mutex::new(Vec::new()));
    let end = match Conn::start(stream, shared, &mut record, commands.clone()) {
        Ok(mut conn) => {
            let result = conn.run(&mut record);
            let end = describe_end(result, shared, record.user.is_some());
            conn.finish(&end, &mut record);
            end
        }
        Err(e) => describe_end(Err(e), shared, false),
    };
    record.commands = std::mem::take(&mut *commands.lock().unwrap_or_else(|e| e.into_inner()));
    record.end = end;
    record
}

/// Why a connection ended, in the log's words (`authenticated`: whether
/// the handshake deadline was the login grace time or a rekey's).
fn describe_end(result: Result<()>, shared: &Shared, authenticated: bool) -> String {
    let Err(e) = result else {
        return "closed".into();
    };
    if let Error::Packet(p) = &e {
        match p.cause() {
            ssh_packetizer::Error::HandshakeTimeout if authenticated => {
                return format!(
                    "a key exchange did not finish within {} s: cut off",
                    shared.config.kex_deadline.as_secs_f64()
                );
            }
            ssh_packetizer::Error::HandshakeTimeout => {
                return format!(
                    "login grace time ({} s) exceeded: cut off",
                    shared.config.login_grace.as_secs_f64()
                );
            }
            ssh_packetizer::Error::Eof { .. } => {
                return format!("the client closed the connection ({p})");
            }
            _ if p.io_kind() == Some(io::ErrorKind::ConnectionReset) => {
                return "the client reset the connection".into();
            }
            _ => {}
        }
    }
    match e {
        Error::Disconnected { code, description } => {
            format!("the client disconnected (reason {code}): {description}")
        }
        Error::PeerClosed => "the client closed the connection".into(),
        other => other.to_string(),
    }
}

enum Phase {
    Idle,
    /// The client's KEXINIT is in; its ECDH_INIT is awaited.
    AwaitInit {
        ours: Vec<u8>,
        theirs: Vec<u8>,
        negotiated: Negotiated,
    },
    /// Our NEWKEYS is out; the client's switches our inbound keys.
    AwaitNewKeys {
        keys: Keys,
        negotiated: Negotiated,
    },
}

struct Conn<'a> {
    shared: &'a Shared,
    reader: PacketReader<TcpStream>,
    out: Arc<Outbound>,
    /// A handle on the socket, to hang up at the end.
    socket: TcpStream,
    client_id: Vec<u8>,
    phase: Phase,
    session_id: Option<Vec<u8>>,
    strict: bool,
    initial_done: bool,
    /// The client's KEXINIT guessed a kex packet wrongly (RFC 4253 §7):
    /// the next one is dropped.
    ignore_guess: bool,
    negotiated: Option<Negotiated>,
    service_accepted: bool,
    auth: Auth,
    user: Option<String>,
    channels: Channels,
    /// Keepalives sent and not yet answered.
    keepalives: Arc<AtomicU32>,
}

impl<'a> Conn<'a> {
    /// Exchanges identification lines and sends our first KEXINIT.
    fn start(
        stream: TcpStream,
        shared: &'a Shared,
        record: &mut Record,
        commands: Arc<Mutex<Vec<super::log::CommandRecord>>>,
    ) -> Result<Conn<'a>> {
        let config = &shared.config;
        let socket = stream.try_clone()?;
        let mut server = ssh_packetizer::Config::server().crypto_provider(config.prefs.provider);
        if let Some(limits) = config.rekey {
            server = server.rekey_limits(limits);
        }
        let mut pk = Packetizer::tcp_with_config(stream, server)?;
        // The login grace time covers everything up to USERAUTH_SUCCESS,
        // the identification line included: a client that drips bytes is
        // cut off like one that sends nothing.
        pk.start_handshake(config.login_grace);
        pk.send_identification(SERVER_ID)?;
        let client_id = pk.read_identification()?;
        record.client_id = client_id.as_str().to_owned();
        let (reader, writer) = pk.split()?;
        // A client that stops reading cannot hold its connection (and its
        // place under the cap) for ever: a write that makes no progress
        // for this long fails.
        writer.set_write_timeout(Some(config.write_stall));
        let keepalives = Arc::new(AtomicU32::new(0));
        let out = Arc::new(Outbound::new(writer, config.prefs.clone(), Side::Server));
        out.begin_kex()?;
        Ok(Conn {
            shared,
            reader,
            out: out.clone(),
            socket,
            client_id: client_id.line,
            phase: Phase::Idle,
            session_id: None,
            strict: false,
            initial_done: false,
            ignore_guess: false,
            negotiated: None,
            service_accepted: false,
            auth: Auth::new(&config.authorized_keys),
            user: None,
            channels: Channels::new(out, commands),
            keepalives,
        })
    }

    /// Reads and answers until the connection ends.
    fn run(&mut self, record: &mut Record) -> Result<()> {
        let result = self.read_loop(record);
        if let Err(e) = &result {
            // Tell the client why, where that is ours to say.
            let code = match e {
                Error::Protocol(_) | Error::NoCommonAlgorithm { .. } => Some(PROTOCOL_ERROR),
                Error::AuthFailed { .. } => Some(NO_MORE_AUTH_METHODS),
                Error::ChannelRefused(_) => Some(SERVICE_NOT_AVAILABLE),
                _ => None,
            };
            if let Some(code) = code {
                let _ = self.out.disconnect(
                    &Msg::new(msg::DISCONNECT)
                        .u32(code)
                        .string(e.to_string())
                        .string("")
                        .finish(),
                );
            }
        }
        result
    }

    fn read_loop(&mut self, record: &mut Record) -> Result<()> {
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
            record.bytes_in += packet.payload().len() as u64;
            if !self.initial_done {
                check_first_packet(msg_type, seqno)?;
            }
            if self.user.is_some() && is_channel_traffic(msg_type) {
                // The bulk of a session, handled straight from the
                // reader's buffer (the channels and the outbound side are
                // fields of their own, apart from the reader).
                if let Some(reply) = self.channels.on_message(packet.payload())? {
                    self.out.reply(reply)?;
                }
            } else {
                // The payload borrows the reader's buffer, and the other
                // steps need the reader too: those few messages are copied.
                let payload = packet.payload().to_vec();
                self.dispatch(&payload, seqno, record)?;
            }
            if self.reader.connection().need_rekey() {
                self.start_rekey()?;
            }
        }
    }

    fn dispatch(&mut self, payload: &[u8], seqno: u32, record: &mut Record) -> Result<()> {
        let msg_type = payload[0];
        match msg_type {
            // Every kex message, 20-49: one that is out of place is an
            // error there (after a wrong guess, the guess is dropped).
            t if msg::is_kex(t) => self.on_kex(payload, record),
            msg::DISCONNECT => {
                let mut r = Reader::body(payload);
                let code = r.u32()?;
                let description = r.text().unwrap_or_default().to_owned();
                Err(Error::Disconnected { code, description })
            }
            msg::IGNORE | msg::DEBUG | msg::UNIMPLEMENTED => Ok(()),
            _ if !self.initial_done => Err(Error::Protocol(format!(
                "message {msg_type} before the first key exchange finished"
            ))),
            msg::SERVICE_REQUEST => {
                let service = Reader::body(payload).text()?.to_owned();
                if service != "ssh-userauth" || self.user.is_some() {
                    return Err(Error::ChannelRefused(format!("service {service}")));
                }
                self.service_accepted = true;
                let accept = Msg::new(msg::SERVICE_ACCEPT).string(&service).finish();
                self.reply(accept)
            }
            msg::USERAUTH_REQUEST if self.user.is_some() => {
                // RFC 4252 §5.1: requests after success are ignored.
                Ok(())
            }
            msg::USERAUTH_REQUEST if self.service_accepted => self.on_userauth(payload, record),
            _ if self.user.is_none() => Err(Error::Protocol(format!(
                "message {msg_type} before authentication"
            ))),
            msg::GLOBAL_REQUEST => {
                let mut r = Reader::body(payload);
                r.string()?;
                if r.bool()? {
                    self.reply(vec![msg::REQUEST_FAILURE])?;
                }
                Ok(())
            }
            msg::REQUEST_SUCCESS | msg::REQUEST_FAILURE => {
                // The answer to a keepalive: the client is there.
                self.keepalives.store(0, Ordering::SeqCst);
                Ok(())
            }
            msg::CHANNEL_OPEN => {
                let reply = self.channels.on_open(payload)?;
                self.reply(reply)
            }
            msg::CHANNEL_WINDOW_ADJUST
            | msg::CHANNEL_DATA
            | msg::CHANNEL_EXTENDED_DATA
            | msg::CHANNEL_EOF
            | msg::CHANNEL_CLOSE
            | msg::CHANNEL_REQUEST
            | msg::CHANNEL_SUCCESS
            | msg::CHANNEL_FAILURE => match self.channels.on_message(payload)? {
                Some(reply) => self.out.reply(reply).map(|_| ()),
                None => Ok(()),
            },
            _ => {
                // RFC 4253 §11.4.
                let reply = Msg::new(msg::UNIMPLEMENTED).u32(seqno).finish();
                self.reply(reply)
            }
        }
    }

    fn on_userauth(&mut self, payload: &[u8], record: &mut Record) -> Result<()> {
        let session_id = self.session_id.clone().unwrap_or_default();
        match self.auth.request(payload, &session_id)? {
            Step::Reply(reply) => self.reply(reply),
            Step::TooManyTries => Err(Error::AuthFailed {
                methods: "too many authentication failures".into(),
            }),
            Step::Success { user, reply } => {
                let n = self.negotiated;
                let mut reply = Outgoing::plain(reply);
                if n.is_some_and(|n| n.comp_s2c == CompressionAlgorithm::ZlibOpenSsh) {
                    // We compress from the packet after this one.
                    reply = reply.then_start_compression();
                }
                self.out.reply(reply)?;
                if n.is_some_and(|n| n.comp_c2s == CompressionAlgorithm::ZlibOpenSsh) {
                    // The client compresses from its next packet on.
                    self.reader
                        .connection()
                        .with(|core| core.start_delayed_compression());
                }
                record.user = Some(user.clone());
                self.user = Some(user);
                self.reader.connection().complete_handshake();
                self.out
                    .set_rekey_deadline(Some(self.shared.config.kex_deadline));
                self.start_keepalive();
                Ok(())
            }
        }
    }

    fn reply(&mut self, payload: Vec<u8>) -> Result<()> {
        self.out.reply(Outgoing::plain(payload)).map(|_| ())
    }

    /// Keepalives start with the session, as sshd's do: before
    /// authentication a client may not answer a global request (OpenSSH's
    /// treats one as a protocol error then).
    fn start_keepalive(&mut self) {
        let config = &self.shared.config;
        let Some(interval) = config.keepalive else {
            return;
        };
        let (pending, max) = (self.keepalives.clone(), config.keepalive_max);
        self.reader.set_keepalive(Some(interval), move |send| {
            if pending.fetch_add(1, Ordering::SeqCst) >= max {
                return Err(ssh_packetizer::Error::Io(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("the client answered none of {max} keepalives"),
                )));
            }
            let ping = Msg::new(msg::GLOBAL_REQUEST)
                .string("keepalive@openssh.com")
                .bool(true)
                .finish();
            send.send_message(&ping).map(|_| ())
        });
    }

    fn start_rekey(&mut self) -> Result<()> {
        if self.initial_done && self.out.begin_kex()? {
            log::debug!("starting a rekey");
        }
        Ok(())
    }

    fn on_kex(&mut self, payload: &[u8], record: &mut Record) -> Result<()> {
        if self.ignore_guess && payload[0] >= msg::KEX_ECDH_INIT {
            // The wrongly guessed packet, whatever method it guessed
            // (30-49 are the methods' own numbers).
            self.ignore_guess = false;
            return Ok(());
        }
        let phase = std::mem::replace(&mut self.phase, Phase::Idle);
        self.phase = match (phase, payload[0]) {
            (Phase::Idle, msg::KEXINIT) => self.on_client_kexinit(payload, record)?,
            (
                Phase::AwaitInit {
                    ours,
                    theirs,
                    negotiated,
                },
                msg::KEX_ECDH_INIT,
            ) => self.on_init(payload, &ours, &theirs, negotiated)?,
            (Phase::AwaitNewKeys { keys, negotiated }, msg::NEWKEYS) => {
                self.on_newkeys(keys, negotiated, record)?;
                Phase::Idle
            }
            (_, t) => return Err(Error::Protocol(format!("kex message {t} out of order"))),
        };
        Ok(())
    }

    fn on_client_kexinit(&mut self, theirs: &[u8], record: &mut Record) -> Result<Phase> {
        let (ours, negotiated, started_by_us) = self.out.on_peer_kexinit(theirs)?;
        if self.initial_done {
            if started_by_us {
                record.server_rekeys += 1;
            } else {
                record.client_rekeys += 1;
            }
        }
        if self.session_id.is_none() {
            self.strict = self.shared.config.prefs.strict_kex && negotiated.peer_strict;
            self.reader
                .connection()
                .with(|core| core.set_strict_kex(self.strict));
            record.strict_kex = self.strict;
        }
        self.ignore_guess = negotiated.ignore_guess;
        Ok(Phase::AwaitInit {
            ours,
            theirs: theirs.to_vec(),
            negotiated,
        })
    }

    fn on_init(
        &mut self,
        init: &[u8],
        ours: &[u8],
        theirs: &[u8],
        negotiated: Negotiated,
    ) -> Result<Phase> {
        let transcript = Transcript {
            client_id: &self.client_id,
            server_id: SERVER_ID.as_bytes(),
            client_kexinit: theirs,
            server_kexinit: ours,
        };
        let (reply, outcome) = kex::answer(
            &self.shared.host_key,
            init,
            &transcript,
            &negotiated,
            self.session_id.as_deref(),
        )?;
        if self.session_id.is_none() {
            self.session_id = Some(outcome.exchange_hash.clone());
        }
        self.out.send_kex(&reply)?;
        self.out.send_newkeys(outcome.server_to_client)?;
        Ok(Phase::AwaitNewKeys {
            keys: outcome.client_to_server,
            negotiated,
        })
    }

    fn on_newkeys(
        &mut self,
        keys: Keys,
        negotiated: Negotiated,
        record: &mut Record,
    ) -> Result<()> {
        self.reader.set_inbound_cipher(keys)?;
        self.initial_done = true;
        self.negotiated = Some(negotiated);
        record.negotiated = Some(negotiated);
        self.out.kex_finished();
        Ok(())
    }

    /// Stops the channels and hangs up.
    fn finish(&mut self, why: &str, record: &mut Record) {
        // Senders waiting at the gate or on the stream stop first, so the
        // commands' threads can end.
        self.out.fail(why);
        self.channels.shutdown(why);
        let _ = self.socket.shutdown(std::net::Shutdown::Both);
        record.bytes_out = self.out.bytes_sent();
    }
}
