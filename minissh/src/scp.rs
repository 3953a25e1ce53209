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
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::Duration;

use crate::channel::{Channel, MAX_PACKET};
use crate::error::{Error, Result};
use crate::session::Session;

/// The remote scp's output, handed from the reader thread to us.
struct ToQueue(Sender<Vec<u8>>);

impl Write for ToQueue {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // A dropped receiver means the upload is over; output is moot.
        let _ = self.0.send(buf.to_vec());
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Bytes from the remote scp, read one acknowledgement at a time.
struct Acks {
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

/// Sends `files` into `remote_dir`, one acknowledged step at a time.
pub fn upload(session: &mut Session, files: &[PathBuf], remote_dir: &str) -> Result<()> {
    let (out_tx, out_rx) = mpsc::channel();
    let (err_tx, err_rx) = mpsc::channel();
    let target_flag = if files.len() > 1 { " -d" } else { "" };
    let command = format!("scp{target_flag} -t -- {}", shell_quote(remote_dir));
    let mut chan = session.open_exec(
        &command,
        Box::new(ToQueue(out_tx)),
        Box::new(ToQueue(err_tx)),
    )?;
    let mut acks = Acks {
        queue: out_rx,
        pending: Vec::new(),
        stderr: err_rx,
    };
    acks.expect_ok("starting scp")?;
    for path in files {
        send_file(&mut chan, &mut acks, path)?;
    }
    chan.send_eof()?;
    match chan.wait()? {
        crate::channel::ExitStatus::Code(0) => Ok(()),
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
        let (tx, rx) = mpsc::channel();
        let (_etx, erx) = mpsc::channel();
        tx.send(bytes.to_vec()).unwrap();
        Acks {
            queue: rx,
            pending: Vec::new(),
            stderr: erx,
        }
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
