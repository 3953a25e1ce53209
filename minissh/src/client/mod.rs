//! The client role: connect, key exchange on the shared transport, host
//! key check, authentication, and one session channel at a time, on the
//! crate's sync Packetizer (its paramiko-shaped face): a reader thread and
//! the threads that send.

pub mod auth;
pub mod channel;
mod data_sender;
pub mod host_check;
pub mod known_hosts;
mod link;
pub(crate) mod reader;
pub mod scp;
mod send_window;

use std::io::{self, Read};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use ssh_packetizer::{Packetizer, RekeyLimits};

use crate::error::{Error, Result};
use crate::identity::Identity;
use crate::msg;
use crate::transport::{algorithms::Preferences, HostKeys, Transport, Verifier};
use crate::wire::{Msg, Reader};
use channel::{Channel, ExitStatus, Sink};
use host_check::{HostKeyCheck, Verdict};
use link::Link;
use reader::{disconnect_message, EventQueue, Info, Notice, ReaderThread};

/// Our identification line.
pub const CLIENT_ID: &str = concat!("SSH-2.0-minissh_", env!("CARGO_PKG_VERSION"));

/// How long the identification exchange, the first key exchange and
/// authentication may take together.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long each later key exchange may take.
const REKEY_DEADLINE: Duration = Duration::from_secs(60);

/// A write to the server that makes no progress for this long fails the
/// connection (a server that stopped reading).
const WRITE_STALL: Duration = Duration::from_secs(60);

/// Everything needed to open a session.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Server name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Remote user.
    pub user: String,
    /// Unencrypted OpenSSH ed25519 private key file.
    pub identity: PathBuf,
    /// Algorithms offered.
    pub prefs: Preferences,
    /// Which host key to accept: by default the keys in
    /// `~/.ssh/known_hosts`, a new host's key recorded there.
    pub host_key: HostKeyCheck,
    /// Byte or time limits after which we start a rekey ourselves.
    pub rekey: Option<RekeyLimits>,
}

impl ClientConfig {
    /// Defaults for `user@host:port` with key file `identity`.
    pub fn new(host: &str, port: u16, user: &str, identity: impl Into<PathBuf>) -> ClientConfig {
        ClientConfig {
            host: host.to_owned(),
            port,
            user: user.to_owned(),
            identity: identity.into(),
            prefs: Preferences::default(),
            host_key: HostKeyCheck::default(),
            rekey: None,
        }
    }
}

/// An authenticated connection.
pub struct Session {
    out: Arc<Link>,
    events: Receiver<Notice>,
    /// Events sent but not yet taken (the reader's bound).
    queued: Arc<AtomicUsize>,
    channels: Arc<channel::Channels>,
    info: Arc<Mutex<Info>>,
    closing: Arc<AtomicBool>,
    reader: Option<JoinHandle<()>>,
    /// A handle on the socket, to wake the reader thread when we hang up.
    socket: TcpStream,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("info", &self.info())
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Connects, exchanges keys, checks the host key and authenticates.
    pub fn connect(config: &ClientConfig) -> Result<Session> {
        let identity = Identity::load(&config.identity)?;
        let addr = format!("{}:{}", config.host, config.port);
        let stream = connect_tcp(&addr)?;
        let socket = stream.try_clone()?;
        let mut client = ssh_packetizer::Config::client().crypto_provider(config.prefs.provider);
        if let Some(limits) = config.rekey {
            client = client.rekey_limits(limits);
        }
        let mut pk = Packetizer::tcp_with_config(stream, client).map_err(Error::Io)?;
        pk.start_handshake(HANDSHAKE_TIMEOUT);
        pk.write_all(format!("{CLIENT_ID}\r\n").as_bytes())?;
        let server_id = pk.read_identification()?;
        let (reader, writer) = pk.split()?;
        writer.set_write_timeout(Some(WRITE_STALL));
        let info = Arc::new(Mutex::new(Info {
            server_id: server_id.as_str().to_owned(),
            ..Info::default()
        }));
        let transport = Transport::new(
            HostKeys::Verify(host_key_verifier(config, info.clone())),
            config.prefs.clone(),
            CLIENT_ID.as_bytes().to_vec(),
            server_id.line.clone(),
        );
        let out = Arc::new(Link::new(writer, transport));
        // Our KEXINIT goes first, before the reader can see the server's.
        out.start_kex()?;

        let (events_tx, events, queued) = EventQueue::new();
        let channels = Arc::new(channel::Channels::default());
        let closing = Arc::new(AtomicBool::new(false));
        let inbound = ReaderThread {
            reader,
            out: out.clone(),
            events: events_tx,
            channels: channels.clone(),
            info: info.clone(),
            initial_done: false,
            closing: closing.clone(),
        };
        let reader = std::thread::Builder::new()
            .name("minissh-reader".into())
            .spawn(move || inbound.run())?;
        let mut session = Session {
            out,
            events,
            queued,
            channels,
            info,
            closing,
            reader: Some(reader),
            socket,
        };
        session.wait_kex()?;
        let session_id = session.info().session_id;
        session.authenticate(&config.user, &identity, &session_id)?;
        session.out.set_rekey_deadline(Some(REKEY_DEADLINE));
        Ok(session)
    }

    /// What is known about the connection.
    pub fn info(&self) -> Info {
        self.info.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn wait_kex(&mut self) -> Result<()> {
        match self.next_event()? {
            Notice::KexDone => Ok(()),
            Notice::Message(m) => Err(Error::Protocol(format!(
                "message {} before the key exchange finished",
                m[0]
            ))),
            Notice::Failed(e) => Err(e),
        }
    }

    fn next_event(&mut self) -> Result<Notice> {
        let event = self.events.recv().map_err(|_| Error::PeerClosed)?;
        self.queued.fetch_sub(1, Ordering::SeqCst);
        Ok(event)
    }

    /// The next connection-layer message, skipping what needs no answer.
    fn next_message(&mut self) -> Result<Vec<u8>> {
        loop {
            match self.next_event()? {
                Notice::KexDone => {}
                Notice::Failed(e) => return Err(e),
                Notice::Message(m) => return Ok(m),
            }
        }
    }

    fn authenticate(&mut self, user: &str, identity: &Identity, session_id: &[u8]) -> Result<()> {
        self.out.send(&auth::service_request())?;
        auth::check_service_accept(&self.next_message()?)?;
        self.out
            .send(&auth::publickey_request(user, identity, session_id))?;
        auth::check_auth_answer(&self.next_message()?)
    }

    /// Opens a session channel and runs `command`; output goes to the sinks.
    pub fn open_exec(&mut self, command: &str, stdout: Sink, stderr: Sink) -> Result<Channel> {
        let shared = self.channels.create(stdout, stderr)?;
        self.out.send(
            &Msg::new(msg::CHANNEL_OPEN)
                .string("session")
                .u32(shared.local_id())
                .u32(channel::WINDOW)
                .u32(channel::MAX_PACKET)
                .finish(),
        )?;
        let reply = self.next_message()?;
        let mut r = Reader::body(&reply);
        match reply[0] {
            msg::CHANNEL_OPEN_CONFIRMATION => {
                let ours = r.u32()?;
                if ours != shared.local_id() {
                    return Err(Error::Protocol(format!(
                        "the server confirmed channel {ours}, not {}",
                        shared.local_id()
                    )));
                }
                let remote = r.u32()?;
                let window = r.u32()?;
                let max_packet = r.u32()?;
                shared.opened(remote, window, max_packet);
            }
            msg::CHANNEL_OPEN_FAILURE => {
                r.u32()?;
                let code = r.u32()?;
                let why = r.text()?;
                return Err(Error::ChannelRefused(format!(
                    "a session channel (reason {code}: {why})"
                )));
            }
            other => {
                return Err(Error::Protocol(format!(
                    "expected a channel open reply, got message {other}"
                )))
            }
        }
        let remote = shared.remote_id().unwrap_or_default();
        let chan = Channel::new(shared, self.out.clone());
        self.out.send(
            &Msg::new(msg::CHANNEL_REQUEST)
                .u32(remote)
                .string("exec")
                .bool(true)
                .string(command)
                .finish(),
        )?;
        let reply = self.next_message()?;
        match reply[0] {
            msg::CHANNEL_SUCCESS => Ok(chan),
            msg::CHANNEL_FAILURE => Err(Error::ChannelRefused(format!("to run `{command}`"))),
            other => Err(Error::Protocol(format!(
                "expected an exec reply, got message {other}"
            ))),
        }
    }

    /// Runs `command` with `stdin` pumped in on a thread of its own, until
    /// the server closes the channel.
    pub fn exec(
        &mut self,
        command: &str,
        stdin: impl Read + Send + 'static,
        stdout: Sink,
        stderr: Sink,
    ) -> Result<ExitStatus> {
        let chan = self.open_exec(command, stdout, stderr)?;
        let mut pump_chan = chan.clone();
        let pump = std::thread::Builder::new()
            .name("minissh-stdin".into())
            .spawn(move || pump_stdin(stdin, &mut pump_chan))?;
        let status = chan.wait();
        // The command may end before reading all its input, or any: then
        // the pump's failure to send is expected, and a pump still blocked
        // on a terminal is left behind (ssh does not wait for stdin
        // either). Only a local read error is worth reporting.
        if pump.is_finished() {
            if let Ok(Err(Error::Io(e))) = pump.join() {
                return Err(Error::Io(e));
            }
        }
        status
    }

    /// Uploads `files` into `remote_dir` over `scp -t`. On an error the
    /// channel is closed and the session stays usable.
    pub fn scp_upload(&mut self, files: &[PathBuf], remote_dir: &str) -> Result<()> {
        let (stdout, stderr, acks) = scp::sinks();
        let chan = self.open_exec(&scp::sink_command(files, remote_dir), stdout, stderr)?;
        scp::upload(chan, acks, files)
    }

    /// Says goodbye and waits for the reader thread.
    pub fn disconnect(mut self) -> Result<()> {
        self.shutdown();
        Ok(())
    }

    fn shutdown(&mut self) {
        self.closing.store(true, Ordering::SeqCst);
        let _ = self.out.disconnect(&disconnect_message());
        let _ = self.socket.shutdown(std::net::Shutdown::Both);
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if self.reader.is_some() {
            self.shutdown();
        }
    }
}

/// Checks the server's key as `config` says (known_hosts, a pinned key or
/// fingerprint), and notes in `info` where a new host's key was recorded.
fn host_key_verifier(config: &ClientConfig, info: Arc<Mutex<Info>>) -> Verifier {
    let (check, host, port) = (config.host_key.clone(), config.host.clone(), config.port);
    Box::new(move |key| {
        if let Verdict::Recorded(path) = check.check(key, &host, port)? {
            info.lock()
                .unwrap_or_else(|e| e.into_inner())
                .host_key_recorded = Some(path);
        }
        Ok(())
    })
}

fn connect_tcp(addr: &str) -> Result<TcpStream> {
    let fail = |source| Error::Connect {
        addr: addr.to_owned(),
        source,
    };
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
    for a in addr.to_socket_addrs().map_err(fail)? {
        match TcpStream::connect_timeout(&a, Duration::from_secs(10)) {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(fail(last))
}

fn pump_stdin(mut stdin: impl Read, chan: &mut Channel) -> Result<()> {
    while chan.send_from(&mut stdin)? > 0 {}
    chan.send_eof()
}
