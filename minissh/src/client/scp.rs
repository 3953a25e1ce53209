//! scp upload over a session channel (the `scp -t` sink protocol).
//!
//! The remote scp acknowledges with one byte: 0 for success, 1 for a
//! warning and 2 for a fatal error, each non-zero byte followed by a
//! message line. Every file header and every file body waits for its
//! acknowledgement before anything else is sent: a sender that runs ahead
//! loses the error (the seed "scp with several files" report).

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::time::Duration;

use crate::client::channel::{Channel, ExitStatus, Sink, MAX_PACKET};
use crate::error::{Error, Result};

/// Chunks of the remote scp's output that may wait for us: its stdout
/// holds one acknowledgement per step, so a remote scp that sends more
/// than this unasked is broken or hostile, and is refused rather than
/// allowed to grow our memory.
const QUEUED_CHUNKS: usize = 16;

/// The remote scp's output, handed from the reader thread to us.
struct ToQueue {
    queue: SyncSender<Vec<u8>>,
    /// Whether a full queue is an error (stdout, the acknowledgements) or
    /// drops the excess (stderr, shown only when something fails).
    strict: bool,
}

impl Write for ToQueue {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.queue.try_send(buf.to_vec()) {
            Err(TrySendError::Full(_)) if self.strict => Err(io::Error::other(format!(
                "the remote scp sent more than {QUEUED_CHUNKS} replies nobody asked for"
            ))),
            // A dropped receiver means the upload is over; output is moot.
            _ => Ok(buf.len()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The command that receives `files` into `remote_dir`.
pub fn sink_command(files: &[PathBuf], remote_dir: &str) -> String {
    let target_flag = if files.len() > 1 { " -d" } else { "" };
    format!("scp{target_flag} -t -- {}", shell_quote(remote_dir))
}

/// The channel's stdout and stderr sinks for an upload, and the reading
/// end that [`upload`] takes.
pub fn sinks() -> (Sink, Sink, Acks) {
    let (out_tx, out_rx) = mpsc::sync_channel(QUEUED_CHUNKS);
    let (err_tx, err_rx) = mpsc::sync_channel(QUEUED_CHUNKS);
    let stdout = ToQueue {
        queue: out_tx,
        strict: true,
    };
    let stderr = ToQueue {
        queue: err_tx,
        strict: false,
    };
    let acks = Acks {
        queue: out_rx,
        pending: Vec::new(),
        stderr: err_rx,
    };
    (Box::new(stdout), Box::new(stderr), acks)
}

/// Bytes from the remote scp, read one acknowledgement at a time.
#[derive(Debug)]
pub struct Acks {
    queue: Receiver<Vec<u8>>,
    pending: Vec<u8>,
    stderr: Receiver<Vec<u8>>,
}

impl Acks {
    fn byte(&mut self) -> Result<u8> {
        while self.pending.is_empty() {
            match self.queue.recv_timeout(Duration::from_secs(120)) {
                Ok(chunk) => self.pending = chunk,
                Err(_) => {
                    return Err(Error::Scp(format!(
                        "the remote scp stopped without acknowledging{}",
                        self.stderr_text()
                    )))
                }
            }
        }
        Ok(self.pending.remove(0))
    }

    fn stderr_text(&self) -> String {
        let text: Vec<u8> = self.stderr.try_iter().flatten().collect();
        let text = String::from_utf8_lossy(&text);
        let text = text.trim();
        if text.is_empty() {
            String::new()
        } else {
            format!(": {text}")
        }
    }

    /// Waits for one acknowledgement; an error line becomes an error.
    fn expect_ok(&mut self, what: &str) -> Result<()> {
        let code = self.byte()?;
        if code == 0 {
            return Ok(());
        }
        let mut line = Vec::new();
        loop {
            let b = self.byte()?;
            if b == b'\n' {
                break;
            }
            line.push(b);
        }
        let line = String::from_utf8_lossy(&line);
        let line = line.trim_start_matches("scp: ");
        let kind = if code == 1 { "refused" } else { "failed" };
        Err(Error::Scp(format!("{what} {kind}: {line}")))
    }
}

/// Sends `files` over `chan`, which runs [`sink_command`] with the sinks
/// of `acks`, one acknowledged step at a time. On an error the channel is
/// closed (and the server's close awaited), so the session can go on.
pub fn upload(mut chan: Channel, mut acks: Acks, files: &[PathBuf]) -> Result<()> {
    let result = send_all(&mut chan, &mut acks, files);
    if result.is_err() {
        // The error is the news; a failed close adds nothing to it.
        let _ = chan.close();
    }
    result
}

fn send_all(chan: &mut Channel, acks: &mut Acks, files: &[PathBuf]) -> Result<()> {
    acks.expect_ok("starting scp")?;
    for path in files {
        send_file(chan, acks, path)?;
    }
    chan.send_eof()?;
    match chan.wait()? {
        ExitStatus::Code(0) => Ok(()),
        status => Err(Error::Scp(format!(
            "the remote scp ended with {status:?}{}",
            acks.stderr_text()
        ))),
    }
}

fn send_file(chan: &mut Channel, acks: &mut Acks, path: &PathBuf) -> Result<()> {
    let shown = path.display();
    let mut file = File::open(path).map_err(|e| Error::Scp(format!("{shown}: {e}")))?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(Error::Scp(format!("{shown}: not a regular file")));
    }
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| !n.contains('\n'))
        .ok_or_else(|| Error::Scp(format!("{shown}: unusable file name")))?;
    let mode = file_mode(&meta);
    let size = meta.len();
    chan.write(format!("C{mode:04o} {size} {name}\n").as_bytes())?;
    acks.expect_ok(&format!("sending {name}"))?;
    let mut buf = vec![0u8; MAX_PACKET as usize];
    let mut left = size;
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = file.read(&mut buf[..want])?;
        if n == 0 {
            return Err(Error::Scp(format!("{shown} shrank while being sent")));
        }
        chan.write(&buf[..n])?;
        left -= n as u64;
    }
    chan.write(&[0])?;
    acks.expect_ok(&format!("writing {name}"))
}

#[cfg(unix)]
fn file_mode(meta: &std::fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o7777
}

#[cfg(not(unix))]
fn file_mode(_meta: &std::fs::Metadata) -> u32 {
    0o644
}

/// Single-quotes a word for the remote shell.
fn shell_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_spaces_and_quotes() {
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }

    fn acks(bytes: &[u8]) -> Acks {
        let (mut stdout, _stderr, acks) = sinks();
        stdout.write_all(bytes).unwrap();
        acks
    }

    #[test]
    fn a_flood_of_unasked_output_is_refused() {
        let (mut stdout, mut stderr, _acks) = sinks();
        for _ in 0..QUEUED_CHUNKS {
            stdout.write_all(b"\0").unwrap();
            stderr.write_all(b"noise").unwrap();
        }
        let err = stdout.write_all(b"\0").unwrap_err();
        assert!(err.to_string().contains("nobody asked for"), "{err}");
        // Stderr past the bound is dropped, not an error.
        stderr.write_all(b"more noise").unwrap();
    }

    #[test]
    fn an_error_line_is_reported() {
        let err = acks(b"\x01scp: /nope/a: Permission denied\n")
            .expect_ok("sending a")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "scp: sending a refused: /nope/a: Permission denied"
        );
        assert!(acks(b"\x00").expect_ok("x").is_ok());
    }
}
