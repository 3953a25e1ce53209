//! The server's log: timestamped lines, one per connection when it ends,
//! saying who connected, what was agreed, what ran and how it ended.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};
use crate::transport::algorithms::Agreed;

/// Where log lines go: a file (appended to) or stderr.
#[derive(Debug)]
pub struct Log {
    file: Option<Mutex<File>>,
}

impl Log {
    /// Appends to `path`, creating it.
    pub fn to_file(path: &Path) -> Result<Log> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| {
                Error::Io(std::io::Error::new(
                    e.kind(),
                    format!("{}: {e}", path.display()),
                ))
            })?;
        Ok(Log {
            file: Some(Mutex::new(file)),
        })
    }

    /// Writes to stderr.
    pub fn stderr() -> Log {
        Log { file: None }
    }

    /// Writes one line, with the UTC time first. Each line is a single
    /// write, so lines from several connections never interleave.
    pub fn line(&self, text: &str) {
        let line = format!("{} {text}\n", utc_now());
        match &self.file {
            Some(file) => {
                let mut file = file.lock().unwrap_or_else(|e| e.into_inner());
                let _ = file.write_all(line.as_bytes());
            }
            None => {
                let _ = std::io::stderr().write_all(line.as_bytes());
            }
        }
    }
}

/// The time now, as [`utc`] writes it.
fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    utc(secs)
}

/// `YYYY-MM-DDTHH:MM:SSZ` for `secs` after the Unix epoch (the
/// civil-from-days conversion of Howard Hinnant's date algorithms).
fn utc(secs: u64) -> String {
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// One command a connection ran.
#[derive(Clone, Debug)]
pub struct CommandRecord {
    /// The command line, as the client sent it.
    pub command: String,
    /// How it ended: `exit 0`, `signal TERM`, `killed` (the client went
    /// away first), or `running` at the end of the connection.
    pub outcome: String,
}

/// What the log says about one connection.
#[derive(Clone, Debug)]
pub struct Record {
    /// The client's address.
    pub peer: SocketAddr,
    /// The client's identification line.
    pub client_id: String,
    /// The algorithms of the latest key exchange.
    pub negotiated: Option<Agreed>,
    /// Whether strict kex is in force.
    pub strict_kex: bool,
    /// The user name it authenticated as.
    pub user: Option<String>,
    /// Commands run, in order.
    pub commands: Vec<CommandRecord>,
    /// Rekeys the client started.
    pub client_rekeys: u32,
    /// Rekeys the server started.
    pub server_rekeys: u32,
    /// Payload bytes received.
    pub bytes_in: u64,
    /// Payload bytes sent.
    pub bytes_out: u64,
    /// Why the connection ended.
    pub end: String,
}

impl Record {
    /// A record for a connection from `peer` that has just begun.
    pub fn new(peer: SocketAddr) -> Record {
        Record {
            peer,
            client_id: String::new(),
            negotiated: None,
            strict_kex: false,
            user: None,
            commands: Vec::new(),
            client_rekeys: 0,
            server_rekeys: 0,
            bytes_in: 0,
            bytes_out: 0,
            end: String::new(),
        }
    }
}

/// Quotes a value that may hold spaces or quotes, as Rust debug strings do.
struct Quoted<'a>(&'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl fmt::Display for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} client={}", self.peer, Quoted(&self.client_id))?;
        if let Some(n) = &self.negotiated {
            write!(
                f,
                " kex={} cipher={},{} mac={},{} compression={},{}",
                n.kex,
                n.cipher_c2s.name(),
                n.cipher_s2c.name(),
                n.mac_c2s.name(),
                n.mac_s2c.name(),
                n.comp_c2s.name(),
                n.comp_s2c.name()
            )?;
        }
        write!(
            f,
            " strict-kex={}",
            if self.strict_kex { "yes" } else { "no" }
        )?;
        match &self.user {
            Some(user) => write!(f, " user={}", Quoted(user))?,
            None => write!(f, " user=-")?,
        }
        for c in &self.commands {
            write!(f, " command={} {}", Quoted(&c.command), c.outcome)?;
        }
        write!(
            f,
            " rekeys={}+{} bytes-in={} bytes-out={} end={}",
            self.client_rekeys,
            self.server_rekeys,
            self.bytes_in,
            self.bytes_out,
            Quoted(&self.end)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_one_line_with_every_field() {
        let mut r = Record::new("127.0.0.1:4000".parse().unwrap());
        r.client_id = "SSH-2.0-OpenSSH_9.2p1 Debian".into();
        r.user = Some("tester".into());
        r.commands.push(CommandRecord {
            command: "echo \"hi\"\nthere".into(),
            outcome: "exit 3".into(),
        });
        r.end = "client disconnected".into();
        let line = r.to_string();
        assert!(!line.contains('\n'), "{line}");
        assert_eq!(
            line,
            "127.0.0.1:4000 client=\"SSH-2.0-OpenSSH_9.2p1 Debian\" strict-kex=no \
             user=\"tester\" command=\"echo \\\"hi\\\"\\nthere\" exit 3 rekeys=0+0 \
             bytes-in=0 bytes-out=0 end=\"client disconnected\""
        );
    }

    #[test]
    fn the_time_is_utc_in_iso_form() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(utc(4_107_542_399), "2100-02-28T23:59:59Z");
    }
}
