//! One session channel (RFC 4254 §5-6): flow control both ways, output
//! sinks, EOF, close and the exit status.
//!
//! The reader thread delivers inbound data straight into the sinks (no
//! queue, no copy beyond the sink's own) and keeps the state here; the main
//! thread sends through [`Channel`].

use std::io::{self, Read, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use crate::error::{Error, Result};
use crate::msg;
use crate::outbound::Outbound;
use crate::wire::{Msg, Reader};

/// Our receive window: OpenSSH's session default (64 packets of 32 KiB).
pub const WINDOW: u32 = 2 * 1024 * 1024;
/// The largest data packet we accept and send.
pub const MAX_PACKET: u32 = 32 * 1024;
/// The local channel number (one channel per session here).
pub const LOCAL_ID: u32 = 0;

/// Bytes before the data in CHANNEL_DATA: the message number, the
/// recipient channel and the data's length.
const DATA_HEADER: usize = 9;

/// How the remote command ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    /// It exited with this code.
    Code(u32),
    /// A signal killed it (`TERM`, `KILL`, ...).
    Signal(String),
    /// The channel closed without saying.
    Unknown,
}

/// Where inbound data goes.
pub type Sink = Box<dyn Write + Send>;

#[derive(Default)]
struct State {
    remote_id: Option<u32>,
    send_window: u64,
    remote_max_packet: u32,
    stdout: Option<Sink>,
    stderr: Option<Sink>,
    /// Bytes received since our last window adjust.
    consumed: u32,
    eof_received: bool,
    close_received: bool,
    close_sent: bool,
    exit: Option<ExitStatus>,
    dead: Option<String>,
    /// Senders asleep on `Shared::window`, so a window adjust with nobody
    /// waiting costs no futex call.
    window_waiters: u32,
}

/// Channel state shared by the reader thread and the main thread.
#[derive(Default)]
pub struct Shared {
    state: Mutex<State>,
    /// Senders wait here for window (or for the channel to end).
    window: Condvar,
    /// `Channel::wait` waits here for the close (or a dead connection).
    closed: Condvar,
}

/// Whom a channel message must wake.
#[derive(Clone, Copy, PartialEq)]
enum Wake {
    Nobody,
    Senders,
    Everyone,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("channel::Shared").finish_non_exhaustive()
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Installs the sinks before the channel opens.
    pub fn prepare(&self, stdout: Sink, stderr: Sink) {
        *self.lock() = State {
            stdout: Some(stdout),
            stderr: Some(stderr),
            ..State::default()
        };
    }

    /// The server's number for the channel, once open.
    pub fn remote_id(&self) -> Option<u32> {
        self.lock().remote_id
    }

    /// CHANNEL_OPEN_CONFIRMATION's numbers.
    pub fn opened(&self, remote_id: u32, window: u32, max_packet: u32) {
        let mut s = self.lock();
        s.remote_id = Some(remote_id);
        s.send_window = u64::from(window);
        s.remote_max_packet = max_packet;
    }

    /// Handles a channel message in the reader thread. Returns a reply to
    /// send, if any.
    pub fn on_message(&self, payload: &[u8]) -> Result<Option<Vec<u8>>> {
        let mut r = Reader::body(payload);
        let id = r.u32()?;
        if id != LOCAL_ID {
            return Err(Error::Protocol(format!("message for unknown channel {id}")));
        }
        let mut s = self.lock();
        let Some(remote) = s.remote_id else {
            return Err(Error::Protocol(
                "channel message before the channel opened".into(),
            ));
        };
        let mut reply = None;
        // A notify costs a futex call even with nobody waiting, and the main
        // thread sleeps in `Channel::wait` for the whole session: so data,
        // EOF and the exit status wake nobody, window wakes only a sender
        // that is asleep, and only the close wakes everyone.
        let mut wake = Wake::Nobody;
        match payload[0] {
            msg::CHANNEL_DATA | msg::CHANNEL_EXTENDED_DATA => {
                let stderr = payload[0] == msg::CHANNEL_EXTENDED_DATA && r.u32()? == 1;
                let data = r.string()?;
                let len = data.len() as u32;
                if len > MAX_PACKET {
                    return Err(Error::Protocol(format!(
                        "the server sent {len} bytes of channel data in one packet \
                         (at most {MAX_PACKET} were agreed)"
                    )));
                }
                // Each adjust gives back exactly what was consumed, so the
                // window left to the server is WINDOW - consumed.
                if s.consumed.saturating_add(len) > WINDOW {
                    return Err(Error::Protocol("the server overran our window".into()));
                }
                let sink = if stderr { &mut s.stderr } else { &mut s.stdout };
                if let Some(sink) = sink {
                    sink.write_all(data)?;
                }
                s.consumed += len;
                // Adjust once a quarter of the window is used: the server
                // keeps 1.5 MiB in flight, and a download costs one adjust
                // (a lock, a sealed packet, a syscall) per 16 packets rather
                // than OpenSSH's one per 3, about 3 % of the client's CPU.
                if s.consumed >= WINDOW / 4 {
                    reply = Some(
                        Msg::new(msg::CHANNEL_WINDOW_ADJUST)
                            .u32(remote)
                            .u32(s.consumed)
                            .finish(),
                    );
                    s.consumed = 0;
                }
            }
            msg::CHANNEL_WINDOW_ADJUST => {
                s.send_window = s.send_window.saturating_add(u64::from(r.u32()?));
                if s.window_waiters > 0 {
                    wake = Wake::Senders;
                }
            }
            msg::CHANNEL_EOF => {
                s.eof_received = true;
                Self::flush(&mut s)?;
            }
            msg::CHANNEL_CLOSE => {
                s.close_received = true;
                Self::flush(&mut s)?;
                wake = Wake::Everyone;
                if !s.close_sent {
                    s.close_sent = true;
                    reply = Some(Msg::new(msg::CHANNEL_CLOSE).u32(remote).finish());
                }
            }
            msg::CHANNEL_REQUEST => {
                let kind = r.text()?;
                let want_reply = r.bool()?;
                match kind {
                    "exit-status" => s.exit = Some(ExitStatus::Code(r.u32()?)),
                    "exit-signal" => s.exit = Some(ExitStatus::Signal(r.text()?.to_owned())),
                    _ => {}
                }
                if want_reply {
                    reply = Some(Msg::new(msg::CHANNEL_FAILURE).u32(remote).finish());
                }
            }
            other => {
                return Err(Error::Protocol(format!(
                    "unexpected channel message {other}"
                )));
            }
        }
        drop(s);
        if wake != Wake::Nobody {
            self.window.notify_all();
        }
        if wake == Wake::Everyone {
            self.closed.notify_all();
        }
        Ok(reply)
    }

    fn flush(s: &mut State) -> Result<()> {
        for sink in [&mut s.stdout, &mut s.stderr].into_iter().flatten() {
            sink.flush()?;
        }
        Ok(())
    }

    /// The connection died: wake everyone waiting on this channel.
    pub fn fail(&self, why: &str) {
        let mut s = self.lock();
        if s.dead.is_none() {
            s.dead = Some(why.to_owned());
        }
        drop(s);
        self.window.notify_all();
        self.closed.notify_all();
    }
}

/// The sending end of an open session channel. A clone shares the channel
/// but has its own message buffer, so each sending thread reuses its own.
#[derive(Clone, Debug)]
pub struct Channel {
    shared: Arc<Shared>,
    out: Arc<Outbound>,
    /// CHANNEL_DATA messages are built here: allocated and zeroed once at a
    /// full packet, each message then uses a prefix of it.
    payload: Vec<u8>,
}

impl Channel {
    pub(crate) fn new(shared: Arc<Shared>, out: Arc<Outbound>) -> Channel {
        Channel {
            shared,
            out,
            payload: vec![0; DATA_HEADER + MAX_PACKET as usize],
        }
    }

    /// Sends `data`, split to the server's packet size, waiting for window.
    pub fn write(&mut self, mut data: &[u8]) -> Result<()> {
        while !data.is_empty() {
            let (remote, n) = self.reserve_window(data.len())?;
            self.payload[DATA_HEADER..DATA_HEADER + n].copy_from_slice(&data[..n]);
            self.send_data(remote, n)?;
            data = &data[n..];
        }
        Ok(())
    }

    /// Reads once from `src` straight into a CHANNEL_DATA message and sends
    /// it, without an intermediate buffer: an upload's bytes are copied by
    /// the read and by the Sealer, and nowhere else. Returns the number of
    /// bytes sent; 0 means `src` is at its end.
    pub fn send_from(&mut self, src: &mut impl Read) -> Result<usize> {
        let (remote, room) = self.reserve_window(MAX_PACKET as usize)?;
        let read = loop {
            match src.read(&mut self.payload[DATA_HEADER..DATA_HEADER + room]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        // Whatever the read did not fill goes back to the window first, so
        // a failed or short read never leaks window.
        let n = *read.as_ref().unwrap_or(&0);
        self.return_window(room - n);
        let n = read?;
        if n > 0 {
            self.send_data(remote, n)?;
        }
        Ok(n)
    }

    /// Waits until the server grants window, then takes up to `want` bytes
    /// of it (at most one packet's worth). Returns the server's channel id
    /// and the bytes taken.
    fn reserve_window(&self, want: usize) -> Result<(u32, usize)> {
        let mut s = self.shared.lock();
        loop {
            if let Some(why) = &s.dead {
                return Err(Error::Protocol(why.clone()));
            }
            if s.close_received {
                return Err(Error::ChannelRefused(
                    "more data: the channel is closed".into(),
                ));
            }
            if s.send_window > 0 {
                break;
            }
            s.window_waiters += 1;
            s = self
                .shared
                .window
                .wait(s)
                .unwrap_or_else(|e| e.into_inner());
            s.window_waiters -= 1;
        }
        let max = s.remote_max_packet.clamp(1, MAX_PACKET) as usize;
        let n = want.min(max).min(s.send_window as usize);
        s.send_window -= n as u64;
        Ok((s.remote_id.unwrap_or_default(), n))
    }

    /// Gives back window taken by `reserve_window` but not used.
    fn return_window(&self, unused: usize) {
        if unused > 0 {
            self.shared.lock().send_window += unused as u64;
        }
    }

    /// Fills in the header of the CHANNEL_DATA message whose `len` data
    /// bytes are already in `payload`, and sends it.
    fn send_data(&mut self, remote: u32, len: usize) -> Result<()> {
        self.payload[0] = msg::CHANNEL_DATA;
        self.payload[1..5].copy_from_slice(&remote.to_be_bytes());
        self.payload[5..9].copy_from_slice(&(len as u32).to_be_bytes());
        self.out.send(&self.payload[..DATA_HEADER + len])
    }

    /// Sends EOF: no more data from us.
    pub fn send_eof(&self) -> Result<()> {
        let remote = self.shared.lock().remote_id.unwrap_or_default();
        self.out
            .send(&Msg::new(msg::CHANNEL_EOF).u32(remote).finish())
    }

    /// Waits until the server closes the channel; returns the exit status.
    pub fn wait(&self) -> Result<ExitStatus> {
        let mut s = self.shared.lock();
        while !s.close_received {
            if let Some(why) = &s.dead {
                return Err(Error::Protocol(why.clone()));
            }
            s = self
                .shared
                .closed
                .wait(s)
                .unwrap_or_else(|e| e.into_inner());
        }
        Ok(s.exit.clone().unwrap_or(ExitStatus::Unknown))
    }

    /// Whether the server has sent EOF or closed.
    pub fn eof_received(&self) -> bool {
        let s = self.shared.lock();
        s.eof_received || s.close_received
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kex::Preferences;
    use ssh_packetizer::Packetizer;
    use std::net::{TcpListener, TcpStream};

    const REMOTE: u32 = 5;

    /// A channel whose messages go to a loopback socket, and the
    /// Packetizer that reads them on the other end.
    fn channel(window: u32) -> (Channel, Arc<Shared>, Packetizer<TcpStream>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let ours = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let theirs = Packetizer::tcp(listener.accept().unwrap().0).unwrap();
        let (_reader, writer) = Packetizer::tcp(ours).unwrap().split().unwrap();
        let shared = Arc::new(Shared::default());
        shared.opened(REMOTE, window, MAX_PACKET);
        let out = Arc::new(Outbound::new(writer, Preferences::default()));
        (Channel::new(shared.clone(), out), shared, theirs)
    }

    fn data_message(data: &[u8]) -> Vec<u8> {
        Msg::new(msg::CHANNEL_DATA)
            .u32(REMOTE)
            .string(data)
            .finish()
    }

    /// The next message the peer reads is CHANNEL_DATA carrying `data`.
    fn expect_data(peer: &mut Packetizer<TcpStream>, data: &[u8]) {
        assert_eq!(peer.read_message().unwrap().payload(), data_message(data));
    }

    fn window(shared: &Shared) -> u64 {
        shared.lock().send_window
    }

    /// Waits for `what` to hold of the channel state. A sender that is
    /// never woken fails the test here instead of hanging it (the peer's
    /// `read_message` would wait for ever).
    fn eventually(shared: &Shared, what: &str, holds: impl Fn(&State) -> bool) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !holds(&shared.lock()) {
            assert!(std::time::Instant::now() < deadline, "never: {what}");
            std::thread::yield_now();
        }
    }

    /// Gives `chunks` one read at a time, then an error if `fail`, else EOF.
    struct Reads {
        chunks: Vec<Vec<u8>>,
        fail: bool,
    }

    impl Read for Reads {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.chunks.is_empty() {
                return match self.fail {
                    true => Err(io::Error::other("stdin broke")),
                    false => Ok(0),
                };
            }
            let chunk = self.chunks.remove(0);
            assert!(chunk.len() <= buf.len(), "a read larger than asked for");
            buf[..chunk.len()].copy_from_slice(&chunk);
            Ok(chunk.len())
        }
    }

    #[test]
    fn send_from_sends_what_was_read_and_returns_the_rest_of_the_window() {
        let (mut chan, shared, mut peer) = channel(100_000);
        let mut src = Reads {
            chunks: vec![vec![1; 40], vec![2; 7]],
            fail: true,
        };
        assert_eq!(chan.send_from(&mut src).unwrap(), 40);
        assert_eq!(window(&shared), 100_000 - 40);
        assert_eq!(chan.send_from(&mut src).unwrap(), 7);
        assert_eq!(window(&shared), 100_000 - 47);
        // A failed read sends nothing and keeps all of the window.
        assert!(matches!(chan.send_from(&mut src), Err(Error::Io(_))));
        assert_eq!(window(&shared), 100_000 - 47);
        expect_data(&mut peer, &[1; 40]);
        expect_data(&mut peer, &[2; 7]);
        // And at the end, nothing is sent and the window is whole.
        let mut done = Reads {
            chunks: vec![],
            fail: false,
        };
        assert_eq!(chan.send_from(&mut done).unwrap(), 0);
        assert_eq!(window(&shared), 100_000 - 47);
    }

    #[test]
    fn send_from_reads_no_more_than_the_window_allows() {
        let (mut chan, shared, mut peer) = channel(10);
        let mut src = Reads {
            chunks: vec![vec![3; 10]],
            fail: false,
        };
        assert_eq!(chan.send_from(&mut src).unwrap(), 10);
        assert_eq!(window(&shared), 0);
        expect_data(&mut peer, &[3; 10]);
    }

    #[test]
    fn a_window_adjust_wakes_a_sender_waiting_for_window() {
        let (mut chan, shared, mut peer) = channel(0);
        let sender = std::thread::spawn(move || chan.write(&[4; 50]));
        // Each adjust goes in only once the sender is asleep on the window,
        // so it must wake the sender rather than be seen before it sleeps.
        let asleep = |s: &State| s.window_waiters == 1;
        let adjust = Msg::new(msg::CHANNEL_WINDOW_ADJUST)
            .u32(LOCAL_ID)
            .u32(30)
            .finish();
        eventually(&shared, "the sender waits", asleep);
        assert_eq!(shared.on_message(&adjust).unwrap(), None);
        eventually(&shared, "30 bytes sent", |s| {
            s.send_window == 0 && asleep(s)
        });
        shared.on_message(&adjust).unwrap();
        eventually(&shared, "the rest sent", |s| s.send_window == 10);
        sender.join().unwrap().unwrap();
        expect_data(&mut peer, &[4; 30]);
        expect_data(&mut peer, &[4; 20]);
    }

    #[test]
    fn the_close_wakes_a_sender_waiting_for_window() {
        let (mut chan, shared, _peer) = channel(0);
        let sender = std::thread::spawn(move || chan.write(&[5; 50]));
        eventually(&shared, "the sender waits", |s| s.window_waiters == 1);
        let close = Msg::new(msg::CHANNEL_CLOSE).u32(LOCAL_ID).finish();
        assert!(
            shared.on_message(&close).unwrap().is_some(),
            "our CLOSE reply"
        );
        eventually(&shared, "the sender woke", |s| s.window_waiters == 0);
        assert!(matches!(
            sender.join().unwrap(),
            Err(Error::ChannelRefused(_))
        ));
    }

    /// A sink the test can read back.
    #[derive(Clone, Default)]
    struct Collected(Arc<Mutex<Vec<u8>>>);

    impl Write for Collected {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn incoming_data(data: &[u8]) -> Vec<u8> {
        Msg::new(msg::CHANNEL_DATA)
            .u32(LOCAL_ID)
            .string(data)
            .finish()
    }

    #[test]
    fn data_reaches_its_sink_and_is_adjusted_every_quarter_window() {
        let shared = Shared::default();
        let (stdout, stderr) = (Collected::default(), Collected::default());
        shared.prepare(Box::new(stdout.clone()), Box::new(stderr.clone()));
        shared.opened(REMOTE, 0, MAX_PACKET);
        let packet = vec![7u8; MAX_PACKET as usize];
        let adjust = Msg::new(msg::CHANNEL_WINDOW_ADJUST)
            .u32(REMOTE)
            .u32(WINDOW / 4)
            .finish();
        let mut adjusts = 0;
        for i in 1..=64 {
            if let Some(reply) = shared.on_message(&incoming_data(&packet)).unwrap() {
                assert_eq!(i % 16, 0, "an adjust after packet {i}");
                assert_eq!(reply, adjust);
                adjusts += 1;
            }
        }
        // 64 packets are the whole window: without the adjusts the server
        // would have been stopped at packet 64 for good.
        assert_eq!(adjusts, 4);
        assert_eq!(stdout.0.lock().unwrap().len(), 64 * packet.len());
        let stderr_data = Msg::new(msg::CHANNEL_EXTENDED_DATA)
            .u32(LOCAL_ID)
            .u32(1)
            .string(b"oops")
            .finish();
        shared.on_message(&stderr_data).unwrap();
        assert_eq!(&stderr.0.lock().unwrap()[..], b"oops");
    }

    #[test]
    fn a_data_packet_larger_than_agreed_is_refused() {
        let shared = Shared::default();
        shared.opened(REMOTE, 0, MAX_PACKET);
        let largest = vec![7u8; MAX_PACKET as usize];
        assert_eq!(shared.on_message(&incoming_data(&largest)).unwrap(), None);
        let too_big = vec![7u8; MAX_PACKET as usize + 1];
        let err = shared.on_message(&incoming_data(&too_big)).unwrap_err();
        assert_eq!(
            err.to_string(),
            Error::Protocol(
                "the server sent 32769 bytes of channel data in one packet \
                 (at most 32768 were agreed)"
                    .into()
            )
            .to_string()
        );
    }
}
