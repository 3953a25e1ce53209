//! The sending side of one channel (RFC 4254 §5.2): the window the peer
//! granted, and the data messages that spend it. Client and server share
//! it: the client's stdin pump and scp, the server's stdout and stderr
//! pumps.

use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use crate::error::{Error, Result};
use crate::msg;
use crate::outbound::Outbound;
use crate::wire::Msg;

/// The largest data packet we accept and send.
pub const MAX_PACKET: u32 = 32 * 1024;

/// Our receive window on every channel: OpenSSH's session default (64
/// packets of 32 KiB).
pub const WINDOW: u32 = 2 * 1024 * 1024;

/// Adds `bytes` consumed to `unadjusted` and takes the window adjust that
/// is due, if one is: once a quarter of the window is used. The peer keeps
/// 1.5 MiB in flight, and a transfer costs one adjust (a lock, a sealed
/// packet, a syscall) per 16 full packets rather than OpenSSH's one per 3,
/// about 3 % of a client's CPU. Both roles use this one rule.
pub fn due_adjust(unadjusted: &mut u32, bytes: u32) -> Option<u32> {
    *unadjusted += bytes;
    (*unadjusted >= WINDOW / 4).then(|| std::mem::take(unadjusted))
}

/// SSH_MSG_CHANNEL_WINDOW_ADJUST giving the peer's channel `remote`
/// `bytes` more.
pub fn adjust_message(remote: u32, bytes: u32) -> Vec<u8> {
    Msg::new(msg::CHANNEL_WINDOW_ADJUST)
        .u32(remote)
        .u32(bytes)
        .finish()
}

/// Checks the length of one data message from the peer (`who`) against
/// the packet size we granted.
pub fn check_data_len(len: u32, who: &str) -> Result<()> {
    if len > MAX_PACKET {
        return Err(Error::Protocol(format!(
            "the {who} sent {len} bytes of channel data in one packet \
             (at most {MAX_PACKET} were agreed)"
        )));
    }
    Ok(())
}

#[derive(Debug, Default)]
struct State {
    /// The peer's number for the channel, once open.
    remote_id: Option<u32>,
    /// Bytes the peer still accepts.
    available: u64,
    /// The peer's largest data packet.
    max_packet: u32,
    /// The peer closed the channel (or we did): nothing more may be sent.
    closed: bool,
    /// Why the connection is gone, once it is.
    dead: Option<String>,
    /// Senders asleep on the condvar, so a window adjust with nobody
    /// waiting costs no futex call.
    waiters: u32,
}

/// The window the peer granted us on one channel, and whether we have
/// closed it.
#[derive(Debug, Default)]
pub struct SendWindow {
    state: Mutex<State>,
    changed: Condvar,
    /// Our CLOSE is sealed: nothing more may be (set by the outbound side
    /// under its gate's lock, in the step that seals the CLOSE).
    closed_by_us: AtomicBool,
}

impl SendWindow {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere never leaves the state half-updated: recover it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The numbers of CHANNEL_OPEN_CONFIRMATION (or of the peer's
    /// CHANNEL_OPEN, on the server).
    pub fn open(&self, remote_id: u32, window: u32, max_packet: u32) {
        let mut s = self.lock();
        s.remote_id = Some(remote_id);
        s.available = u64::from(window);
        s.max_packet = max_packet;
    }

    /// The peer's number for the channel, once open.
    pub fn remote_id(&self) -> Option<u32> {
        self.lock().remote_id
    }

    /// CHANNEL_WINDOW_ADJUST: `bytes` more may be sent.
    pub fn grant(&self, bytes: u32) {
        let mut s = self.lock();
        s.available = s.available.saturating_add(u64::from(bytes));
        let wake = s.waiters > 0;
        drop(s);
        if wake {
            self.changed.notify_all();
        }
    }

    /// The channel closed: senders stop.
    pub fn close(&self) {
        self.lock().closed = true;
        self.changed.notify_all();
    }

    /// The connection died: senders stop with `why`.
    pub fn fail(&self, why: &str) {
        let mut s = self.lock();
        if s.dead.is_none() {
            s.dead = Some(why.to_owned());
        }
        drop(s);
        self.changed.notify_all();
    }

    /// Waits until the peer grants window, then takes up to `want` bytes of
    /// it (at most one packet's worth). Returns the peer's channel id and
    /// the bytes taken.
    fn reserve(&self, want: usize) -> Result<(u32, usize)> {
        let mut s = self.lock();
        loop {
            if let Some(why) = &s.dead {
                return Err(Error::Protocol(why.clone()));
            }
            if s.closed {
                return Err(Error::ChannelRefused(
                    "more data: the channel is closed".into(),
                ));
            }
            if s.available > 0 {
                break;
            }
            s.waiters += 1;
            s = self.changed.wait(s).unwrap_or_else(|e| e.into_inner());
            s.waiters -= 1;
        }
        let max = s.max_packet.clamp(1, MAX_PACKET) as usize;
        let n = want.min(max).min(s.available as usize);
        s.available -= n as u64;
        Ok((s.remote_id.unwrap_or_default(), n))
    }

    /// Whether our CLOSE has been sealed.
    pub fn closed_by_us(&self) -> bool {
        self.closed_by_us.load(Ordering::SeqCst)
    }

    /// Records that our CLOSE is being sealed; true for the first call
    /// only. Senders stop too.
    pub fn mark_closed_by_us(&self) -> bool {
        let first = !self.closed_by_us.swap(true, Ordering::SeqCst);
        if first {
            self.close();
        }
        first
    }

    /// Bytes the peer still accepts, and senders asleep waiting for more
    /// (for tests that wait for a sender to block).
    pub fn snapshot(&self) -> (u64, u32) {
        let s = self.lock();
        (s.available, s.waiters)
    }
}

/// Which stream a [`DataSender`] carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// CHANNEL_DATA.
    Data,
    /// CHANNEL_EXTENDED_DATA with this type code (1 is stderr).
    Extended(u32),
}

impl Stream {
    /// Bytes before the data: the message number, the recipient channel,
    /// the type code if extended, and the data's length.
    fn header_len(self) -> usize {
        match self {
            Stream::Data => 9,
            Stream::Extended(_) => 13,
        }
    }
}

/// Sends one stream of a channel's data, split to the peer's packet size
/// and waiting for window. A clone shares the window but has its own
/// message buffer, so each sending thread reuses its own.
#[derive(Clone, Debug)]
pub struct DataSender {
    window: Arc<SendWindow>,
    out: Arc<Outbound>,
    stream: Stream,
    /// Data messages are built here: allocated and zeroed once at a full
    /// packet, each message then uses a prefix of it.
    payload: Vec<u8>,
}

impl DataSender {
    /// A sender of `stream` over `window`.
    pub fn new(window: Arc<SendWindow>, out: Arc<Outbound>, stream: Stream) -> DataSender {
        DataSender {
            window,
            out,
            stream,
            payload: vec![0; stream.header_len() + MAX_PACKET as usize],
        }
    }

    /// The connection it sends on.
    pub fn outbound(&self) -> &Arc<Outbound> {
        &self.out
    }

    /// Sends `data`, split to the peer's packet size, waiting for window.
    pub fn write(&mut self, mut data: &[u8]) -> Result<()> {
        let header = self.stream.header_len();
        while !data.is_empty() {
            let (remote, n) = self.window.reserve(data.len())?;
            self.payload[header..header + n].copy_from_slice(&data[..n]);
            self.send_data(remote, n)?;
            data = &data[n..];
        }
        Ok(())
    }

    /// Reads once from `src` straight into a data message and sends it,
    /// waiting for window for what was read (in parts if the peer's window
    /// or packet size is smaller): the bytes are copied by the read and by
    /// the Sealer, and nowhere else. Reading before reserving means a
    /// sender blocked in a read holds no window, so one idle stream never
    /// starves another (stdout and stderr share a window). Returns the
    /// number of bytes sent; 0 means `src` is at its end.
    pub fn send_from(&mut self, src: &mut impl Read) -> Result<usize> {
        let header = self.stream.header_len();
        let n = loop {
            match src.read(&mut self.payload[header..header + MAX_PACKET as usize]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other?,
            }
        };
        let mut left = n;
        while left > 0 {
            let (remote, k) = self.window.reserve(left)?;
            self.send_data(remote, k)?;
            left -= k;
            if left > 0 {
                self.payload
                    .copy_within(header + k..header + k + left, header);
            }
        }
        Ok(n)
    }

    /// Fills in the header of the data message whose `len` data bytes are
    /// already in `payload`, and sends it.
    fn send_data(&mut self, remote: u32, len: usize) -> Result<()> {
        let header = self.stream.header_len();
        self.payload[1..5].copy_from_slice(&remote.to_be_bytes());
        match self.stream {
            Stream::Data => self.payload[0] = msg::CHANNEL_DATA,
            Stream::Extended(code) => {
                self.payload[0] = msg::CHANNEL_EXTENDED_DATA;
                self.payload[5..9].copy_from_slice(&code.to_be_bytes());
            }
        }
        self.payload[header - 4..header].copy_from_slice(&(len as u32).to_be_bytes());
        self.out
            .send_on(Some(&self.window), &self.payload[..header + len], false)
    }
}
