//! One session channel on the client (RFC 4254 §5-6): output sinks, flow
//! control both ways, EOF, close and the exit status; and the table that
//! routes the server's channel messages, which never reuses a channel
//! number while the server's end of it may still be open.
//!
//! The reader thread delivers inbound data straight into the sinks (no
//! queue, no copy beyond the sink's own) and keeps the state here; the main
//! thread sends through [`Channel`].

use std::io::{Read, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::data_sender::DataSender;
use super::send_window::SendWindow;
use crate::client::link::{Link, Outgoing};
use crate::error::{Error, Result};
use crate::flow::{adjust_message, check_data_len, due_adjust};
pub use crate::flow::{MAX_PACKET, WINDOW};
use crate::msg;
use crate::wire::{Msg, Reader};

/// How long [`Channel::close`] waits for the server's CLOSE.
const CLOSE_WAIT: Duration = Duration::from_secs(10);

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
    stdout: Option<Sink>,
    stderr: Option<Sink>,
    /// Bytes received since our last window adjust.
    consumed: u32,
    eof_received: bool,
    close_received: bool,
    exit: Option<ExitStatus>,
    dead: Option<String>,
}

/// One channel's state, shared by the reader thread and the main thread.
pub struct Shared {
    local_id: u32,
    state: Mutex<State>,
    /// `Channel::wait` waits here for the close (or a dead connection).
    closed: Condvar,
    /// What the server lets us send.
    window: Arc<SendWindow>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("channel::Shared")
            .field("local_id", &self.local_id)
            .finish_non_exhaustive()
    }
}

impl Shared {
    fn new(local_id: u32, stdout: Sink, stderr: Sink) -> Shared {
        Shared {
            local_id,
            state: Mutex::new(State {
                stdout: Some(stdout),
                stderr: Some(stderr),
                ..State::default()
            }),
            closed: Condvar::new(),
            window: Arc::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Our number for the channel.
    pub fn local_id(&self) -> u32 {
        self.local_id
    }

    /// The server's number for the channel, once open.
    pub fn remote_id(&self) -> Option<u32> {
        self.window.remote_id()
    }

    /// CHANNEL_OPEN_CONFIRMATION's numbers.
    pub fn opened(&self, remote_id: u32, window: u32, max_packet: u32) {
        self.window.open(remote_id, window, max_packet);
    }

    /// Handles a message for this channel in the reader thread (`r` is past
    /// the recipient id). Returns a reply to send, if any.
    fn on_message(&self, msg_type: u8, mut r: Reader<'_>) -> Result<Option<Outgoing>> {
        let Some(remote) = self.window.remote_id() else {
            return Err(Error::Protocol(
                "channel message before the channel opened".into(),
            ));
        };
        let mut s = self.lock();
        let mut reply = None;
        // A notify costs a futex call even with nobody waiting, and the main
        // thread sleeps in `Channel::wait` for the whole session: so data,
        // EOF and the exit status wake nobody; only the close does.
        let mut wake = false;
        match msg_type {
            msg::CHANNEL_DATA | msg::CHANNEL_EXTENDED_DATA => {
                let stderr = msg_type == msg::CHANNEL_EXTENDED_DATA && r.u32()? == 1;
                let data = r.string()?;
                let len = data.len() as u32;
                check_data_len(len, "server")?;
                // Each adjust gives back exactly what was consumed, so the
                // window left to the server is WINDOW - consumed.
                if s.consumed.saturating_add(len) > WINDOW {
                    return Err(Error::Protocol("the server overran our window".into()));
                }
                let sink = if stderr { &mut s.stderr } else { &mut s.stdout };
                if let Some(sink) = sink {
                    sink.write_all(data)?;
                }
                if let Some(bytes) = due_adjust(&mut s.consumed, len) {
                    reply = Some(self.on_channel(adjust_message(remote, bytes)));
                }
            }
            msg::CHANNEL_WINDOW_ADJUST => self.window.grant(r.u32()?),
            msg::CHANNEL_EOF => {
                s.eof_received = true;
                Self::flush(&mut s)?;
            }
            msg::CHANNEL_CLOSE => {
                s.close_received = true;
                Self::flush(&mut s)?;
                self.window.close();
                wake = true;
                // Sealed only if we have not sent ours yet.
                reply = Some(Outgoing::close(
                    self.window.clone(),
                    Msg::new(msg::CHANNEL_CLOSE).u32(remote).finish(),
                ));
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
                    reply =
                        Some(self.on_channel(Msg::new(msg::CHANNEL_FAILURE).u32(remote).finish()));
                }
            }
            other => {
                return Err(Error::Protocol(format!(
                    "unexpected channel message {other}"
                )));
            }
        }
        drop(s);
        if wake {
            self.closed.notify_all();
        }
        Ok(reply)
    }

    fn on_channel(&self, payload: Vec<u8>) -> Outgoing {
        Outgoing::on(self.window.clone(), payload)
    }

    fn flush(s: &mut State) -> Result<()> {
        for sink in [&mut s.stdout, &mut s.stderr].into_iter().flatten() {
            sink.flush()?;
        }
        Ok(())
    }

    /// The connection died: wake everyone waiting on this channel.
    fn fail(&self, why: &str) {
        let mut s = self.lock();
        if s.dead.is_none() {
            s.dead = Some(why.to_owned());
        }
        drop(s);
        self.window.fail(why);
        self.closed.notify_all();
    }

    /// Whether the server's end is closed.
    fn close_received(&self) -> bool {
        self.lock().close_received
    }
}

#[derive(Default)]
struct Table {
    /// The channel in use.
    current: Option<Arc<Shared>>,
    /// Earlier channels whose CLOSE from the server has not come yet: their
    /// numbers stay taken, and their late messages go nowhere.
    retired: Vec<Arc<Shared>>,
    /// The number the next channel gets.
    next_id: u32,
    dead: Option<String>,
}

/// Every channel of a session, by our channel number.
#[derive(Default)]
pub struct Channels {
    table: Mutex<Table>,
}

impl std::fmt::Debug for Channels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channels").finish_non_exhaustive()
    }
}

impl Channels {
    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new channel with a number no open channel has, sending its output
    /// to the sinks; the previous one is retired.
    pub fn create(&self, stdout: Sink, stderr: Sink) -> Result<Arc<Shared>> {
        let mut t = self.lock();
        if let Some(why) = &t.dead {
            return Err(Error::Protocol(why.clone()));
        }
        if let Some(old) = t.current.take() {
            // A channel the server never confirmed has no server end.
            if !old.close_received() && old.remote_id().is_some() {
                // Its output is moot now; drop the sinks so nothing more is
                // written to them.
                let mut s = old.lock();
                s.stdout = None;
                s.stderr = None;
                drop(s);
                t.retired.push(old);
            }
        }
        let mut id = t.next_id;
        while t.retired.iter().any(|c| c.local_id == id) {
            id = id.wrapping_add(1);
        }
        t.next_id = id.wrapping_add(1);
        let shared = Arc::new(Shared::new(id, stdout, stderr));
        t.current = Some(shared.clone());
        Ok(shared)
    }

    /// Handles a channel message in the reader thread. Returns a reply to
    /// send, if any.
    pub fn on_message(&self, payload: &[u8]) -> Result<Option<Outgoing>> {
        let mut r = Reader::body(payload);
        let id = r.u32()?;
        let mut t = self.lock();
        let chan = match &t.current {
            Some(c) if c.local_id == id => c.clone(),
            _ => match t.retired.iter().position(|c| c.local_id == id) {
                Some(i) if payload[0] == msg::CHANNEL_CLOSE => t.retired.swap_remove(i),
                Some(i) => t.retired[i].clone(),
                None => return Err(Error::Protocol(format!("message for unknown channel {id}"))),
            },
        };
        drop(t);
        chan.on_message(payload[0], r)
    }

    /// The connection died: wake everyone waiting on any channel.
    pub fn fail(&self, why: &str) {
        let mut t = self.lock();
        if t.dead.is_none() {
            t.dead = Some(why.to_owned());
        }
        let all: Vec<_> = t.current.iter().chain(&t.retired).cloned().collect();
        drop(t);
        for chan in all {
            chan.fail(why);
        }
    }

    /// Channels whose server end may still be open, the current one
    /// included.
    pub fn open_count(&self) -> usize {
        let t = self.lock();
        t.retired.len() + usize::from(t.current.as_ref().is_some_and(|c| !c.close_received()))
    }
}

/// The sending end of an open session channel. A clone shares the channel
/// but has its own message buffer, so each sending thread reuses its own.
#[derive(Clone, Debug)]
pub struct Channel {
    shared: Arc<Shared>,
    data: DataSender,
}

impl Channel {
    pub(crate) fn new(shared: Arc<Shared>, out: Arc<Link>) -> Channel {
        let data = DataSender::new(shared.window.clone(), out);
        Channel { shared, data }
    }

    /// Sends `data`, split to the server's packet size, waiting for window.
    pub fn write(&mut self, data: &[u8]) -> Result<()> {
        self.data.write(data)
    }

    /// Reads once from `src` straight into a CHANNEL_DATA message and sends
    /// it, without an intermediate buffer. Returns the number of bytes
    /// sent; 0 means `src` is at its end.
    pub fn send_from(&mut self, src: &mut impl Read) -> Result<usize> {
        self.data.send_from(src)
    }

    fn remote(&self) -> u32 {
        self.shared.remote_id().unwrap_or_default()
    }

    /// Sends EOF: no more data from us.
    pub fn send_eof(&self) -> Result<()> {
        let eof = Msg::new(msg::CHANNEL_EOF).u32(self.remote()).finish();
        self.data
            .outbound()
            .send_on(Some(&self.shared.window), &eof, false)
    }

    /// Closes the channel from our side and waits (a few seconds at most)
    /// for the server's CLOSE, so the session can go on with a new channel.
    pub fn close(&self) -> Result<()> {
        let close = Msg::new(msg::CHANNEL_CLOSE).u32(self.remote()).finish();
        // Sealed only if we have not sent ours yet (a refusal says so).
        let _ = self
            .data
            .outbound()
            .send_on(Some(&self.shared.window), &close, true);
        let mut s = self.shared.lock();
        let deadline = Instant::now() + CLOSE_WAIT;
        while !s.close_received {
            if let Some(why) = &s.dead {
                return Err(Error::Protocol(why.clone()));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                // The table keeps the number taken until the CLOSE comes.
                return Err(Error::Protocol(
                    "the server did not answer our channel close".into(),
                ));
            }
            s = self
                .shared
                .closed
                .wait_timeout(s, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        Ok(())
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
    use crate::transport::{HostKeys, Transport};
    use crate::Preferences;
    use ssh_packetizer::Packetizer;
    use std::io;
    use std::net::{TcpListener, TcpStream};

    const REMOTE: u32 = 5;
    const LOCAL_ID: u32 = 0;

    fn sink() -> Sink {
        Box::new(io::sink())
    }

    /// A channel whose messages go to a loopback socket, the table that
    /// routes messages to it, and the Packetizer that reads them on the
    /// other end.
    fn channel(window: u32) -> (Channel, Arc<Channels>, Arc<Shared>, Packetizer<TcpStream>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let ours = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let theirs = Packetizer::tcp(listener.accept().unwrap().0).unwrap();
        let (_reader, writer) = Packetizer::tcp(ours).unwrap().split().unwrap();
        let table = Arc::new(Channels::default());
        let shared = table.create(sink(), sink()).unwrap();
        assert_eq!(shared.local_id(), LOCAL_ID);
        shared.opened(REMOTE, window, MAX_PACKET);
        let transport = Transport::new(
            HostKeys::Verify(Box::new(|_| Ok(()))),
            Preferences::default(),
            b"SSH-2.0-us".to_vec(),
            b"SSH-2.0-them".to_vec(),
        );
        let out = Arc::new(Link::new(writer, transport));
        (Channel::new(shared.clone(), out), table, shared, theirs)
    }

    /// What the table answers to `message`, as bytes.
    fn reply(table: &Channels, message: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(table.on_message(message)?.map(|o| o.payload().to_vec()))
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
        shared.window.snapshot().0
    }

    /// Waits for `what` to hold of the window (bytes left, senders
    /// asleep). A sender that is never woken fails the test here instead
    /// of hanging it (the peer's `read_message` would wait for ever).
    fn eventually(shared: &Shared, what: &str, holds: impl Fn(u64, u32) -> bool) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let (left, waiters) = shared.window.snapshot();
            if holds(left, waiters) {
                return;
            }
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
        let (mut chan, _table, shared, mut peer) = channel(100_000);
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
    fn send_from_spends_the_whole_window() {
        let (mut chan, _table, shared, mut peer) = channel(10);
        let mut src = Reads {
            chunks: vec![vec![3; 10]],
            fail: false,
        };
        assert_eq!(chan.send_from(&mut src).unwrap(), 10);
        assert_eq!(window(&shared), 0);
        expect_data(&mut peer, &[3; 10]);
    }

    #[test]
    fn send_from_reads_first_and_waits_for_window_for_what_it_read() {
        let (mut chan, table, shared, mut peer) = channel(30);
        let sender = std::thread::spawn(move || {
            let mut src = Reads {
                chunks: vec![vec![6; 50]],
                fail: false,
            };
            chan.send_from(&mut src)
        });
        // 30 bytes go at once; the other 20 wait, read already, for window.
        eventually(&shared, "the sender waits", |left, waiters| {
            left == 0 && waiters == 1
        });
        let adjust = Msg::new(msg::CHANNEL_WINDOW_ADJUST)
            .u32(LOCAL_ID)
            .u32(100)
            .finish();
        reply(&table, &adjust).unwrap();
        assert_eq!(sender.join().unwrap().unwrap(), 50);
        expect_data(&mut peer, &[6; 30]);
        expect_data(&mut peer, &[6; 20]);
        assert_eq!(window(&shared), 80);
    }

    #[test]
    fn one_read_of_several_packets_goes_out_as_several_messages() {
        let (mut chan, _table, shared, mut peer) = channel(1 << 20);
        let data: Vec<u8> = (0..3 * MAX_PACKET as usize + 4000)
            .map(|i| (i % 251) as u8)
            .collect();
        let mut src = Reads {
            chunks: vec![data.clone()],
            fail: false,
        };
        assert_eq!(chan.send_from(&mut src).unwrap(), data.len());
        for part in data.chunks(MAX_PACKET as usize) {
            expect_data(&mut peer, part);
        }
        assert_eq!(window(&shared), (1 << 20) - data.len() as u64);
    }

    #[test]
    fn what_was_queued_is_written_before_the_sender_waits_for_window() {
        let (mut chan, table, shared, mut peer) = channel(40_000);
        let sender = std::thread::spawn(move || {
            let mut src = Reads {
                chunks: vec![vec![9; 50_000]],
                fail: false,
            };
            chan.send_from(&mut src)
        });
        eventually(&shared, "the sender waits", |left, waiters| {
            left == 0 && waiters == 1
        });
        // The peer gets the 40,000 bytes the window allowed while the
        // sender waits: a batch held back would leave both waiting.
        let (tx, rx) = std::sync::mpsc::channel();
        let reading = std::thread::spawn(move || {
            let first = peer.read_message().unwrap().payload().to_vec();
            let second = peer.read_message().unwrap().payload().to_vec();
            tx.send((first, second)).unwrap();
            peer
        });
        let (first, second) = rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("the queued data reached the peer");
        assert_eq!(first, data_message(&[9; MAX_PACKET as usize]));
        assert_eq!(second, data_message(&[9; 40_000 - MAX_PACKET as usize]));
        let mut peer = reading.join().unwrap();
        let adjust = Msg::new(msg::CHANNEL_WINDOW_ADJUST)
            .u32(LOCAL_ID)
            .u32(20_000)
            .finish();
        reply(&table, &adjust).unwrap();
        assert_eq!(sender.join().unwrap().unwrap(), 50_000);
        expect_data(&mut peer, &[9; 10_000]);
    }

    #[test]
    fn a_window_adjust_wakes_a_sender_waiting_for_window() {
        let (mut chan, table, shared, mut peer) = channel(0);
        let sender = std::thread::spawn(move || chan.write(&[4; 50]));
        // Each adjust goes in only once the sender is asleep on the window,
        // so it must wake the sender rather than be seen before it sleeps.
        let asleep = |_: u64, waiters: u32| waiters == 1;
        let adjust = Msg::new(msg::CHANNEL_WINDOW_ADJUST)
            .u32(LOCAL_ID)
            .u32(30)
            .finish();
        eventually(&shared, "the sender waits", asleep);
        assert_eq!(reply(&table, &adjust).unwrap(), None);
        eventually(&shared, "30 bytes sent", |left, waiters| {
            left == 0 && asleep(left, waiters)
        });
        reply(&table, &adjust).unwrap();
        eventually(&shared, "the rest sent", |left, _| left == 10);
        sender.join().unwrap().unwrap();
        expect_data(&mut peer, &[4; 30]);
        expect_data(&mut peer, &[4; 20]);
    }

    #[test]
    fn the_close_wakes_a_sender_waiting_for_window() {
        let (mut chan, table, shared, _peer) = channel(0);
        let sender = std::thread::spawn(move || chan.write(&[5; 50]));
        eventually(&shared, "the sender waits", |_, waiters| waiters == 1);
        let close = Msg::new(msg::CHANNEL_CLOSE).u32(LOCAL_ID).finish();
        assert!(reply(&table, &close).unwrap().is_some(), "our CLOSE reply");
        eventually(&shared, "the sender woke", |_, waiters| waiters == 0);
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
        let table = Channels::default();
        let (stdout, stderr) = (Collected::default(), Collected::default());
        let shared = table
            .create(Box::new(stdout.clone()), Box::new(stderr.clone()))
            .unwrap();
        shared.opened(REMOTE, 0, MAX_PACKET);
        let packet = vec![7u8; MAX_PACKET as usize];
        let adjust = Msg::new(msg::CHANNEL_WINDOW_ADJUST)
            .u32(REMOTE)
            .u32(WINDOW / 4)
            .finish();
        let mut adjusts = 0;
        for i in 1..=64 {
            if let Some(reply) = reply(&table, &incoming_data(&packet)).unwrap() {
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
        reply(&table, &stderr_data).unwrap();
        assert_eq!(&stderr.0.lock().unwrap()[..], b"oops");
    }

    #[test]
    fn a_data_packet_larger_than_agreed_is_refused() {
        let table = Channels::default();
        table
            .create(sink(), sink())
            .unwrap()
            .opened(REMOTE, 0, MAX_PACKET);
        let largest = vec![7u8; MAX_PACKET as usize];
        assert_eq!(reply(&table, &incoming_data(&largest)).unwrap(), None);
        let too_big = vec![7u8; MAX_PACKET as usize + 1];
        let err = reply(&table, &incoming_data(&too_big)).unwrap_err();
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

    #[test]
    fn a_channel_number_stays_taken_until_the_server_closes_it() {
        let table = Channels::default();
        let first = table.create(sink(), sink()).unwrap();
        first.opened(REMOTE, 0, MAX_PACKET);
        // A second channel while the server's end of the first is open
        // gets a new number, and the first one's late data goes nowhere.
        let second = table.create(sink(), sink()).unwrap();
        assert_ne!(second.local_id(), first.local_id());
        second.opened(REMOTE + 1, 0, MAX_PACKET);
        let late = Msg::new(msg::CHANNEL_DATA)
            .u32(first.local_id())
            .string(b"late")
            .finish();
        assert_eq!(reply(&table, &late).unwrap(), None);
        assert_eq!(table.open_count(), 2);
        // Its CLOSE is answered and frees the number.
        let close = Msg::new(msg::CHANNEL_CLOSE).u32(first.local_id()).finish();
        assert_eq!(
            reply(&table, &close).unwrap(),
            Some(Msg::new(msg::CHANNEL_CLOSE).u32(REMOTE).finish())
        );
        assert_eq!(table.open_count(), 1);
        assert!(reply(&table, &late).is_err(), "now an unknown channel");
        // Once the server closed the second, a third may not reuse its
        // number either way: numbers only go forward.
        let close = Msg::new(msg::CHANNEL_CLOSE).u32(second.local_id()).finish();
        reply(&table, &close).unwrap();
        let third = table.create(sink(), sink()).unwrap();
        assert!(third.local_id() > second.local_id());
    }
}
