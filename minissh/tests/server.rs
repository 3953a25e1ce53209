//! `minissh serve` against real clients: OpenSSH's `ssh` and `scp -O`,
//! paramiko's SSHClient, asyncssh, and minissh's own client; and against
//! bad clients (a line before the identification, silence, a drip, too
//! many connections), after which it must still serve a good one.
//!
//! Each test starts its own server on a free port of 127.0.0.1 with fresh
//! keys in a directory of its own, and kills it by pid at the end (also
//! when the test panics). A test whose client is not installed shows as
//! ignored, except under CI=true, where it runs and fails.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use minissh::identity::Identity;
use minissh::{ClientConfig, ExitStatus, HostKeyCheck, Session};
use sha2::{Digest, Sha256};
use ssh_packetizer::{CipherAlgorithm, MacAlgorithm};

/// A running `minissh serve`.
struct Server {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl Server {
    /// Starts a server with `extra` options, a generated host key and one
    /// authorized client key.
    fn start(extra: &[&str]) -> Server {
        let dir = interop::sshd::fresh_dir("minissh-serve").unwrap();
        let client = Identity::load_or_generate(&dir.join("client")).unwrap();
        std::fs::write(dir.join("authorized_keys"), client.public_line() + "\n").unwrap();
        Identity::load_or_generate(&dir.join("stranger")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_minissh"))
            .arg("serve")
            .args(["-l", "127.0.0.1:0"])
            .arg("-k")
            .arg(dir.join("host"))
            .arg("-a")
            .arg(dir.join("authorized_keys"))
            .arg("-E")
            .arg(dir.join("log"))
            .args(extra)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let mut server = Server {
            child,
            dir,
            port: 0,
        };
        let line = server.wait_log("listening on 127.0.0.1:");
        let addr = line.split("listening on ").nth(1).unwrap();
        let port = addr.split([':', ',']).nth(1).unwrap();
        server.port = port.parse().unwrap();
        server
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    /// Waits (10 s at most) for a log line containing `what`.
    fn wait_log(&self, what: &str) -> String {
        self.wait_log_count(what, 1)
    }

    /// Waits for the `n`th log line containing `what`, and returns it.
    fn wait_log_count(&self, what: &str, n: usize) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(line) = self.log().lines().filter(|l| l.contains(what)).nth(n - 1) {
                return line.to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "no log line with {what:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn key(&self) -> PathBuf {
        self.dir.join("client")
    }

    /// The server is still running.
    fn assert_alive(&mut self) {
        assert!(
            self.child.try_wait().unwrap().is_none(),
            "the server died:\n{}",
            self.log()
        );
    }

    /// A minissh client config for this server, trusting its host key.
    fn config(&self) -> ClientConfig {
        let mut config = ClientConfig::new("127.0.0.1", self.port, "tester", self.key());
        config.host_key = HostKeyCheck::parse(self.dir.join("host.pub").to_str().unwrap()).unwrap();
        config
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("server log:\n{}", self.log());
        }
    }
}

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut data = vec![0u8; n];
    getrandom::fill(&mut data).unwrap();
    data
}

/// Runs `cmd` with `stdin` fed on a thread, and collects its output.
fn run_with_input(cmd: &mut Command, stdin: Vec<u8>) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let mut input = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    out
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

// ---------------------------------------------------------------- OpenSSH

const SSH: &str = "/usr/bin/ssh";
const SCP: &str = "/usr/bin/scp";

/// Options for OpenSSH's client: our key only, no prompts, a known_hosts
/// file of the test's own.
fn openssh_options(server: &Server) -> Vec<String> {
    openssh_options_with_key(server, &server.key())
}

fn openssh_options_with_key(server: &Server, key: &Path) -> Vec<String> {
    [
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=accept-new",
        "-o",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([
        format!(
            "UserKnownHostsFile={}",
            server.dir.join("known_hosts").display()
        ),
        "-o".into(),
        "IdentitiesOnly=yes".into(),
        "-F".into(),
        "/dev/null".into(),
        "-i".into(),
        key.display().to_string(),
    ])
    .collect()
}

fn ssh(server: &Server, extra: &[&str], command: &str) -> Command {
    let mut cmd = Command::new(SSH);
    cmd.args(openssh_options(server))
        .args(["-p", &server.port.to_string()])
        .args(extra)
        .arg("tester@127.0.0.1")
        .arg(command);
    cmd
}

/// What both OpenSSH's client and this build support: (cipher, MAC)
/// pairs, the MAC `None` under an AEAD cipher.
fn openssh_suites() -> Vec<(CipherAlgorithm, Option<MacAlgorithm>)> {
    let query = |what: &str| -> Vec<String> {
        let out = Command::new(SSH).args(["-Q", what]).output().unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    };
    let (ciphers, macs) = (query("cipher"), query("mac"));
    let mut suites = Vec::new();
    for &cipher in CipherAlgorithm::ALL {
        if cipher == CipherAlgorithm::None
            || !cipher.is_available()
            || !ciphers.iter().any(|c| c == cipher.name())
        {
            continue;
        }
        if cipher.is_aead() {
            suites.push((cipher, None));
            continue;
        }
        for &mac in MacAlgorithm::ALL {
            if mac != MacAlgorithm::None
                && mac.is_available()
                && macs.iter().any(|m| m == mac.name())
            {
                suites.push((cipher, Some(mac)));
            }
        }
    }
    suites
}

fn openssh_every_cipher_and_mac() {
    let server = Server::start(&[]);
    let upload = random_bytes(3 * 1000 * 1000);
    let upload_hash = sha256_hex(&upload);
    let suites = openssh_suites();
    assert!(suites.len() >= 33, "only {} suites", suites.len());
    let zeros_hash = |n: usize| sha256_hex(&vec![0u8; n]);
    for (i, (cipher, mac)) in suites.iter().enumerate() {
        let mut extra = vec!["-c", cipher.name()];
        if let Some(mac) = mac {
            extra.extend(["-m", mac.name()]);
        }
        let what = format!("{} {}", cipher.name(), mac.map_or("", |m| m.name()));
        // Up: 3 MB through sha256sum, with stderr and an exit code.
        let out = run_with_input(
            &mut ssh(&server, &extra, "sha256sum; echo to-stderr >&2; exit 7"),
            upload.clone(),
        );
        assert_eq!(out.status.code(), Some(7), "{what}: {}", stderr_of(&out));
        assert!(
            String::from_utf8_lossy(&out.stdout).starts_with(&upload_hash),
            "{what}: {out:?}"
        );
        assert!(stderr_of(&out).contains("to-stderr\n"), "{what}: {out:?}");
        // Down: 64 MiB (8 MiB for 3DES, which moves about 20 MB/s).
        let down = if cipher.name() == "3des-cbc" {
            8 << 20
        } else {
            64 << 20
        };
        let out = ssh(&server, &extra, &format!("head -c {down} /dev/zero"))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "{what}: {}", stderr_of(&out));
        assert_eq!(out.stdout.len(), down, "{what}");
        assert_eq!(sha256_hex(&out.stdout), zeros_hash(down), "{what}");
        // The server's log names what was used.
        let line = server.wait_log_count("head -c", i + 1);
        let mac_name = mac.map_or("none", |m| m.name());
        assert!(
            line.contains(&format!(
                "cipher={0},{0} mac={1},{1}",
                cipher.name(),
                mac_name
            )),
            "{what}: {line}"
        );
    }
}

/// Counts a connection's rekeys from its log line (`rekeys=C+S`).
fn rekeys(line: &str) -> (u32, u32) {
    let field = line.split(" rekeys=").nth(1).unwrap();
    let (client, rest) = field.split_once('+').unwrap();
    let server = rest.split(' ').next().unwrap();
    (client.parse().unwrap(), server.parse().unwrap())
}

fn openssh_rekeys_started_by_either_side() {
    let echo = random_bytes(32 << 20);
    let hash = sha256_hex(&echo);
    // Client-started: ssh's RekeyLimit.
    let server = Server::start(&[]);
    let out = run_with_input(
        &mut ssh(&server, &["-o", "RekeyLimit=1M"], "cat | sha256sum"),
        echo.clone(),
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with(&hash));
    let line = server.wait_log("cat | sha256sum");
    let (client, _) = rekeys(&line);
    assert!(client >= 20, "{line}");
    // Server-started: our own byte limit, with data both ways.
    let server = Server::start(&["-R", "1048576"]);
    let out = run_with_input(&mut ssh(&server, &[], "cat"), echo.clone());
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(out.stdout.len(), echo.len());
    assert!(out.stdout == echo, "the echo came back changed");
    let line = server.wait_log("command=\"cat\"");
    let (_, by_server) = rekeys(&line);
    // 1 MiB each way of 32 MiB: one rekey per MiB.
    assert!(by_server >= 20, "{line}");
}

fn scp(server: &Server) -> Command {
    let mut cmd = Command::new(SCP);
    cmd.arg("-O")
        .args(openssh_options(server))
        .args(["-P", &server.port.to_string()]);
    cmd
}

fn openssh_scp_several_files_and_an_error() {
    let server = Server::start(&[]);
    let local = server.dir.join("local");
    let remote = server.dir.join("remote");
    std::fs::create_dir_all(&local).unwrap();
    std::fs::create_dir_all(&remote).unwrap();
    let files = [
        ("one.bin", 1),
        ("hundred-k.bin", 100_000),
        ("five-m.bin", 5 << 20),
    ];
    for (name, size) in files {
        std::fs::write(local.join(name), random_bytes(size)).unwrap();
    }
    let out = scp(&server)
        .args(files.map(|(name, _)| local.join(name)))
        .arg(format!("tester@127.0.0.1:{}/", remote.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    for (name, _) in files {
        assert!(
            std::fs::read(remote.join(name)).unwrap() == std::fs::read(local.join(name)).unwrap(),
            "{name} arrived changed"
        );
    }
    // Into a directory that does not exist: the remote scp's error reaches
    // the user, and scp fails.
    let out = scp(&server)
        .arg(local.join("one.bin"))
        .arg(format!(
            "tester@127.0.0.1:{}/missing/dir/",
            remote.display()
        ))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = stderr_of(&out);
    assert!(text.contains("No such file or directory"), "{text}");
}

fn openssh_exec_refusals_and_exit_signals() {
    let server = Server::start(&[]);
    // A command killed by a signal: ssh reports it and exits 255.
    let out = ssh(&server, &[], "kill -TERM $$").output().unwrap();
    assert_eq!(out.status.code(), Some(255), "{out:?}");
    let line = server.wait_log("kill -TERM");
    assert!(line.contains("signal TERM"), "{line}");
    // A key that is not authorized.
    let out = Command::new(SSH)
        .args(openssh_options_with_key(
            &server,
            &server.dir.join("stranger"),
        ))
        .args(["-p", &server.port.to_string(), "tester@127.0.0.1", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(255));
    assert!(stderr_of(&out).contains("Permission denied"), "{out:?}");
    // A pty is refused (no pty support): ssh -tt treats that as fatal.
    let out = ssh(&server, &["-tt"], "echo no-pty").output().unwrap();
    assert!(
        stderr_of(&out).contains("PTY allocation request failed"),
        "{out:?}"
    );
    // Environment requests are refused too, and ssh carries on without.
    let out = ssh(
        &server,
        &["-o", "SetEnv=MINISSH_TEST=1"],
        "echo ${MINISSH_TEST:-unset}",
    )
    .output()
    .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "unset\n", "{out:?}");
}

/// Waits (10 s at most) for a command to create `path`.
fn wait_for_file(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A client stopped dead with SIGSTOP; killed when dropped.
struct Frozen(Child);

impl Frozen {
    fn stop(child: Child) -> Frozen {
        let pid = child.id().to_string();
        let frozen = Frozen(child);
        assert!(Command::new("kill")
            .args(["-STOP", &pid])
            .status()
            .unwrap()
            .success());
        frozen
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `command` through ssh and freezes ssh once the command has
/// started (it touches a file first).
fn ssh_then_freeze(server: &Server, command: &str) -> Frozen {
    let started = server.dir.join("started");
    let _ = std::fs::remove_file(&started);
    let client = ssh(
        server,
        &[],
        &format!("touch {}; {command}", started.display()),
    )
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    wait_for_file(&started);
    Frozen::stop(client)
}

fn openssh_keepalive_cuts_off_a_frozen_client() {
    let server = Server::start(&["-K", "1", "-M", "2"]);
    // An answering client outlives many keepalives.
    let out = ssh(&server, &[], "sleep 4; echo awake").output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "awake\n", "{out:?}");
    // A frozen one is cut off after two unanswered ones.
    let frozen = ssh_then_freeze(&server, "sleep 30");
    let line = server.wait_log("sleep 30");
    drop(frozen);
    assert!(line.contains("answered none of 2 keepalives"), "{line}");
    // The command (and the sleep its shell started) ended with it.
    assert!(line.contains("signal KILL"), "{line}");
}

fn openssh_a_client_frozen_mid_rekey_is_cut_off() {
    // The server rekeys after every 32 KiB; the client freezes during a
    // download, so the server's next rekey never finishes. No keepalive
    // goes out during a key exchange, and the output waits at the gate,
    // not on the socket: only the rekey deadline can notice. The budget is
    // small so that the socket's buffers (128 KiB and more on loopback)
    // take the rest of it once the client is frozen: the rekey then starts
    // from the sending side, with no packet from the client to wake the
    // reader (a budget of 1 MiB, bigger than the buffers, made this test
    // depend on how far the client read before it froze).
    let server = Server::start(&["-R", "32768", "-T", "2"]);
    let frozen = ssh_then_freeze(&server, "head -c 4000000000 /dev/zero");
    let line = server.wait_log("head -c 4000000000");
    drop(frozen);
    assert!(
        line.contains("a key exchange did not finish within 2 s"),
        "{line}"
    );
}

fn paramiko_a_client_that_stops_reading_is_cut_off() {
    // No keepalive: only the write stall limit can notice. The client
    // grants a 1 GiB window, so the server's output is stopped by the
    // socket, not by flow control, once the client freezes.
    let server = Server::start(&["-W", "2"]);
    let started = server.dir.join("started");
    let script = r#"
import sys, time, paramiko
port, key, started = int(sys.argv[1]), sys.argv[2], sys.argv[3]
t = paramiko.Transport(("127.0.0.1", port))
t.connect(username="tester", pkey=paramiko.Ed25519Key.from_private_key_file(key))
ch = t.open_session(window_size=1 << 30)
ch.exec_command("head -c 4000000000 /dev/zero")
while len(ch.recv(32768)) > 0:
    open(started, "w").close()
    time.sleep(0.01)
"#;
    let frozen = Command::new("python3")
        .args(["-c", script])
        .arg(server.port.to_string())
        .arg(server.key())
        .arg(&started)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_file(&started);
    let frozen = Frozen::stop(frozen);
    let frozen_at = Instant::now();
    let line = server.wait_log("head -c 4000000000");
    let took = frozen_at.elapsed();
    drop(frozen);
    assert!(line.contains("a write made no progress for 2"), "{line}");
    assert!(took < Duration::from_secs(10), "cut off after {took:?}");
}

fn paramiko_authenticating_slowly_with_keepalives_on() {
    // Keepalives start with the session: a client still authenticating
    // gets none (OpenSSH's client would call one a protocol error).
    let server = Server::start(&["-K", "1"]);
    let script = r#"
import sys, time, paramiko
port, key = int(sys.argv[1]), sys.argv[2]
t = paramiko.Transport(("127.0.0.1", port))
t.start_client(timeout=10)
time.sleep(3)
t.auth_publickey("tester", paramiko.Ed25519Key.from_private_key_file(key))
ch = t.open_session()
ch.exec_command("sleep 3; echo late")
print(ch.makefile().read().decode().strip(), ch.recv_exit_status())
t.close()
"#;
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(server.port.to_string())
        .arg(server.key())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "late 0\n");
}

// --------------------------------------------------- paramiko and asyncssh

fn python_client(script: &str, server: &Server, args: &[String]) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/peers")
        .join(script);
    let out = Command::new("python3")
        .arg(path)
        .arg(server.port.to_string())
        .arg(server.key())
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script} failed: {}\n{}",
        stderr_of(&out),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// paramiko's ciphers and MACs that this build has.
fn paramiko_suites() -> (Vec<&'static str>, Vec<&'static str>) {
    let ciphers = [
        "aes128-ctr",
        "aes192-ctr",
        "aes256-ctr",
        "aes128-cbc",
        "aes192-cbc",
        "aes256-cbc",
        "3des-cbc",
        "aes128-gcm@openssh.com",
        "aes256-gcm@openssh.com",
    ];
    let macs = [
        "hmac-sha2-256",
        "hmac-sha2-512",
        "hmac-sha2-256-etm@openssh.com",
        "hmac-sha2-512-etm@openssh.com",
        "hmac-sha1",
        "hmac-md5",
        "hmac-sha1-96",
        "hmac-md5-96",
    ];
    let cipher_ok = |c: &&str| c.parse::<CipherAlgorithm>().is_ok_and(|c| c.is_available());
    let mac_ok = |m: &&str| m.parse::<MacAlgorithm>().is_ok_and(|m| m.is_available());
    (
        ciphers.into_iter().filter(cipher_ok).collect(),
        macs.into_iter().filter(mac_ok).collect(),
    )
}

fn paramiko_every_cipher() {
    let server = Server::start(&[]);
    let (ciphers, macs) = paramiko_suites();
    let mut args = Vec::new();
    for c in &ciphers {
        args.extend(["--cipher".to_string(), c.to_string()]);
    }
    for m in &macs {
        args.extend(["--mac".to_string(), m.to_string()]);
    }
    let out = python_client("paramiko_client.py", &server, &args);
    for c in &ciphers {
        assert!(
            out.lines().any(|l| l.starts_with(&format!("{c} "))),
            "{c} missing:\n{out}"
        );
    }
    let expected_lines: usize = ciphers
        .iter()
        .map(|c| if c.contains("gcm") { 1 } else { macs.len() })
        .sum();
    assert_eq!(out.lines().count(), expected_lines, "{out}");
    assert!(server.log().contains("client=\"SSH-2.0-paramiko"));
}

fn asyncssh_client_with_rekeys() {
    let server = Server::start(&[]);
    let suites = [
        "chacha20-poly1305@openssh.com",
        "aes256-gcm@openssh.com",
        "aes128-ctr,hmac-sha2-256-etm@openssh.com",
        "aes256-ctr,umac-128-etm@openssh.com",
        "aes192-ctr,hmac-sha1",
    ];
    let args: Vec<String> = suites
        .iter()
        .flat_map(|s| ["--suite".to_string(), s.to_string()])
        .collect();
    let out = python_client("asyncssh_client.py", &server, &args);
    assert_eq!(out.lines().count(), suites.len(), "{out}");
    // Each connection rekeyed during its 4 MB echo, started by asyncssh.
    for n in 1..=suites.len() {
        let line = server.wait_log_count("command=\"cat\" exit 0", n);
        assert!(rekeys(&line).0 >= 3, "{line}");
        assert!(line.contains("AsyncSSH"), "{line}");
    }
}

// ----------------------------------------------- minissh client and server

fn minissh_client_against_minissh_server() {
    let server = Server::start(&[]);
    // Every cipher and MAC of this build, both directions.
    for &cipher in CipherAlgorithm::ALL {
        if cipher == CipherAlgorithm::None || !cipher.is_available() {
            continue;
        }
        let macs: Vec<MacAlgorithm> = if cipher.is_aead() {
            vec![MacAlgorithm::HmacSha256]
        } else {
            MacAlgorithm::ALL
                .iter()
                .copied()
                .filter(|m| *m != MacAlgorithm::None && m.is_available())
                .collect()
        };
        for mac in macs {
            let mut config = server.config();
            config.prefs.ciphers = vec![cipher];
            config.prefs.macs = vec![mac];
            let mut session = Session::connect(&config).unwrap();
            let (stdout, collected) = collector();
            let status = session
                .exec(
                    "tr a-z A-Z; exit 9",
                    &b"minissh both ways\n"[..],
                    stdout,
                    Box::new(std::io::sink()),
                )
                .unwrap();
            assert_eq!(status, ExitStatus::Code(9), "{cipher:?} {mac:?}");
            assert_eq!(&collected.lock().unwrap()[..], b"MINISSH BOTH WAYS\n");
            let n = session.info().negotiated.unwrap();
            assert_eq!((n.cipher_c2s, n.cipher_s2c), (cipher, cipher));
            session.disconnect().unwrap();
        }
    }
    // 32 MiB through `cat` both ways at once, rekeying every MiB: the two
    // ends' readers never wait behind their own stuck senders, so neither
    // stalls the other.
    let mut config = server.config();
    config.rekey = Some(ssh_packetizer::RekeyLimits {
        max_bytes: Some(1 << 20),
        ..Default::default()
    });
    let mut session = Session::connect(&config).unwrap();
    let echo = random_bytes(32 << 20);
    let (stdout, collected) = collector();
    let status = session
        .exec(
            "cat",
            std::io::Cursor::new(echo.clone()),
            stdout,
            Box::new(std::io::sink()),
        )
        .unwrap();
    assert_eq!(status, ExitStatus::Code(0));
    assert!(
        *collected.lock().unwrap() == echo,
        "the echo came back changed"
    );
    assert!(session.info().client_rekeys >= 20, "{:?}", session.info());
    session.disconnect().unwrap();
    // Several commands on one connection, and an scp upload.
    let mut session = Session::connect(&server.config()).unwrap();
    for code in [0, 3] {
        let status = session
            .exec(
                &format!("exit {code}"),
                std::io::empty(),
                Box::new(std::io::sink()),
                Box::new(std::io::sink()),
            )
            .unwrap();
        assert_eq!(status, ExitStatus::Code(code));
    }
    let local = server.dir.join("up.bin");
    std::fs::write(&local, random_bytes(200_000)).unwrap();
    let remote = server.dir.join("remote");
    std::fs::create_dir_all(&remote).unwrap();
    session
        .scp_upload(std::slice::from_ref(&local), remote.to_str().unwrap())
        .unwrap();
    assert!(std::fs::read(remote.join("up.bin")).unwrap() == std::fs::read(&local).unwrap());
    // An scp that fails closes its channel, and the session goes on with
    // a new one.
    let err = session
        .scp_upload(
            std::slice::from_ref(&local),
            remote.join("missing/dir").to_str().unwrap(),
        )
        .unwrap_err();
    assert!(
        err.to_string().contains("No such file or directory"),
        "{err}"
    );
    let status = session
        .exec(
            "exit 4",
            std::io::empty(),
            Box::new(std::io::sink()),
            Box::new(std::io::sink()),
        )
        .unwrap();
    assert_eq!(status, ExitStatus::Code(4));
    session.disconnect().unwrap();
    let line = server.wait_log("command=\"exit 3\"");
    assert!(
        line.contains("command=\"exit 0\" exit 0 command=\"exit 3\" exit 3"),
        "{line}"
    );
    // The failed scp ends either way, depending on which the server sees
    // first: the client closing the channel on scp's error message, or
    // `scp -t` exiting with 1 after writing it.
    assert!(
        line.contains(
            "missing/dir'\" killed (the client closed the channel) command=\"exit 4\" exit 4"
        ) || line.contains("missing/dir'\" exit 1 command=\"exit 4\" exit 4"),
        "{line}"
    );
    assert!(line.contains("client=\"SSH-2.0-minissh_"), "{line}");
}

type Collected = std::sync::Arc<std::sync::Mutex<Vec<u8>>>;

/// A sink the test can read back.
fn collector() -> (minissh::client::channel::Sink, Collected) {
    struct Into(Collected);
    impl Write for Into {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let collected = Collected::default();
    (Box::new(Into(collected.clone())), collected)
}

// ------------------------------------------------------------ bad clients

/// Reads until the server hangs up; returns what it sent.
fn read_to_hangup(stream: &mut TcpStream) -> Vec<u8> {
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return got,
            Err(e) => panic!("the server did not hang up: {e}"),
        }
    }
}

fn bad_clients_are_cut_off_and_the_server_stays_up() {
    let mut server = Server::start(&["-g", "2", "-n", "3"]);
    let connect = || TcpStream::connect(("127.0.0.1", server.port)).unwrap();

    // A line before the identification: refused at once.
    let mut early = connect();
    early.write_all(b"hello there\r\nSSH-2.0-late\r\n").unwrap();
    let sent = read_to_hangup(&mut early);
    assert!(sent.starts_with(b"SSH-2.0-minissh_"), "{sent:?}");
    let line = server.wait_log("client=\"\"");
    assert!(line.contains("identification"), "{line}");

    // Silence, and a drip of a byte a second: both cut off at the grace
    // time, while a third idle connection fills the cap.
    let started = Instant::now();
    let mut silent = connect();
    let dripper = std::thread::spawn({
        let mut drip = connect();
        move || {
            for &b in b"SSH-2.0-drip\r\n" {
                if drip.write_all(&[b]).is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_secs(1));
            }
            read_to_hangup(&mut drip)
        }
    });
    let mut idle = connect();
    // Wait until the server has taken all three.
    std::thread::sleep(Duration::from_millis(300));
    let mut over_cap = connect();
    let refused = read_to_hangup(&mut over_cap);
    assert_eq!(refused, b"Too many connections\r\n");
    server.wait_log("refused: 3 connections open");

    read_to_hangup(&mut silent);
    read_to_hangup(&mut idle);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(1900),
        "cut off after {waited:?}"
    );
    dripper.join().unwrap();
    server.wait_log_count("login grace time (2 s) exceeded", 3);

    // A good client is served afterwards.
    server.assert_alive();
    let mut session = Session::connect(&server.config()).unwrap();
    let status = session
        .exec(
            "true",
            std::io::empty(),
            Box::new(std::io::sink()),
            Box::new(std::io::sink()),
        )
        .unwrap();
    assert_eq!(status, ExitStatus::Code(0));
}

/// A packet of the clear mode around `payload`.
fn clear_packet(payload: &[u8]) -> Vec<u8> {
    let mut padding = 8 - (5 + payload.len()) % 8;
    if padding < 4 {
        padding += 8;
    }
    let length = (1 + payload.len() + padding) as u32;
    let mut packet = length.to_be_bytes().to_vec();
    packet.push(padding as u8);
    packet.extend_from_slice(payload);
    packet.extend(std::iter::repeat_n(0, padding));
    packet
}

fn a_client_that_breaks_the_kex_order_is_refused() {
    let server = Server::start(&[]);
    let ignore = clear_packet(&[2, 0, 0, 0, 0]);
    // An IGNORE before KEXINIT: a client's first packet is its KEXINIT.
    let mut first = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    first.write_all(b"SSH-2.0-ignore-first\r\n").unwrap();
    first.write_all(&ignore).unwrap();
    read_to_hangup(&mut first);
    let line = server.wait_log("ignore-first");
    assert!(
        line.contains("first packet is message 2, not KEXINIT"),
        "{line}"
    );
    // A strict client's KEXINIT, then an IGNORE: under strict kex nothing
    // but kex messages may come before NEWKEYS.
    let kexinit = minissh::transport::algorithms::kexinit(
        ssh_packetizer::Role::Client,
        &minissh::Preferences::default(),
        true,
    )
    .unwrap();
    let mut strict = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    strict.write_all(b"SSH-2.0-strict-but-rude\r\n").unwrap();
    strict.write_all(&clear_packet(&kexinit)).unwrap();
    strict.write_all(&ignore).unwrap();
    read_to_hangup(&mut strict);
    let line = server.wait_log("strict-but-rude");
    assert!(
        // The packet layer's rule, in OpenSSH's words.
        line.contains("strict KEX violation: unexpected packet type 2 (seqnr 1)"),
        "{line}"
    );
    assert!(line.contains("strict-kex=yes"), "{line}");
}

fn a_burst_beyond_the_start_limit_is_dropped_while_a_session_works() {
    // MaxStartups 3: from three unauthenticated connections on, every new
    // one is dropped (sshd's single-number form); authenticated ones do
    // not count.
    let server = Server::start(&["-S", "3", "-g", "30"]);
    let mut session = Session::connect(&server.config()).unwrap();
    let connect = || TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    // Three that never authenticate: each admitted (it gets our
    // identification line).
    let silent: Vec<TcpStream> = (0..3)
        .map(|_| {
            let mut s = connect();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut line = [0u8; 8];
            s.read_exact(&mut line).unwrap();
            assert_eq!(&line, b"SSH-2.0-");
            s
        })
        .collect();
    // A burst: every one is told why and hung up on, before any key
    // exchange.
    for _ in 0..20 {
        let mut s = connect();
        assert_eq!(read_to_hangup(&mut s), b"Exceeded MaxStartups\r\n");
    }
    assert_eq!(
        server
            .wait_log_count("dropped: Exceeded MaxStartups", 20)
            .matches("3 unauthenticated open")
            .count(),
        1
    );
    // The authenticated session works on.
    let (stdout, collected) = collector();
    let status = session
        .exec(
            "echo still here",
            &b""[..],
            stdout,
            Box::new(std::io::sink()),
        )
        .unwrap();
    assert_eq!(status, ExitStatus::Code(0));
    assert_eq!(&collected.lock().unwrap()[..], b"still here\n");
    // A new client is dropped too, until a place is free.
    let err = Session::connect(&server.config()).unwrap_err();
    assert!(
        err.to_string().contains("Exceeded MaxStartups") || err.to_string().contains("closed"),
        "{err}"
    );
    drop(silent);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut again = loop {
        // The server notices the three hang-ups as it reads them.
        match Session::connect(&server.config()) {
            Ok(s) => break s,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("no place freed: {e}"),
        }
    };
    let status = again
        .exec(
            "true",
            &b""[..],
            Box::new(std::io::sink()),
            Box::new(std::io::sink()),
        )
        .unwrap();
    assert_eq!(status, ExitStatus::Code(0));
    session.disconnect().unwrap();
    again.disconnect().unwrap();
}

fn a_command_that_exits_before_its_output_ends() {
    // The shell exits with 3 at once; a child it left holds stdout open
    // and writes a line a moment later. The exit is reaped first, and must
    // be kept until the output has ended and gone out.
    let server = Server::start(&[]);
    let config = server.config();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut session = Session::connect(&config).unwrap();
        let (stdout, collected) = collector();
        let status = session.exec(
            "(sleep 0.5; echo late) & exit 3",
            &b""[..],
            stdout,
            Box::new(std::io::sink()),
        );
        let _ = done_tx.send((status.unwrap(), collected.lock().unwrap().clone()));
    });
    let (status, out) = done_rx
        .recv_timeout(Duration::from_secs(15))
        .expect("the channel never ended: the exit status was lost");
    assert_eq!(status, ExitStatus::Code(3));
    assert_eq!(out, b"late\n");
}

fn a_rekey_before_authentication_stays_under_the_login_grace() {
    // A client that finishes the first exchange, starts a second and goes
    // silent: still under the login grace time (2 s), not a rekey's
    // deadline (60 s), and cut off like any client that never logs in.
    use minissh::transport::{HostKeys, InboundChange, Transmit, Transport};
    let server = Server::start(&["-g", "2"]);
    let stream = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    let mut p = ssh_packetizer::Packetizer::tcp(stream).unwrap();
    p.start_handshake(Duration::from_secs(10));
    p.send_identification("SSH-2.0-rekeys-then-sleeps").unwrap();
    let server_id = p.read_identification().unwrap();
    let mut t = Transport::new(
        HostKeys::Verify(Box::new(|_| Ok(()))),
        minissh::Preferences::default(),
        b"SSH-2.0-rekeys-then-sleeps".to_vec(),
        server_id.line,
    );
    let apply = |t: &mut Transport, p: &mut ssh_packetizer::Packetizer<TcpStream>| {
        while let Some(x) = t.poll_transmit() {
            match x {
                Transmit::Message(m) => p.send_message(&m).map(|_| ()).unwrap(),
                Transmit::NewKeys(k) => p.send_newkeys(k).map(|_| ()).unwrap(),
            }
        }
        while let Some(change) = t.poll_inbound() {
            match change {
                InboundChange::StrictKex(on) => p.connection_mut().set_strict_kex(on),
                InboundChange::Keys(k) => p.set_inbound_cipher(k).unwrap(),
            }
        }
    };
    t.start_kex().unwrap();
    apply(&mut t, &mut p);
    while !t.is_initial_kex_done() {
        let packet = p.read_message().unwrap();
        let (payload, seqno) = (packet.payload().to_vec(), packet.seqno());
        t.handle(&payload, seqno).unwrap();
        apply(&mut t, &mut p);
    }
    let started = Instant::now();
    assert!(t.start_kex().unwrap());
    apply(&mut t, &mut p);
    let line = server.wait_log("rekeys-then-sleeps");
    assert!(line.contains("login grace time (2 s) exceeded"), "{line}");
    assert!(started.elapsed() < Duration::from_secs(10), "{line}");
}

fn many_connections_at_once() {
    // 200 authenticated sessions open together, each then running a
    // command: one task each on the server, no thread.
    let server = Server::start(&["-n", "300"]);
    let sessions: Vec<Session> = (0..200)
        .map(|i| Session::connect(&server.config()).unwrap_or_else(|e| panic!("session {i}: {e}")))
        .collect();
    let pid = server.child.id();
    let threads = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .count();
    // The runtime's workers and tokio's blocking pool, not one per
    // connection.
    assert!(threads < 64, "{threads} threads for 200 connections");
    for (i, mut session) in sessions.into_iter().enumerate() {
        let (stdout, collected) = collector();
        let status = session
            .exec(
                &format!("echo {i}"),
                &b""[..],
                stdout,
                Box::new(std::io::sink()),
            )
            .unwrap();
        assert_eq!(status, ExitStatus::Code(0));
        assert_eq!(
            collected.lock().unwrap().clone(),
            format!("{i}\n").into_bytes()
        );
        session.disconnect().unwrap();
    }
}

// ------------------------------------------------------------------ main

fn missing(tool: &str) -> Option<String> {
    let ok = match tool {
        "openssh" => Path::new(SSH).exists() && Path::new(SCP).exists(),
        module => Command::new("python3")
            .args(["-c", &format!("import {module}")])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success()),
    };
    (!ok).then(|| match tool {
        "openssh" => "OpenSSH's client is not installed (apt-get install openssh-client)".into(),
        module => format!("python3 with {module} is not installed (pip install {module})"),
    })
}

/// A test: its name, its body, and the peer it needs (`None`: only
/// minissh).
type Test = (&'static str, fn(), Option<&'static str>);

fn main() -> std::process::ExitCode {
    let tests: &[Test] = &[
        (
            "openssh_every_cipher_and_mac",
            openssh_every_cipher_and_mac,
            Some("openssh"),
        ),
        (
            "openssh_rekeys_started_by_either_side",
            openssh_rekeys_started_by_either_side,
            Some("openssh"),
        ),
        (
            "openssh_scp_several_files_and_an_error",
            openssh_scp_several_files_and_an_error,
            Some("openssh"),
        ),
        (
            "openssh_exec_refusals_and_exit_signals",
            openssh_exec_refusals_and_exit_signals,
            Some("openssh"),
        ),
        (
            "openssh_keepalive_cuts_off_a_frozen_client",
            openssh_keepalive_cuts_off_a_frozen_client,
            Some("openssh"),
        ),
        (
            "openssh_a_client_frozen_mid_rekey_is_cut_off",
            openssh_a_client_frozen_mid_rekey_is_cut_off,
            Some("openssh"),
        ),
        (
            "paramiko_a_client_that_stops_reading_is_cut_off",
            paramiko_a_client_that_stops_reading_is_cut_off,
            Some("paramiko"),
        ),
        (
            "paramiko_every_cipher",
            paramiko_every_cipher,
            Some("paramiko"),
        ),
        (
            "paramiko_authenticating_slowly_with_keepalives_on",
            paramiko_authenticating_slowly_with_keepalives_on,
            Some("paramiko"),
        ),
        (
            "asyncssh_client_with_rekeys",
            asyncssh_client_with_rekeys,
            Some("asyncssh"),
        ),
        (
            "minissh_client_against_minissh_server",
            minissh_client_against_minissh_server,
            None,
        ),
        (
            "bad_clients_are_cut_off_and_the_server_stays_up",
            bad_clients_are_cut_off_and_the_server_stays_up,
            None,
        ),
        (
            "a_client_that_breaks_the_kex_order_is_refused",
            a_client_that_breaks_the_kex_order_is_refused,
            None,
        ),
        (
            "a_burst_beyond_the_start_limit_is_dropped_while_a_session_works",
            a_burst_beyond_the_start_limit_is_dropped_while_a_session_works,
            None,
        ),
        (
            "a_command_that_exits_before_its_output_ends",
            a_command_that_exits_before_its_output_ends,
            None,
        ),
        (
            "a_rekey_before_authentication_stays_under_the_login_grace",
            a_rekey_before_authentication_stays_under_the_login_grace,
            None,
        ),
        ("many_connections_at_once", many_connections_at_once, None),
    ];
    let in_ci = std::env::var("CI").as_deref() == Ok("true");
    let trials = tests
        .iter()
        .map(|&(name, test, peer)| {
            let why = peer.and_then(missing);
            if let Some(why) = &why {
                eprintln!("{name}: {why}");
            }
            libtest_mimic::Trial::test(name, move || {
                test();
                Ok(())
            })
            .with_ignored_flag(why.is_some() && !in_ci)
        })
        .collect();
    libtest_mimic::run(&libtest_mimic::Arguments::from_args(), trials).exit_code()
}
