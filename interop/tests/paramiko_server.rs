//! minissh against paramiko's server Transport (peers/paramiko_server.py):
//! an ed25519 host key, kex with strict kex, the service request, a refused
//! key reported cleanly, and an echoing exec channel under every cipher
//! paramiko serves.
//!
//! Needs python3 with paramiko, and ssh-keygen for the server's keys.
//! Without them the tests show as ignored, except under CI=true, where a
//! missing peer is a failure.

use std::io::{BufRead, BufReader, Cursor};
use std::process::{Child, ChildStdout, Command, Stdio};

use interop::harness;
use minissh::{ClientConfig, Error, ExitStatus, HostKeyCheck, Session};
use ssh_packetizer::CipherAlgorithm as C;

/// Why paramiko cannot run here, if it cannot.
fn paramiko_missing() -> Option<String> {
    harness::python_module_missing("paramiko")
}

/// Whether paramiko runs; under `CI=true` its absence is a failure.
fn paramiko_ready() -> bool {
    harness::peer_ready(paramiko_missing())
}

struct Server {
    child: Child,
    lines: BufReader<ChildStdout>,
    port: u16,
    dir: std::path::PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Server {
    fn start() -> Option<Server> {
        if !paramiko_ready() {
            return None;
        }
        // One directory per server: the tests run in parallel.
        let dir = interop::sshd::fresh_dir("minissh-paramiko").unwrap();
        if !std::path::Path::new(interop::sshd::SSH_KEYGEN).exists() {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("ssh-keygen is missing under CI=true: .ci/run must install openssh-client");
            }
            eprintln!("SKIPPED: ssh-keygen (openssh-client) is needed for keys");
            return None;
        }
        for name in ["host", "client", "stranger"] {
            interop::sshd::keygen(&dir.join(name)).unwrap_or_else(|e| panic!("{e}"));
        }
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/peers/paramiko_server.py"
        );
        let mut child = Command::new("python3")
            .arg(script)
            .arg(dir.join("host"))
            .arg(dir.join("client.pub"))
            .stdout(Stdio::piped())
            .spawn()
            .expect("start paramiko_server.py");
        let mut lines = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        lines.read_line(&mut first).unwrap();
        let port = first
            .strip_prefix("PORT ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("paramiko_server.py said {first:?}"));
        Some(Server {
            child,
            lines,
            port,
            dir,
        })
    }

    /// The KEX and AUTH lines of one connection; the server prints KEX
    /// when authentication starts, so it always comes first.
    fn kex_and_auth(&mut self) -> (String, String) {
        let (kex, auth) = (self.next_line(), self.next_line());
        assert!(
            kex.starts_with("KEX ") && auth.starts_with("AUTH "),
            "expected a KEX and then an AUTH line, got {kex:?} and {auth:?}"
        );
        (kex, auth)
    }

    fn next_line(&mut self) -> String {
        let mut line = String::new();
        self.lines.read_line(&mut line).unwrap();
        line.trim().to_owned()
    }

    fn config(&self, key: &str) -> ClientConfig {
        let mut config = ClientConfig::new("127.0.0.1", self.port, "tester", self.dir.join(key));
        config.host_key = HostKeyCheck::parse(self.dir.join("host.pub").to_str().unwrap()).unwrap();
        config
    }
}

use interop::data::Recorded as Collect;

fn an_auth_failure_is_reported_cleanly() {
    let Some(mut server) = Server::start() else {
        return;
    };
    let err = Session::connect(&server.config("stranger")).unwrap_err();
    assert!(
        matches!(&err, Error::AuthFailed { methods } if methods == "publickey"),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "authentication failed: the server refused the key (it accepts: publickey)"
    );
    let (kex, auth) = server.kex_and_auth();
    assert!(kex.starts_with("KEX "), "{kex}");
    assert_eq!(auth, "AUTH tester refused");
}

fn every_cipher_paramiko_serves_runs_a_channel() {
    let Some(mut server) = Server::start() else {
        return;
    };
    for cipher in [
        C::Aes128Ctr,
        C::Aes192Ctr,
        C::Aes256Ctr,
        C::Aes128Gcm,
        C::Aes256Gcm,
    ] {
        let mut config = server.config("client");
        config.prefs.ciphers = vec![cipher];
        let mut session =
            Session::connect(&config).unwrap_or_else(|e| panic!("{}: {e}", cipher.name()));
        // paramiko names the cipher it decrypts with; under an AEAD
        // cipher its MAC field is a leftover of negotiation, so only the
        // ctr suites' MAC is compared.
        let (kex, auth) = server.kex_and_auth();
        assert!(kex.starts_with(&format!("KEX {} ", cipher.name())), "{kex}");
        if !cipher.is_aead() {
            let mac = session.info().negotiated.unwrap().mac_c2s;
            assert!(kex.ends_with(mac.name()), "{kex}");
        }
        assert_eq!(auth, "AUTH tester ok");
        assert!(session.info().strict_kex, "paramiko 3.4+ offers strict kex");
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let out = Collect::default();
        let status = session
            .exec(
                "echo-back",
                Cursor::new(data.clone()),
                Box::new(out.clone()),
                Box::new(std::io::sink()),
            )
            .unwrap();
        assert_eq!(status, ExitStatus::Code(0));
        assert!(
            *out.0.lock().unwrap() == data,
            "{}: echo differs",
            cipher.name()
        );
        assert_eq!(server.next_line(), "EXEC echo-back 300000");
        session.disconnect().unwrap();
    }
}

fn main() -> std::process::ExitCode {
    let tests: &[harness::PeerTest] = &[
        (
            "an_auth_failure_is_reported_cleanly",
            an_auth_failure_is_reported_cleanly,
            true,
        ),
        (
            "every_cipher_paramiko_serves_runs_a_channel",
            every_cipher_paramiko_serves_runs_a_channel,
            true,
        ),
    ];
    harness::run_peer_tests(tests, paramiko_missing())
}
