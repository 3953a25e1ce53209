//! One connection on the server, as one tokio task: identification, the
//! transport (key exchanges, the first and every rekey, whoever starts
//! it), authentication, and the session channels, until the connection
//! ends.
//!
//! The task waits on three things at once: the next packet (the crate's
//! reader, which also writes what was sealed and runs the timers: login
//! grace, keepalive, key age), the commands' pipes and exits
//! ([`Channels::poll_io`]), and the write stall limit.

use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ssh_packetizer::tokio::{PacketReader, Packetizer};
use ssh_packetizer::CompressionAlgorithm;
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::auth::{Auth, Step};
use super::channels::Channels;
use super::log::Record;
use super::output::{Output, Watched, Writer};
use super::throttle::Startup;
use super::{Shared, SERVER_ID};
use crate::error::{Error, Result};
use crate::msg;
use crate::transport::{Handled, HostKeys, InboundChange, KexDone, Transmit, Transport};
use crate::wire::{Msg, Reader};

/// SSH_DISCONNECT_PROTOCOL_ERROR.
const PROTOCOL_ERROR: u32 = 2;
/// SSH_DISCONNECT_SERVICE_NOT_AVAILABLE.
const SERVICE_NOT_AVAILABLE: u32 = 7;
/// SSH_DISCONNECT_NO_MORE_AUTH_METHODS_AVAILABLE.
const NO_MORE_AUTH_METHODS: u32 = 14;

/// How long a DISCONNECT may take to go out before we hang up anyway.
const DISCONNECT_WAIT: Duration = Duration::from_secs(1);

/// Serves one connection to its end; returns what the log says about it.
pub(super) async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    startup: Startup,
) -> Record {
    let mut record = Record::new(peer);
    let mut channels = Channels::new();
    let result = run(stream, &shared, startup, &mut record, &mut channels).await;
    channels.shutdown().await;
    record.commands = std::mem::take(&mut channels.commands);
    record.end = describe_end(result, &shared, record.user.is_some());
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

/// Identification, then the connection's loop; on an error that is ours
/// to explain, a DISCONNECT saying why.
async fn run(
    stream: TcpStream,
    shared: &Shared,
    startup: Startup,
    record: &mut Record,
    channels: &mut Channels,
) -> Result<()> {
    let config = &shared.config;
    let mut core = ssh_packetizer::Config::server().crypto_provider(config.prefs.provider);
    if let Some(limits) = config.rekey {
        core = core.rekey_limits(limits);
    }
    let mut p = Packetizer::with_config(stream, core);
    // The login grace time covers everything up to USERAUTH_SUCCESS, the
    // identification line included: a client that drips bytes is cut off
    // like one that sends nothing.
    p.start_handshake(config.login_grace);
    p.send_identification(SERVER_ID).await?;
    let client_id = p.read_identification().await?;
    record.client_id = client_id.as_str().to_owned();
    let written = Arc::new(AtomicU64::new(0));
    let counted = written.clone();
    let (reader, writer) = p.split_with(move |s: TcpStream| {
        let (r, w) = s.into_split();
        (r, Watched::new(w, counted))
    });
    let transport = Transport::new(
        HostKeys::Sign(shared.host_key.clone()),
        config.prefs.clone(),
        client_id.line,
        SERVER_ID.as_bytes().to_vec(),
    );
    let mut conn = Conn {
        shared,
        out: Output::new(writer),
        transport,
        startup: Some(startup),
        service_accepted: false,
        auth: Auth::new(&config.authorized_keys),
        user: None,
        keepalives: Arc::new(AtomicU32::new(0)),
        keepalive_started: false,
        compression_due: false,
        rekey_deadline_running: false,
        written,
    };
    let result = conn.run(reader, record, channels).await;
    if let Err(e) = &result {
        // Tell the client why, where that is ours to say.
        let code = match e {
            Error::Protocol(_) | Error::NoCommonAlgorithm { .. } => Some(PROTOCOL_ERROR),
            Error::AuthFailed { .. } => Some(NO_MORE_AUTH_METHODS),
            Error::ChannelRefused(_) => Some(SERVICE_NOT_AVAILABLE),
            _ => None,
        };
        if let Some(code) = code {
            let why = e.to_string();
            let bye = conn.out.writer().disconnect(code, &why);
            let _ = tokio::time::timeout(DISCONNECT_WAIT, bye).await;
        }
    }
    record.bytes_out = conn.out.payload_bytes();
    result
}

struct Conn<'a> {
    shared: &'a Shared,
    out: Output,
    transport: Transport,
    /// Counted among the unauthenticated connections until authentication
    /// succeeds.
    startup: Option<Startup>,
    service_accepted: bool,
    auth: Auth,
    user: Option<String>,
    /// Keepalives sent and not yet answered.
    keepalives: Arc<AtomicU32>,
    keepalive_started: bool,
    /// zlib@openssh.com starts right after our NEWKEYS: USERAUTH_SUCCESS
    /// was held by a key exchange, and must go out uncompressed.
    compression_due: bool,
    /// A rekey's deadline is running.
    rekey_deadline_running: bool,
    /// Bytes written to the socket.
    written: Arc<AtomicU64>,
}

impl Conn<'_> {
    fn writer(&self) -> &Writer {
        self.out.writer()
    }

    /// Reads and answers until the connection ends.
    async fn run(
        &mut self,
        mut reader: PacketReader<OwnedReadHalf>,
        record: &mut Record,
        channels: &mut Channels,
    ) -> Result<()> {
        self.start_kex()?;
        let stall = self.shared.config.write_stall;
        let mut stall_deadline = Instant::now() + stall;
        let mut written_seen = 0;
        loop {
            if self.writer().connection().with(|c| c.should_start_kex()) {
                log::debug!("starting a rekey");
                self.start_kex()?;
            }
            let pending = self.out.has_pending_output();
            tokio::select! {
                // The read first: it also writes what is pending.
                biased;
                packet = reader.read_message() => {
                    let packet = match packet {
                        Ok(packet) => packet,
                        // A rekey became wanted with no packet in hand (a
                        // key age limit, or our output's budget): the
                        // check below starts it.
                        Err(ssh_packetizer::Error::NeedRekey) => continue,
                        Err(e) => return Err(e.into()),
                    };
                    let (msg_type, seqno) = (packet.msg_type(), packet.seqno());
                    record.bytes_in += packet.payload().len() as u64;
                    if self.user.is_some() && is_channel_traffic(msg_type) {
                        // The bulk of a session, straight from the
                        // reader's buffer.
                        channels.on_message(packet.payload(), &self.out)?;
                    } else {
                        // The transport's messages may switch the reader's
                        // keys: these few are copied out of its buffer.
                        let payload = packet.payload().to_vec();
                        self.dispatch(&payload, seqno, record, channels)?;
                        self.apply_inbound(&mut reader)?;
                        if self.user.is_some() && !self.keepalive_started {
                            self.start_keepalive(&mut reader);
                        }
                    }
                }
                done = poll_fn(|cx| channels.poll_io(cx, &self.out, self.user.is_some())) => done?,
                _ = tokio::time::sleep_until(stall_deadline), if pending => {
                    let written = self.written.load(Ordering::Relaxed);
                    if written == written_seen {
                        // The crate's own words for a stalled write.
                        return Err(Error::Packet(ssh_packetizer::Error::WriteStalled {
                            waited: stall,
                        }));
                    }
                    written_seen = written;
                    stall_deadline = Instant::now() + stall;
                }
            }
            if !pending {
                // The stall limit counts from when output starts waiting.
                written_seen = self.written.load(Ordering::Relaxed);
                stall_deadline = Instant::now() + stall;
            }
        }
    }

    /// Starts a key exchange unless one is under way.
    fn start_kex(&mut self) -> Result<()> {
        self.transport.start_kex()?;
        self.transmit()
    }

    /// Seals what the transport has to send, and runs a rekey's deadline.
    fn transmit(&mut self) -> Result<()> {
        while let Some(transmit) = self.transport.poll_transmit() {
            let writer = self.out.writer();
            match transmit {
                Transmit::Message(m) => {
                    writer.connection().with(|core| core.send_message(&m))?;
                    self.out.count(m.len());
                }
                Transmit::NewKeys(keys) => {
                    let due = std::mem::take(&mut self.compression_due);
                    writer.connection().with_now(|core, now| {
                        // What was held (USERAUTH_SUCCESS among it) is
                        // sealed with NEWKEYS; compression starts after.
                        let sent = core.send_newkeys(keys, now);
                        if due {
                            core.start_delayed_compression();
                        }
                        sent
                    })?;
                    self.out.count(1);
                }
            }
        }
        self.run_rekey_deadline();
        Ok(())
    }

    /// Starts the rekey deadline when a rekey is under way after
    /// authentication: a client that stops answering mid-exchange gets no
    /// keepalives (none go out during a kex). Before authentication the
    /// login grace time, the same timer, covers every exchange.
    fn run_rekey_deadline(&mut self) {
        let t = &self.transport;
        if self.user.is_some() && t.is_kex_in_progress() && !self.rekey_deadline_running {
            self.writer()
                .connection()
                .start_handshake(self.shared.config.kex_deadline);
            self.rekey_deadline_running = true;
        }
    }

    /// Makes the transport's changes to the receiving side.
    fn apply_inbound(&mut self, reader: &mut PacketReader<OwnedReadHalf>) -> Result<()> {
        while let Some(change) = self.transport.poll_inbound() {
            match change {
                InboundChange::StrictKex(on) => {
                    reader.connection().with(|core| core.set_strict_kex(on))
                }
                InboundChange::Keys(keys) => reader.set_inbound_cipher(keys)?,
            }
        }
        Ok(())
    }

    fn dispatch(
        &mut self,
        payload: &[u8],
        seqno: u32,
        record: &mut Record,
        channels: &mut Channels,
    ) -> Result<()> {
        let handled = self.transport.handle(payload, seqno)?;
        self.transmit()?;
        record.strict_kex = self.transport.is_strict_kex();
        while let Some(KexDone { initial, .. }) = self.transport.poll_kex_done() {
            if !initial && std::mem::take(&mut self.rekey_deadline_running) {
                self.writer().connection().complete_handshake();
            }
            let stats = self.transport.stats();
            record.server_rekeys = stats.rekeys_by_us;
            record.client_rekeys = stats.rekeys_by_peer;
            record.negotiated = self.transport.agreed();
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
                self.out.reply(&accept)
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
                    self.out.reply(&[msg::REQUEST_FAILURE])?;
                }
                Ok(())
            }
            msg::REQUEST_SUCCESS | msg::REQUEST_FAILURE => {
                // The answer to a keepalive: the client is there.
                self.keepalives.store(0, Ordering::SeqCst);
                Ok(())
            }
            msg::CHANNEL_OPEN => {
                let reply = channels.on_open(payload)?;
                self.out.reply(&reply)
            }
            msg::CHANNEL_WINDOW_ADJUST
            | msg::CHANNEL_DATA
            | msg::CHANNEL_EXTENDED_DATA
            | msg::CHANNEL_EOF
            | msg::CHANNEL_CLOSE
            | msg::CHANNEL_REQUEST
            | msg::CHANNEL_SUCCESS
            | msg::CHANNEL_FAILURE => channels.on_message(payload, &self.out),
            _ => {
                // RFC 4253 §11.4.
                let reply = Msg::new(msg::UNIMPLEMENTED).u32(seqno).finish();
                self.out.reply(&reply)
            }
        }
    }

    fn on_userauth(&mut self, payload: &[u8], record: &mut Record) -> Result<()> {
        let session_id = self.transport.session_id().unwrap_or_default().to_vec();
        match self.auth.request(payload, &session_id)? {
            Step::Reply(reply) => self.out.reply(&reply),
            Step::TooManyTries => Err(Error::AuthFailed {
                methods: "too many authentication failures".into(),
            }),
            Step::Success { user, reply } => {
                let agreed = self.transport.agreed();
                self.out.reply(&reply)?;
                let delayed = |c: CompressionAlgorithm| c == CompressionAlgorithm::ZlibOpenSsh;
                if agreed.is_some_and(|a| delayed(a.comp_s2c) || delayed(a.comp_c2s)) {
                    // We compress from the packet after USERAUTH_SUCCESS,
                    // the client from its next packet on (after reading
                    // it): now, or after our NEWKEYS if a key exchange
                    // holds it.
                    let held = self.writer().connection().with(|core| {
                        let held = core.held_bytes() > 0;
                        if !held {
                            core.start_delayed_compression();
                        }
                        held
                    });
                    self.compression_due = held;
                }
                // The login grace time is over; a rekey under way now gets
                // the rekey deadline instead.
                self.writer().connection().complete_handshake();
                // No longer among the unauthenticated (MaxStartups).
                if let Some(startup) = self.startup.take() {
                    startup.authenticated();
                }
                record.user = Some(user.clone());
                self.user = Some(user);
                self.run_rekey_deadline();
                Ok(())
            }
        }
    }

    /// Keepalives start with the session, as sshd's do: before
    /// authentication a client may not answer a global request (OpenSSH's
    /// treats one as a protocol error then).
    fn start_keepalive(&mut self, reader: &mut PacketReader<OwnedReadHalf>) {
        let config = &self.shared.config;
        let Some(interval) = config.keepalive else {
            return;
        };
        self.keepalive_started = true;
        let (pending, max) = (self.keepalives.clone(), config.keepalive_max);
        reader.set_keepalive(Some(interval), move |send| {
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
}

/// Data and window adjusts: the messages that are most of a session.
fn is_channel_traffic(msg_type: u8) -> bool {
    matches!(
        msg_type,
        msg::CHANNEL_DATA | msg::CHANNEL_EXTENDED_DATA | msg::CHANNEL_WINDOW_ADJUST
    )
}
