//! Session channels on the server (RFC 4254 §6): `exec` runs the command
//! through `sh -c` with its stdin, stdout and stderr on pipes.
//!
//! The reader thread never blocks on a command: what the client sends is
//! queued for a stdin thread, whose writes to the command decide when the
//! client gets more window (so the queue never holds more than the window
//! we granted). Each output pipe has a pump thread that reads straight into
//! data messages, waiting for the client's window. A reaper thread waits
//! for both pumps and the command, then sends exit-status, EOF and CLOSE,
//! in that order, as sshd does when the command exits.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rustix::process::{kill_process_group, Pid, Signal};

use super::log::CommandRecord;
use crate::error::{Error, Result};
use crate::msg;
use crate::outbound::{Outbound, Outgoing};
use crate::window::{
    adjust_message, check_data_len, due_adjust, DataSender, SendWindow, Stream, MAX_PACKET, WINDOW,
};
use crate::wire::{Msg, Reader};

/// Channels one connection may have open at once.
const MAX_CHANNELS: usize = 10;

/// How long the end of a connection waits for its commands' reapers.
const REAP_WAIT: Duration = Duration::from_secs(2);

/// Commands the log names per connection; more are counted.
const LOGGED_COMMANDS: usize = 100;

/// Whether the client has closed a channel, and its command, shared by the
/// reader thread and the channel's threads. (Whether we have closed it is
/// the window's: see [`SendWindow::closed_by_us`].)
#[derive(Debug, Default)]
struct Flags {
    close_received: bool,
    /// The command, until it has been reaped: killing its process group
    /// is safe only while it is here, since the group id may be reused
    /// once it is gone.
    child: Option<Arc<Mutex<Child>>>,
}

#[derive(Debug)]
struct Chan {
    remote: u32,
    window: Arc<SendWindow>,
    flags: Arc<Mutex<Flags>>,
    /// Bytes the client may still send before it needs an adjust.
    room: Arc<AtomicU32>,
    /// The queue to the stdin thread; `None` after the client's EOF.
    stdin: Option<Sender<Vec<u8>>>,
    /// The stdin thread's end, until a command starts.
    stdin_queue: Option<Receiver<Vec<u8>>>,
    started: bool,
    /// Bytes the client sent that no command will read (after its EOF,
    /// or once the command closed its stdin), not yet given back.
    dropped: u32,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Counts running reapers, so the end of a connection can wait for them.
#[derive(Debug, Default)]
struct Reapers {
    running: Mutex<usize>,
    done: Condvar,
}

/// The session channels of one connection.
#[derive(Debug)]
pub struct Channels {
    out: Arc<Outbound>,
    open: HashMap<u32, Chan>,
    next_id: u32,
    commands: Arc<Mutex<Vec<CommandRecord>>>,
    reapers: Arc<Reapers>,
}

impl Channels {
    /// No channels yet; commands are recorded in `commands`.
    pub fn new(out: Arc<Outbound>, commands: Arc<Mutex<Vec<CommandRecord>>>) -> Channels {
        Channels {
            out,
            open: HashMap::new(),
            next_id: 0,
            commands,
            reapers: Arc::default(),
        }
    }

    /// CHANNEL_OPEN: the reply to send.
    pub fn on_open(&mut self, payload: &[u8]) -> Result<Vec<u8>> {
        let mut r = Reader::body(payload);
        let kind = r.string()?;
        let sender = r.u32()?;
        let window = r.u32()?;
        let max_packet = r.u32()?;
        let refuse = |code: u32, why: &str| {
            Msg::new(msg::CHANNEL_OPEN_FAILURE)
                .u32(sender)
                .u32(code)
                .string(why)
                .string("")
                .finish()
        };
        if kind != b"session" {
            // 3: SSH_OPEN_UNKNOWN_CHANNEL_TYPE (no forwarding here).
            return Ok(refuse(3, "only session channels are served"));
        }
        self.open
            .retain(|_, c| !(lock(&c.flags).close_received && c.window.closed_by_us()));
        if self.open.len() >= MAX_CHANNELS {
            // 4: SSH_OPEN_RESOURCE_SHORTAGE.
            return Ok(refuse(4, "too many channels open"));
        }
        let mut id = self.next_id;
        while self.open.contains_key(&id) {
            id = id.wrapping_add(1);
        }
        self.next_id = id.wrapping_add(1);
        let chan_window = Arc::new(SendWindow::default());
        chan_window.open(sender, window, max_packet);
        let (stdin, stdin_queue) = channel();
        self.open.insert(
            id,
            Chan {
                remote: sender,
                window: chan_window,
                flags: Arc::default(),
                room: Arc::new(AtomicU32::new(WINDOW)),
                stdin: Some(stdin),
                stdin_queue: Some(stdin_queue),
                started: false,
                dropped: 0,
            },
        );
        Ok(Msg::new(msg::CHANNEL_OPEN_CONFIRMATION)
            .u32(sender)
            .u32(id)
            .u32(WINDOW)
            .u32(MAX_PACKET)
            .finish())
    }

    /// Any other channel message: the reply to send, if one is due.
    pub fn on_message(&mut self, payload: &[u8]) -> Result<Option<Outgoing>> {
        let mut r = Reader::body(payload);
        let id = r.u32()?;
        let Some(chan) = self.open.get_mut(&id) else {
            return Err(Error::Protocol(format!("message for unknown channel {id}")));
        };
        if lock(&chan.flags).close_received {
            return Err(Error::Protocol(format!(
                "message {} on channel {id} after its CLOSE",
                payload[0]
            )));
        }
        let remote = chan.remote;
        match payload[0] {
            msg::CHANNEL_DATA | msg::CHANNEL_EXTENDED_DATA => {
                if payload[0] == msg::CHANNEL_EXTENDED_DATA {
                    r.u32()?;
                }
                let data = r.string()?;
                let len = data.len() as u32;
                check_data_len(len, "client")?;
                if chan
                    .room
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |room| {
                        room.checked_sub(len)
                    })
                    .is_err()
                {
                    return Err(Error::Protocol("the client overran our window".into()));
                }
                // Extended data from a client has no meaning for a command;
                // data after EOF, or for a command that closed its stdin,
                // is dropped. Either way the window comes back, a quarter
                // of it at a time as the stdin thread gives it back.
                let queued = payload[0] == msg::CHANNEL_DATA
                    && chan
                        .stdin
                        .as_ref()
                        .is_some_and(|q| q.send(data.to_vec()).is_ok());
                if queued {
                    return Ok(None);
                }
                let Some(bytes) = due_adjust(&mut chan.dropped, len) else {
                    return Ok(None);
                };
                chan.room.fetch_add(bytes, Ordering::SeqCst);
                Ok(Some(Outgoing::on(
                    chan.window.clone(),
                    adjust_message(remote, bytes),
                )))
            }
            msg::CHANNEL_WINDOW_ADJUST => {
                chan.window.grant(r.u32()?);
                Ok(None)
            }
            msg::CHANNEL_EOF => {
                // The stdin thread closes the command's stdin once it has
                // written what is queued.
                chan.stdin = None;
                Ok(None)
            }
            msg::CHANNEL_CLOSE => {
                chan.stdin = None;
                chan.stdin_queue = None;
                chan.window.close();
                let mut f = lock(&chan.flags);
                f.close_received = true;
                if let Some(child) = &f.child {
                    // The client is gone from this channel: so is the
                    // command (sshd's pipes would break it the same way).
                    kill_group(child);
                }
                drop(f);
                // Sealed only if the reaper has not sealed ours already;
                // after it, nothing more goes out on this channel.
                let close = Msg::new(msg::CHANNEL_CLOSE).u32(remote).finish();
                Ok(Some(Outgoing::close(chan.window.clone(), close)))
            }
            msg::CHANNEL_REQUEST => {
                let kind = r.text()?.to_owned();
                let want_reply = r.bool()?;
                let window = chan.window.clone();
                let reply = |answer: u8| {
                    let message = Msg::new(answer).u32(remote).finish();
                    Outgoing::on(window.clone(), message)
                };
                let started = match kind.as_str() {
                    "exec" if !chan.started => {
                        let command = String::from_utf8_lossy(r.string()?).into_owned();
                        // The SUCCESS is sealed before the command's threads
                        // start: a command that ends at once must not close
                        // the channel ahead of it.
                        let success = want_reply.then(|| reply(msg::CHANNEL_SUCCESS));
                        self.exec(id, command, success)?
                    }
                    // No pty, shell, subsystem, environment or signals:
                    // refused, and the client carries on (ssh sends env
                    // requests that do not want a reply).
                    _ => false,
                };
                Ok((want_reply && !started).then(|| reply(msg::CHANNEL_FAILURE)))
            }
            // Replies to requests we never make.
            msg::CHANNEL_SUCCESS | msg::CHANNEL_FAILURE => Ok(None),
            other => Err(Error::Protocol(format!(
                "unexpected channel message {other}"
            ))),
        }
    }

    /// Starts `command` on channel `id`, sealing `success` first; false
    /// if it cannot start (then nothing was sealed).
    fn exec(&mut self, id: u32, command: String, success: Option<Outgoing>) -> Result<bool> {
        let Some(chan) = self.open.get_mut(&id) else {
            return Ok(false);
        };
        let mut shell = Command::new("sh");
        shell
            .arg("-c")
            .arg(&command)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so that ending the command also ends
            // what it started (`sh -c 'a; b'` forks), which would otherwise
            // hold the output pipes open.
            .process_group(0);
        if let Some(home) = std::env::var_os("HOME") {
            shell.current_dir(home);
        }
        let mut child = match shell.spawn() {
            Ok(child) => child,
            Err(e) => {
                log::debug!("cannot run sh -c {command:?}: {e}");
                return Ok(false);
            }
        };
        chan.started = true;
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            let _ = child.kill();
            return Ok(false);
        };
        if let Some(success) = success {
            self.out.reply(success)?;
        }
        let index = {
            let mut commands = lock(&self.commands);
            if commands.len() < LOGGED_COMMANDS {
                commands.push(CommandRecord {
                    command,
                    outcome: "running".into(),
                });
                Some(commands.len() - 1)
            } else {
                // One line counts the rest.
                if commands.len() == LOGGED_COMMANDS {
                    commands.push(CommandRecord {
                        command: "(not logged)".into(),
                        outcome: "0 more".into(),
                    });
                }
                let more = commands.last_mut().map(|c| &mut c.outcome);
                if let Some(outcome) = more {
                    let n: u64 = outcome
                        .split(' ')
                        .next()
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(0);
                    *outcome = format!("{} more", n + 1);
                }
                None
            }
        };
        let child = Arc::new(Mutex::new(child));
        lock(&chan.flags).child = Some(child.clone());
        if let Some(queue) = chan.stdin_queue.take() {
            let feeder = StdinFeeder {
                queue,
                out: self.out.clone(),
                remote: chan.remote,
                room: chan.room.clone(),
                window: chan.window.clone(),
            };
            spawn("minissh-stdin", move || feeder.run(stdin));
        }
        let pump = |stream: Stream, mut pipe: Box<dyn Read + Send>| {
            let mut sender = DataSender::new(chan.window.clone(), self.out.clone(), stream);
            spawn("minissh-pump", move || {
                while matches!(sender.send_from(&mut pipe), Ok(n) if n > 0) {}
            })
        };
        let pumps = [
            pump(Stream::Data, Box::new(stdout)),
            pump(Stream::Extended(1), Box::new(stderr)),
        ];
        let reaper = Reaper {
            out: self.out.clone(),
            remote: chan.remote,
            window: chan.window.clone(),
            flags: chan.flags.clone(),
            child,
            commands: self.commands.clone(),
            index,
            reapers: self.reapers.clone(),
        };
        *lock(&self.reapers.running) += 1;
        spawn("minissh-reaper", move || reaper.run(pumps));
        Ok(true)
    }

    /// The connection is over: stop every channel and command, and wait a
    /// little for the commands' outcomes.
    pub fn shutdown(&mut self, why: &str) {
        for chan in self.open.values_mut() {
            chan.stdin = None;
            chan.stdin_queue = None;
            chan.window.fail(why);
            if let Some(child) = &lock(&chan.flags).child {
                kill_group(child);
            }
        }
        let deadline = Instant::now() + REAP_WAIT;
        let mut running = lock(&self.reapers.running);
        while *running > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            running = self
                .reapers
                .done
                .wait_timeout(running, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// Kills the command's whole process group (it leads its own).
fn kill_group(child: &Mutex<Child>) {
    let pid = lock(child).id();
    if let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
        let _ = kill_process_group(pid, Signal::KILL);
    }
}

fn spawn(name: &str, body: impl FnOnce() + Send + 'static) -> Option<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(body)
        .map_err(|e| log::debug!("no thread for {name}: {e}"))
        .ok()
}

/// Writes what the client sends to the command's stdin, and gives the
/// client window for what was written.
struct StdinFeeder {
    queue: Receiver<Vec<u8>>,
    out: Arc<Outbound>,
    remote: u32,
    room: Arc<AtomicU32>,
    window: Arc<SendWindow>,
}

impl StdinFeeder {
    fn run(self, mut stdin: ChildStdin) {
        let mut unadjusted = 0u32;
        let mut open = true;
        // The queue ends with the client's EOF (or close): then stdin
        // closes, which the command reads as its end of input.
        while let Ok(chunk) = self.queue.recv() {
            if open && stdin.write_all(&chunk).is_err() {
                // The command closed its stdin: what follows is dropped,
                // but still adjusted so the client is never stuck.
                open = false;
            }
            // The window comes back as the command takes the bytes.
            let due = due_adjust(&mut unadjusted, chunk.len() as u32);
            if due.is_some_and(|bytes| !self.give_back(bytes)) {
                return;
            }
        }
        drop(stdin);
        let _ = self.give_back(unadjusted);
    }

    /// Sends a window adjust for `bytes`; false once the channel or the
    /// connection is gone.
    fn give_back(&self, bytes: u32) -> bool {
        if bytes == 0 {
            return true;
        }
        self.room.fetch_add(bytes, Ordering::SeqCst);
        let message = adjust_message(self.remote, bytes);
        // Not sent once we have closed the channel (checked as it is
        // sealed).
        self.out
            .send_on(Some(&self.window), &message, false)
            .is_ok()
    }
}

/// Waits for a command and its output, then ends the channel.
struct Reaper {
    out: Arc<Outbound>,
    remote: u32,
    window: Arc<SendWindow>,
    flags: Arc<Mutex<Flags>>,
    child: Arc<Mutex<Child>>,
    commands: Arc<Mutex<Vec<CommandRecord>>>,
    /// Its line in the log, unless past the cap.
    index: Option<usize>,
    reapers: Arc<Reapers>,
}

impl Reaper {
    fn run(self, pumps: [Option<std::thread::JoinHandle<()>>; 2]) {
        // All output is sent before EOF: the pumps end at the pipes' end.
        for pump in pumps.into_iter().flatten() {
            let _ = pump.join();
        }
        let status = self.wait();
        let outcome = match status {
            Some(s) => match (s.code(), s.signal()) {
                (Some(code), _) => format!("exit {code}"),
                (None, Some(sig)) => format!("signal {}", signal_name(sig)),
                (None, None) => "ended".into(),
            },
            None => "unknown".into(),
        };
        if lock(&self.flags).close_received && outcome == "signal KILL" {
            // We killed it because the client closed the channel.
            self.record("killed (the client closed the channel)".into());
        } else {
            self.send_end(status);
            self.record(outcome);
        }
        self.done();
    }

    /// The command's exit status. A pipe can close before the command
    /// exits (it closed its output), so this polls, backing off to 50 ms.
    fn wait(&self) -> Option<std::process::ExitStatus> {
        let mut pause = Duration::from_millis(1);
        loop {
            {
                // Reaped and forgotten in one step under the flags' lock,
                // so no kill can reach a reused group id.
                let mut f = lock(&self.flags);
                match lock(&self.child).try_wait() {
                    Ok(Some(status)) => {
                        f.child = None;
                        return Some(status);
                    }
                    Ok(None) => {}
                    Err(_) => {
                        f.child = None;
                        return None;
                    }
                }
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }

    /// exit-status (or exit-signal), EOF and CLOSE, each sealed only while
    /// the channel is not closed from our side (the reader may close it
    /// first, answering the client's CLOSE).
    fn send_end(&self, status: Option<std::process::ExitStatus>) {
        let request = |kind: &str| {
            Msg::new(msg::CHANNEL_REQUEST)
                .u32(self.remote)
                .string(kind)
                .bool(false)
        };
        let report = status.and_then(|s| match (s.code(), s.signal()) {
            (Some(code), _) => Some(request("exit-status").u32(code as u32).finish()),
            (None, Some(sig)) => Some(
                request("exit-signal")
                    .string(signal_name(sig))
                    .bool(s.core_dumped())
                    .string("")
                    .string("")
                    .finish(),
            ),
            (None, None) => None,
        });
        let eof = Msg::new(msg::CHANNEL_EOF).u32(self.remote).finish();
        let close = Msg::new(msg::CHANNEL_CLOSE).u32(self.remote).finish();
        for message in report.into_iter().chain([eof]) {
            if self
                .out
                .send_on(Some(&self.window), &message, false)
                .is_err()
            {
                return;
            }
        }
        let _ = self.out.send_on(Some(&self.window), &close, true);
    }

    fn record(&self, outcome: String) {
        let Some(index) = self.index else {
            return;
        };
        if let Some(c) = lock(&self.commands).get_mut(index) {
            c.outcome = outcome;
        }
    }

    fn done(&self) {
        *lock(&self.reapers.running) -= 1;
        self.reapers.done.notify_all();
    }
}

/// RFC 4254 §6.10's signal names (without the `SIG`).
fn signal_name(sig: i32) -> &'static str {
    match sig {
        1 => "HUP",
        2 => "INT",
        3 => "QUIT",
        4 => "ILL",
        6 => "ABRT",
        8 => "FPE",
        9 => "KILL",
        11 => "SEGV",
        13 => "PIPE",
        14 => "ALRM",
        15 => "TERM",
        10 => "USR1",
        12 => "USR2",
        _ => "UNKNOWN",
    }
}
