//! One session channel (RFC 4254 §5-6): flow control both ways, output
//! sinks, EOF, close and the exit status.
//!
//! The reader thread delivers inbound data straight into the sinks (no
//! queue, no copy beyond the sink's own) and keeps the state here; the main
//! thread sends through [`Channel`].

use std::io::Write;
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
}

/// Channel state shared by the reader thread and the main thread.
#[derive(Default)]
pub struct Shared {
    state: Mutex<State>,
    changed: Condvar,
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
        // Waiters want window, EOF, close or the exit status; data alone
        // wakes nobody (a notify costs a futex call per packet).
        let mut wake = true;
        match payload[0] {
            msg::CHANNEL_DATA | msg::CHANNEL_EXTENDED_DATA => {
                let stderr = payload[0] == msg::CHANNEL_EXTENDED_DATA && r.u32()? == 1;
                let data = r.string()?;
                let len = data.len() as u32;
                if len > MAX_PACKET || s.consumed.saturating_add(len) > WINDOW {
                    return Err(Error::Protocol("the server overran our window".into()));
                }
                let sink = if stderr { &mut s.stderr } else { &mut s.stdout };
                if let Some(sink) = sink {
                    sink.write_all(data)?;
                }
                s.consumed += len;
                wake = false;
                // OpenSSH's rule: adjust once three packets' worth or half
                // the window has been used, so the server never stalls.
                if s.consumed >= 3 * MAX_PACKET || s.consumed >= WINDOW / 2 {
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
            }
            msg::CHANNEL_EOF => {
                s.eof_received = true;
                Self::flush(&mut s)?;
            }
            msg::CHANNEL_CLOSE => {
                s.close_received = true;
                Self::flush(&mut s)?;
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
        if wake {
            self.changed.notify_all();
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
        self.changed.notify_all();
    }
}

/// The sending end of an open session channel. A clone shares the channel
/// but has its own message buffer, so each sending thread reuses its own.
#[derive(Clone, Debug)]
pub struct Channel {
    shared: Arc<Shared>,
    out: Arc<Outbound>,
    /// CHANNEL_DATA messages are built here, allocated once.
    payload: Vec<u8>,
}

impl Channel {
    pub(crate) fn new(shared: Arc<Shared>, out: Arc<Outbound>) -> Channel {
        Channel {
            shared,
            out,
            payload: Vec::new(),
        }
    }

    /// Sends `data`, split to the server's packet size, waiting for window.
    pub fn write(&mut self, mut data: &[u8]) -> Result<()> {
        let payload = &mut self.payload;
        while !data.is_empty() {
            let (remote, n) = {
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
                    s = self
                        .shared
                        .changed
                        .wait(s)
                        .unwrap_or_else(|e| e.into_inner());
                }
                let max = s.remote_max_packet.clamp(1, MAX_PACKET) as usize;
                let n = data.len().min(max).min(s.send_window as usize);
                s.send_window -= n as u64;
                (s.remote_id.unwrap_or_default(), n)
            };
            payload.clear();
            payload.push(msg::CHANNEL_DATA);
            payload.extend_from_slice(&remote.to_be_bytes());
            payload.extend_from_slice(&(n as u32).to_be_bytes());
            payload.extend_from_slice(&data[..n]);
            self.out.send(payload)?;
            data = &data[n..];
        }
        Ok(())
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
                .changed
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
