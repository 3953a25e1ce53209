//! Session channels on the server (RFC 4254 §6), on the connection's own
//! task: `exec` runs the command through `sh -c` with its stdin, stdout
//! and stderr on tokio pipes, and no thread is started for it.
//!
//! Messages from the client are handled as they are read
//! ([`Channels::on_open`], [`Channels::on_message`]). Everything that waits
//! on a command is in [`Channels::poll_io`], which the connection polls
//! beside its read: it writes what the client sent to the command's stdin
//! (the window comes back as the command takes it), reads the command's
//! output into data messages while the client's window and our output
//! allow, and reaps the command. Once the output has ended and the command
//! has exited it sends exit-status, EOF and CLOSE, in that order, as sshd
//! does.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::pin::Pin;
use std::process::{ExitStatus, Stdio};
use std::task::{Context, Poll};
use std::time::Duration;

use rustix::process::{kill_process_group, Pid, Signal};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::process::{ChildStderr, ChildStdin, ChildStdout, Command};

use super::log::CommandRecord;
use super::output::{Output, Sealed};
use crate::error::{Error, Result};
use crate::flow::{adjust_message, check_data_len, due_adjust, MAX_PACKET, WINDOW};
use crate::msg;
use crate::wire::{Msg, Reader};

/// Channels one connection may have open at once.
const MAX_CHANNELS: usize = 10;

/// How long the end of a connection waits for its commands' exits.
pub(super) const REAP_WAIT: Duration = Duration::from_secs(2);

/// Commands the log names per connection; more are counted.
const LOGGED_COMMANDS: usize = 100;

/// Reads of command output per poll, so that one busy command does not
/// keep the connection from reading the client.
const READS_PER_POLL: usize = 16;

/// A command's exit, reaped by tokio.
type Exit = Pin<Box<dyn Future<Output = io::Result<ExitStatus>> + Send>>;

/// One of a command's output pipes.
enum Pipe {
    Stdout(ChildStdout),
    Stderr(ChildStderr),
}

impl Pipe {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self {
            Pipe::Stdout(p) => Pin::new(p).poll_read(cx, buf),
            Pipe::Stderr(p) => Pin::new(p).poll_read(cx, buf),
        }
    }

    /// The data message header: CHANNEL_DATA, or EXTENDED_DATA of type 1.
    fn header(&self, remote: u32) -> Msg {
        match self {
            Pipe::Stdout(_) => Msg::new(msg::CHANNEL_DATA).u32(remote),
            Pipe::Stderr(_) => Msg::new(msg::CHANNEL_EXTENDED_DATA).u32(remote).u32(1),
        }
    }
}

/// A running command and its pipes.
struct Running {
    stdin: Option<ChildStdin>,
    outputs: [Option<Pipe>; 2],
    /// Until it has been reaped.
    exit: Option<Exit>,
    /// Its process group, while it may still be killed: once reaped, the
    /// id may be reused.
    group: Option<Pid>,
    status: Option<io::Result<ExitStatus>>,
    /// Its line in the log, unless past the cap.
    log_index: Option<usize>,
}

/// One session channel.
struct Chan {
    remote: u32,
    /// Bytes the client still accepts from us, and its largest packet.
    send_window: u64,
    max_packet: u32,
    /// What the client may still send, and what it will get back.
    inflow: Inflow,
    /// What the client sent that the command has not taken yet (at most
    /// our window).
    stdin_buf: Vec<u8>,
    eof_received: bool,
    close_received: bool,
    close_sent: bool,
    command: Option<Running>,
    /// A data message that the packet layer's hold had no room for.
    unsent: Option<Vec<u8>>,
}

impl Chan {
    fn ended(&self) -> bool {
        self.close_received && self.close_sent
    }
}

/// The session channels of one connection.
pub(super) struct Channels {
    open: HashMap<u32, Chan>,
    next_id: u32,
    /// What the log says about the commands run.
    pub(super) commands: Vec<CommandRecord>,
}

impl Channels {
    pub(super) fn new() -> Channels {
        Channels {
            open: HashMap::new(),
            next_id: 0,
            commands: Vec::new(),
        }
    }

    /// CHANNEL_OPEN: the reply to send.
    pub(super) fn on_open(&mut self, payload: &[u8]) -> Result<Vec<u8>> {
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
        self.open.retain(|_, c| !c.ended() || c.command.is_some());
        if self.open.len() >= MAX_CHANNELS {
            // 4: SSH_OPEN_RESOURCE_SHORTAGE.
            return Ok(refuse(4, "too many channels open"));
        }
        let mut id = self.next_id;
        while self.open.contains_key(&id) {
            id = id.wrapping_add(1);
        }
        self.next_id = id.wrapping_add(1);
        self.open.insert(
            id,
            Chan {
                remote: sender,
                send_window: u64::from(window),
                max_packet,
                inflow: Inflow {
                    room: WINDOW,
                    unadjusted: 0,
                },
                stdin_buf: Vec::new(),
                eof_received: false,
                close_received: false,
                close_sent: false,
                command: None,
                unsent: None,
            },
        );
        Ok(Msg::new(msg::CHANNEL_OPEN_CONFIRMATION)
            .u32(sender)
            .u32(id)
            .u32(WINDOW)
            .u32(MAX_PACKET)
            .finish())
    }

    /// Any other channel message; replies are sealed through `out`.
    pub(super) fn on_message(&mut self, payload: &[u8], out: &Output) -> Result<()> {
        let mut r = Reader::body(payload);
        let id = r.u32()?;
        let Some(chan) = self.open.get_mut(&id) else {
            return Err(Error::Protocol(format!("message for unknown channel {id}")));
        };
        if chan.close_received {
            return Err(Error::Protocol(format!(
                "message {} on channel {id} after its CLOSE",
                payload[0]
            )));
        }
        let remote = chan.remote;
        if chan.close_sent {
            // We have closed it (the command ended) and wait for the
            // client's CLOSE: nothing more goes out on it, no command
            // starts, and what the client sent meanwhile is dropped.
            if payload[0] == msg::CHANNEL_CLOSE {
                chan.close_received = true;
            }
            return Ok(());
        }
        match payload[0] {
            msg::CHANNEL_DATA | msg::CHANNEL_EXTENDED_DATA => {
                if payload[0] == msg::CHANNEL_EXTENDED_DATA {
                    r.u32()?;
                }
                let data = r.string()?;
                let len = data.len() as u32;
                check_data_len(len, "client")?;
                chan.inflow.room = chan
                    .inflow
                    .room
                    .checked_sub(len)
                    .ok_or_else(|| Error::Protocol("the client overran our window".into()))?;
                let stdin_open = chan.command.as_ref().is_none_or(|c| c.stdin.is_some());
                if payload[0] == msg::CHANNEL_DATA && !chan.eof_received && stdin_open {
                    // Taken by the command in `poll_io`, which gives the
                    // window back as it goes.
                    chan.stdin_buf.extend_from_slice(data);
                } else {
                    // Extended data has no meaning for a command; data
                    // after EOF, or for a command that closed its stdin,
                    // is dropped. Either way the window comes back.
                    chan.inflow.give_back(len, remote, chan.close_sent, out)?;
                }
                Ok(())
            }
            msg::CHANNEL_WINDOW_ADJUST => {
                chan.send_window = chan.send_window.saturating_add(u64::from(r.u32()?));
                Ok(())
            }
            msg::CHANNEL_EOF => {
                // stdin closes once what is buffered is written.
                chan.eof_received = true;
                Ok(())
            }
            msg::CHANNEL_CLOSE => {
                chan.close_received = true;
                chan.stdin_buf = Vec::new();
                chan.unsent = None;
                if let Some(running) = &mut chan.command {
                    // The client is gone from this channel: so is the
                    // command (sshd's pipes would break it the same way),
                    // and nothing more of its output goes out.
                    if let Some(group) = running.group {
                        let _ = kill_process_group(group, Signal::KILL);
                    }
                    running.stdin = None;
                    running.outputs = [None, None];
                }
                if !chan.close_sent {
                    chan.close_sent = true;
                    out.reply(&Msg::new(msg::CHANNEL_CLOSE).u32(remote).finish())?;
                }
                Ok(())
            }
            msg::CHANNEL_REQUEST => {
                let kind = r.text()?.to_owned();
                let want_reply = r.bool()?;
                let started = match kind.as_str() {
                    "exec" if chan.command.is_none() => {
                        let command = String::from_utf8_lossy(r.string()?).into_owned();
                        self.exec(id, command)
                    }
                    // No pty, shell, subsystem, environment or signals:
                    // refused, and the client carries on (ssh sends env
                    // requests that do not want a reply).
                    _ => false,
                };
                if want_reply {
                    let answer = if started {
                        msg::CHANNEL_SUCCESS
                    } else {
                        msg::CHANNEL_FAILURE
                    };
                    out.reply(&Msg::new(answer).u32(remote).finish())?;
                }
                Ok(())
            }
            // Replies to requests we never make.
            msg::CHANNEL_SUCCESS | msg::CHANNEL_FAILURE => Ok(()),
            other => Err(Error::Protocol(format!(
                "unexpected channel message {other}"
            ))),
        }
    }

    /// Starts `command` on channel `id`; false if it cannot start.
    fn exec(&mut self, id: u32, command: String) -> bool {
        let Some(chan) = self.open.get_mut(&id) else {
            return false;
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
                return false;
            }
        };
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            let _ = child.start_kill();
            return false;
        };
        let group = child
            .id()
            .and_then(|pid| i32::try_from(pid).ok())
            .and_then(Pid::from_raw);
        let log_index = log_command(&mut self.commands, command);
        chan.command = Some(Running {
            stdin: Some(stdin),
            outputs: [Some(Pipe::Stdout(stdout)), Some(Pipe::Stderr(stderr))],
            exit: Some(Box::pin(async move { child.wait().await })),
            group,
            status: None,
            log_index,
        });
        true
    }

    /// Moves what can move without waiting: client data into commands,
    /// command output into data messages (while `output_allowed`), exits
    /// into the channel's end. Ready when something was done (the caller
    /// polls again; its read writes what was sealed), Pending when all
    /// waits are registered.
    pub(super) fn poll_io(
        &mut self,
        cx: &mut Context<'_>,
        out: &Output,
        output_allowed: bool,
    ) -> Poll<Result<()>> {
        let mut progress = false;
        for chan in self.open.values_mut() {
            progress |= poll_stdin(chan, cx, out)?;
            if output_allowed {
                progress |= poll_output(chan, cx, out)?;
            }
            progress |= poll_exit(chan, cx, out, &mut self.commands)?;
        }
        if progress {
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    }

    /// The connection is over: kills every command still running and
    /// waits (at most [`REAP_WAIT`]) for their exits, for the log.
    pub(super) async fn shutdown(&mut self) {
        for chan in self.open.values_mut() {
            if let Some(group) = chan.command.as_ref().and_then(|c| c.group) {
                let _ = kill_process_group(group, Signal::KILL);
            }
        }
        let reap = std::future::poll_fn(|cx| {
            let mut waiting = false;
            for chan in self.open.values_mut() {
                let Some(running) = &mut chan.command else {
                    continue;
                };
                if let Some(exit) = &mut running.exit {
                    match exit.as_mut().poll(cx) {
                        Poll::Ready(status) => {
                            running.exit = None;
                            running.group = None;
                            let outcome = describe(&status, chan.close_received);
                            record(&mut self.commands, running.log_index, outcome);
                        }
                        Poll::Pending => waiting = true,
                    }
                }
            }
            if waiting {
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        });
        let _ = tokio::time::timeout(REAP_WAIT, reap).await;
    }
}

/// The client's side of the window: what it may still send, and what was
/// taken and not yet given back.
struct Inflow {
    room: u32,
    unadjusted: u32,
}

impl Inflow {
    /// Gives the client window for `bytes` taken, once an adjust is due
    /// (on channel `remote`, unless we have closed it).
    fn give_back(&mut self, bytes: u32, remote: u32, closed: bool, out: &Output) -> Result<bool> {
        self.room += bytes;
        let Some(due) = due_adjust(&mut self.unadjusted, bytes) else {
            return Ok(false);
        };
        if closed {
            return Ok(false);
        }
        match out.seal(&adjust_message(remote, due))? {
            Sealed::Yes => Ok(true),
            Sealed::HoldFull => {
                // Given back with the next adjust instead.
                self.unadjusted += due;
                Ok(false)
            }
        }
    }
}

/// Writes buffered client data to the command's stdin; closes stdin after
/// the client's EOF once the buffer is empty.
fn poll_stdin(chan: &mut Chan, cx: &mut Context<'_>, out: &Output) -> Result<bool> {
    let Chan {
        remote,
        inflow,
        stdin_buf,
        eof_received,
        close_received,
        close_sent,
        command: Some(running),
        ..
    } = chan
    else {
        return Ok(false);
    };
    let mut progress = false;
    // An adjust the hold had no room for, retried (the client may have no
    // window left to send what would trigger the next).
    if inflow.unadjusted >= WINDOW / 4 && !*close_sent {
        progress |= inflow.give_back(0, *remote, false, out)?;
    }
    while let Some(stdin) = &mut running.stdin {
        if stdin_buf.is_empty() {
            if *eof_received || *close_received {
                // The command reads its end of input.
                running.stdin = None;
                progress = true;
            }
            break;
        }
        let taken = match Pin::new(stdin).poll_write(cx, stdin_buf) {
            Poll::Pending => break,
            Poll::Ready(Ok(n)) => n,
            Poll::Ready(Err(_)) => {
                // The command closed its stdin: what is buffered (and what
                // follows) is dropped, and still given back so the client
                // is never stuck.
                running.stdin = None;
                stdin_buf.len()
            }
        };
        stdin_buf.drain(..taken);
        inflow.give_back(taken as u32, *remote, *close_sent, out)?;
        progress = true;
    }
    if stdin_buf.is_empty() && stdin_buf.capacity() > 0 && running.stdin.is_none() {
        *stdin_buf = Vec::new();
    }
    Ok(progress)
}

/// Reads command output into data messages while the client's window has
/// room and the packet layer takes them.
fn poll_output(chan: &mut Chan, cx: &mut Context<'_>, out: &Output) -> Result<bool> {
    if chan.close_sent {
        return Ok(false);
    }
    // A message the hold had no room for goes first.
    if let Some(message) = chan.unsent.take() {
        if out.seal(&message)? == Sealed::HoldFull {
            chan.unsent = Some(message);
            return Ok(false);
        }
    }
    let Some(running) = &mut chan.command else {
        return Ok(false);
    };
    let mut progress = false;
    for _ in 0..READS_PER_POLL {
        let mut read_any = false;
        for slot in &mut running.outputs {
            let Some(output) = slot else {
                continue;
            };
            // Each read may take what is left of the client's window (both
            // pipes share it).
            let room = chan
                .send_window
                .min(u64::from(chan.max_packet.min(MAX_PACKET)));
            if room == 0 || !out.has_room_for_output() {
                break;
            }
            // Read straight into the message, behind its header.
            let mut message = output.header(chan.remote).u32(0).finish();
            let start = message.len();
            message.resize(start + room as usize, 0);
            let mut buf = ReadBuf::new(&mut message[start..]);
            match output.poll_read(cx, &mut buf) {
                Poll::Pending => continue,
                Poll::Ready(Ok(())) if buf.filled().is_empty() => {
                    *slot = None;
                    progress = true;
                }
                Poll::Ready(Ok(())) => {
                    let n = buf.filled().len();
                    message.truncate(start + n);
                    message[start - 4..start].copy_from_slice(&(n as u32).to_be_bytes());
                    // At most `room`, which the window holds.
                    chan.send_window = chan.send_window.saturating_sub(n as u64);
                    if out.seal(&message)? == Sealed::HoldFull {
                        chan.unsent = Some(message);
                        return Ok(true);
                    }
                    read_any = true;
                    progress = true;
                }
                // A pipe that fails has ended, as far as the client goes.
                Poll::Ready(Err(_)) => {
                    *slot = None;
                    progress = true;
                }
            }
        }
        if !read_any {
            break;
        }
    }
    Ok(progress)
}

/// Reaps the command, and once its output has ended too, sends
/// exit-status (or exit-signal), EOF and CLOSE.
fn poll_exit(
    chan: &mut Chan,
    cx: &mut Context<'_>,
    out: &Output,
    commands: &mut [CommandRecord],
) -> Result<bool> {
    let Some(running) = &mut chan.command else {
        return Ok(false);
    };
    let mut progress = false;
    if let Some(exit) = &mut running.exit {
        if let Poll::Ready(status) = exit.as_mut().poll(cx) {
            running.exit = None;
            running.group = None;
            running.status = Some(status);
            progress = true;
        }
    }
    // All output goes out before EOF: the exit waits for the pipes' end.
    let output_done = running.outputs.iter().all(Option::is_none) && chan.unsent.is_none();
    if !output_done {
        return Ok(progress);
    }
    let Some(status) = running.status.take() else {
        return Ok(progress);
    };
    let outcome = describe(&status, chan.close_received);
    record(commands, running.log_index, outcome);
    chan.command = None;
    if !chan.close_sent {
        let remote = chan.remote;
        let request = |kind: &str| {
            Msg::new(msg::CHANNEL_REQUEST)
                .u32(remote)
                .string(kind)
                .bool(false)
        };
        let report = status.ok().and_then(|s| match (s.code(), s.signal()) {
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
        let eof = Msg::new(msg::CHANNEL_EOF).u32(remote).finish();
        let close = Msg::new(msg::CHANNEL_CLOSE).u32(remote).finish();
        for message in report.into_iter().chain([eof, close]) {
            out.reply(&message)?;
        }
        chan.close_sent = true;
    }
    Ok(true)
}

/// The log's words for a command's end.
fn describe(status: &io::Result<ExitStatus>, close_received: bool) -> String {
    match status {
        Ok(s) => match (s.code(), s.signal()) {
            (Some(code), _) => format!("exit {code}"),
            // We killed it because the client closed the channel.
            (None, Some(9)) if close_received => "killed (the client closed the channel)".into(),
            (None, Some(sig)) => format!("signal {}", signal_name(sig)),
            (None, None) => "ended".into(),
        },
        Err(_) => "unknown".into(),
    }
}

/// Notes a command in the log, up to [`LOGGED_COMMANDS`]; one more line
/// counts the rest. Returns its line.
fn log_command(commands: &mut Vec<CommandRecord>, command: String) -> Option<usize> {
    if commands.len() < LOGGED_COMMANDS {
        commands.push(CommandRecord {
            command,
            outcome: "running".into(),
        });
        return Some(commands.len() - 1);
    }
    if commands.len() == LOGGED_COMMANDS {
        commands.push(CommandRecord {
            command: "(not logged)".into(),
            outcome: "0 more".into(),
        });
    }
    if let Some(last) = commands.last_mut() {
        let n: u64 = last
            .outcome
            .split(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        last.outcome = format!("{} more", n + 1);
    }
    None
}

fn record(commands: &mut [CommandRecord], index: Option<usize>, outcome: String) {
    if let Some(c) = index.and_then(|i| commands.get_mut(i)) {
        c.outcome = outcome;
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
