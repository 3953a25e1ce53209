//! One connection on the server, on its own thread: identification, the
//! key exchanges (the first and every rekey, whoever starts it),
//! authentication, and the channel messages, until the connection ends.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use ssh_packetizer::{CompressionAlgorithm, PacketReader, Packetizer};

use super::auth::{Auth, Step};
use super::channels::Channels;
use super::log::Record;
use super::{Shared, SERVER_ID};
use crate::error::{Error, Result};
use crate::msg;
use crate::outbound::{Outbound, Outgoing};
use crate::transport::{Event, Handled, HostKeys, Transport};
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

struct Conn<'a> {
    shared: &'a Shared,
    reader: PacketReader<TcpStream>,
    out: Arc<Outbound>,
    /// A handle on the socket, to hang up at the end.
    socket: TcpStream,
    /// The first exchange is done (channel traffic may flow).
    initial_done: bool,
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
        let transport = Transport::new(
            HostKeys::Sign(shared.host_key.clone()),
            config.prefs.clone(),
            client_id.line.clone(),
            SERVER_ID.as_bytes().to_vec(),
        );
        let out = Arc::new(Outbound::new(writer, transport));
        out.start_kex()?;
        Ok(Conn {
            shared,
            reader,
            out: out.clone(),
            socket,
            initial_done: false,
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
            if self
                .reader
                .connection()
                .with(|core| core.should_start_kex())
            {
                self.start_rekey()?;
            }
        }
    }

    fn dispatch(&mut self, payload: &[u8], seqno: u32, record: &mut Record) -> Result<()> {
        let (handled, events) = self.out.handle(&mut self.reader, payload, seqno)?;
        if !self.initial_done {
            // Decided by the first KEXINITs; the log says so even when the
            // exchange then fails.
            record.strict_kex = self.out.with_transport(|t| t.is_strict_kex());
        }
        for event in events {
            let Event::KexDone { .. } = event;
            self.initial_done = true;
            self.out.with_transport(|t| {
                let stats = t.stats();
                record.server_rekeys = stats.rekeys_by_us;
                record.client_rekeys = stats.rekeys_by_peer;
                record.negotiated = t.agreed();
            });
        }
        if handled == Handled::Transport {
            return Ok(());
        }
        let msg_type = payload[0];
        match msg_type {
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
        let session_id = self
            .out
            .with_transport(|t| t.session_id().unwrap_or_default().to_vec());
        match self.auth.request(payload, &session_id)? {
            Step::Reply(reply) => self.reply(reply),
            Step::TooManyTries => Err(Error::AuthFailed {
                methods: "too many authentication failures".into(),
            }),
            Step::Success { user, reply } => {
                let n = self.out.with_transport(|t| t.agreed());
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
        if self.out.start_kex()? {
            log::debug!("starting a rekey");
        }
        Ok(())
    }

    /// Stops the channels and hangs up.
    fn finish(&mut self, why: &str, record: &mut Record) {
        // Senders waiting at the gate or on the stream stop first, so the
        // commands' threads can end.
        self.out.fail();
        self.channels.shutdown(why);
        let _ = self.socket.shutdown(std::net::Shutdown::Both);
        record.bytes_out = self.out.bytes_sent();
    }
}
