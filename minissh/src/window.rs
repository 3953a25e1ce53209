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
        self.take(want, true)
            .map(|taken| taken.expect("a waiting take returns window"))
    }

    /// As [`SendWindow::reserve`], but `None` at once when the peer has
    /// granted no window.
    fn try_reserve(&self, want: usize) -> Result<Option<(u32, usize)>> {
        self.take(want, false)
    }

    fn take(&self, want: usize, wait: bool) -> Result<Option<(u32, usize)>> {
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
            if !wait {
                return Ok(None);
            }
            s.waiters += 1;
            s = self.changed.wait(s).unwrap_or_else(|e| e.into_inner());
            s.waiters -= 1;
        }
        let max = s.max_packet.clamp(1, MAX_PACKET) as usize;
        let n = want.min(max).min(s.available as usize);
        s.available -= n as u64;
        Ok(Some((s.remote_id.unwrap_or_default(), n)))
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
    /// Data messages are built here: allocated and zeroed once, at one
    /// read's worth ([`READ_BATCH`]) plus a header; each message is a
    /// header written just before its part of the data.
    payload: Vec<u8>,
}

/// Most bytes [`DataSender::send_from`] reads at once. The messages cut
/// from one read are sealed together and written in one go: a pipe hands
/// over up to 64 KiB a read, so an upload writes to the socket about half
/// as often as with one read per 32 KiB packet, and a socket that is full
/// blocks the sender once per batch, not once per packet.
pub const READ_BATCH: usize = 4 * MAX_PACKET as usize;

/// Most data messages sealed before a write: four at OpenSSH's packet size
/// (one read's worth), and no more when the peer's packets are smaller.
const FLUSH_EVERY: usize = 4;

impl DataSender {
    /// A sender of `stream` over `window`.
    pub fn new(window: Arc<SendWindow>, out: Arc<Outbound>, stream: Stream) -> DataSender {
        DataSender {
            window,
            out,
            stream,
            payload: vec![0; stream.header_len() + READ_BATCH],
        }
    }

    /// The connection it sends on.
    pub fn outbound(&self) -> &Arc<Outbound> {
        &self.out
    }

    /// Sends `data`, split to the peer's packet size, waiting for window;
    /// the messages are written together.
    pub fn write(&mut self, mut data: &[u8]) -> Result<()> {
        let header = self.stream.header_len();
        let mut queued = false;
        while !data.is_empty() {
            let (remote, n) = self.take_window(data.len(), &mut queued)?;
            self.payload[header..header + n].copy_from_slice(&data[..n]);
            self.queue_data(0, remote, n)?;
            queued = true;
            data = &data[n..];
        }
        if queued {
            self.out.flush()?;
        }
        Ok(())
    }

    /// Window for up to `want` bytes: at once if the peer has granted
    /// some, else after writing what is `queued` (the peer must see it
    /// before it grants more) and waiting.
    fn take_window(&mut self, want: usize, queued: &mut bool) -> Result<(u32, usize)> {
        if let Some(taken) = self.window.try_reserve(want)? {
            return Ok(taken);
        }
        if std::mem::take(queued) {
            self.out.flush()?;
        }
        self.window.reserve(want)
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
            match src.read(&mut self.payload[header..header + READ_BATCH]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other?,
            }
        };
        // Each message's header goes just before its data, over the tail
        // of the message before, which is sealed (copied) by then.
        let (mut at, end) = (header, header + n);
        let (mut queued, mut messages) = (false, 0);
        while at < end {
            let (remote, k) = self.take_window(end - at, &mut queued)?;
            self.queue_data(at - header, remote, k)?;
            queued = true;
            at += k;
            // A peer that asked for tiny packets gets them written a few at
            // a time, not a whole read's worth of them held at once.
            messages += 1;
            if messages % FLUSH_EVERY == 0 && at < end {
                self.out.flush()?;
                queued = false;
            }
        }
        if queued {
            self.out.flush()?;
        }
        Ok(n)
    }

    /// Seals the data message that starts at `start` in `payload` (its
    /// `len` data bytes after the header), without writing it.
    fn queue_data(&mut self, start: usize, remote: u32, len: usize) -> Result<()> {
        let header = self.stream.header_len();
        let message = &mut self.payload[start..start + header + len];
        message[1..5].copy_from_slice(&remote.to_be_bytes());
        match self.stream {
            Stream::Data => message[0] = msg::CHANNEL_DATA,
            Stream::Extended(code) => {
                message[0] = msg::CHANNEL_EXTENDED_DATA;
                message[5..9].copy_from_slice(&code.to_be_bytes());
            }
        }
        message[header - 4..header].copy_from_slice(&(len as u32).to_be_bytes());
        self.out.queue_on(Some(&self.window), message, false)
    }
}
