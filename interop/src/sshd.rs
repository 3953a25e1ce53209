//! A private OpenSSH server on 127.0.0.1 for tests and benchmarks.
//!
//! Each [`Sshd`] has its own directory with fresh host and user keys and an
//! `sshd_config`, listens on a free port, runs in the foreground as our
//! child (`-D`), and is killed by its pid when dropped, also when a test
//! panics.

use std::fmt::Write as _;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Where Debian puts the server; sshd must be started by absolute path.
pub const SSHD: &str = "/usr/sbin/sshd";
/// The key generator from openssh-client.
pub const SSH_KEYGEN: &str = "/usr/bin/ssh-keygen";

/// A running private sshd.
#[derive(Debug)]
pub struct Sshd {
    child: Child,
    dir: PathBuf,
    port: u16,
}

/// Why a private sshd is unavailable: missing on this machine, or failed.
#[derive(Debug)]
pub enum Unavailable {
    /// openssh-server is not installed.
    NotInstalled(String),
    /// It is installed but did not start.
    Failed(String),
}

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unavailable::NotInstalled(why) | Unavailable::Failed(why) => f.write_str(why),
        }
    }
}

fn run(cmd: &mut Command) -> Result<(), Unavailable> {
    let out = cmd
        .output()
        .map_err(|e| Unavailable::Failed(format!("{cmd:?}: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Unavailable::Failed(format!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )))
    }
}

/// A new, empty temporary directory named `PREFIX-PID-N`, unique within this
/// process too: tests run in parallel and must not share keys or configs.
pub fn fresh_dir(prefix: &str) -> Result<PathBuf, String> {
    static SERIAL: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "{prefix}-{}-{}",
        std::process::id(),
        SERIAL.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{dir:?}: {e}"))?;
    Ok(dir)
}

/// Generates an unencrypted ed25519 key pair at `path` and `path.pub`.
pub fn keygen(path: &Path) -> Result<(), Unavailable> {
    run(Command::new(SSH_KEYGEN)
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "minissh-test", "-f"])
        .arg(path))
}

/// The user the server will log us in as: whoever runs the tests.
pub fn current_user() -> String {
    std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .or_else(|| {
            let out = Command::new("id").arg("-un").output().ok()?;
            Some(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        })
        .unwrap_or_else(|| "root".into())
}

/// Why OpenSSH cannot run here (its server, client or ssh-keygen is not
/// installed), if it cannot.
pub fn missing() -> Option<String> {
    [SSHD, SSH_KEYGEN, "/usr/bin/ssh"]
        .into_iter()
        .find(|tool| !Path::new(tool).exists())
        .map(|tool| format!("{tool} not found (apt-get install openssh-server openssh-client)"))
}

impl Sshd {
    /// For tests: a server, or `None` with a `SKIPPED` line when OpenSSH is
    /// not installed. Under `CI=true` a missing OpenSSH panics, and an
    /// installed sshd that does not start always does.
    pub fn start_or_skip(extra: &[&str]) -> Option<Sshd> {
        match Sshd::start(extra) {
            Ok(sshd) => Some(sshd),
            Err(Unavailable::NotInstalled(why)) => {
                if std::env::var("CI").as_deref() == Ok("true") {
                    panic!("OpenSSH is missing under CI=true ({why}): .ci/run must install it");
                }
                eprintln!("SKIPPED: {why}");
                None
            }
            Err(Unavailable::Failed(why)) => panic!("sshd is installed but did not start: {why}"),
        }
    }

    /// Starts a server with our defaults plus `extra` config lines (which
    /// come first, so they win: sshd keeps the first value it reads).
    pub fn start(extra: &[&str]) -> Result<Sshd, Unavailable> {
        for tool in [SSHD, SSH_KEYGEN] {
            if !Path::new(tool).exists() {
                return Err(Unavailable::NotInstalled(format!(
                    "{tool} not found (apt-get install openssh-server openssh-client)"
                )));
            }
        }
        let dir = fresh_dir("minissh-sshd").map_err(Unavailable::Failed)?;
        // sshd refuses to start without its privilege separation directory.
        std::fs::create_dir_all("/run/sshd")
            .map_err(|e| Unavailable::Failed(format!("cannot create /run/sshd: {e}")))?;
        keygen(&dir.join("host_ed25519"))?;
        keygen(&dir.join("client_ed25519"))?;
        keygen(&dir.join("stranger_ed25519"))?;
        std::fs::copy(dir.join("client_ed25519.pub"), dir.join("authorized_keys"))
            .map_err(|e| Unavailable::Failed(e.to_string()))?;

        let port = free_port()?;
        let mut config = String::new();
        for line in extra {
            let _ = writeln!(config, "{line}");
        }
        let d = dir.display();
        let _ = write!(
            config,
            "Port {port}\n\
             ListenAddress 127.0.0.1\n\
             HostKey {d}/host_ed25519\n\
             AuthorizedKeysFile {d}/authorized_keys\n\
             PidFile {d}/sshd.pid\n\
             StrictModes no\n\
             UsePAM no\n\
             PubkeyAuthentication yes\n\
             PasswordAuthentication no\n\
             KbdInteractiveAuthentication no\n\
             PermitRootLogin prohibit-password\n\
             LogLevel VERBOSE\n\
             MaxStartups 100\n\
             Subsystem sftp internal-sftp\n"
        );
        let config_path = dir.join("sshd_config");
        std::fs::write(&config_path, config).map_err(|e| Unavailable::Failed(e.to_string()))?;
        let log = dir.join("sshd.log");
        let child = Command::new(SSHD)
            .arg("-D")
            .arg("-f")
            .arg(&config_path)
            .arg("-E")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| Unavailable::Failed(format!("cannot start {SSHD}: {e}")))?;
        let mut sshd = Sshd { child, dir, port };
        sshd.wait_listening()?;
        Ok(sshd)
    }

    fn wait_listening(&mut self) -> Result<(), Unavailable> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(Unavailable::Failed(format!(
                    "sshd exited with {status}: {}",
                    self.log()
                )));
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(Unavailable::Failed(format!(
            "sshd did not listen within 10 s: {}",
            self.log()
        )))
    }

    /// Its process id (the listening server, which reaps each connection's
    /// processes).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The port it listens on (127.0.0.1 only).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its working directory (keys, config, log).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The private key in `authorized_keys`.
    pub fn client_key(&self) -> PathBuf {
        self.dir.join("client_ed25519")
    }

    /// A valid key the server does not know.
    pub fn stranger_key(&self) -> PathBuf {
        self.dir.join("stranger_ed25519")
    }

    /// The server's public host key file.
    pub fn host_key_pub(&self) -> PathBuf {
        self.dir.join("host_ed25519.pub")
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("sshd.log")).unwrap_or_default()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> Result<u16, Unavailable> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .map_err(|e| Unavailable::Failed(format!("no free port: {e}")))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| Unavailable::Failed(e.to_string()))
}
