//! Interop with OpenSSH's sshd through minissh, the small client built on
//! this crate: every cipher × MAC both support, rekeys started by either
//! side in the middle of a transfer, strict kex on and off, compression,
//! and the refusals a user must see clearly.
//!
//! Each test starts its own private sshd on 127.0.0.1 (interop::sshd:
//! own config and keys in a temp dir, started by absolute path with -f and
//! -E, killed by pid on drop, also when a test panics). Without
//! openssh-server the tests show as ignored, except under CI=true, where a
//! missing peer is a failure.

use interop::harness;

use std::io::{self, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use interop::data::{payload, Recorded};
use interop::sshd::{current_user, Sshd};
use minissh::{ClientConfig, Error, ExitStatus, HostKeyCheck, Session};
use ssh_packetizer::{
    CipherAlgorithm as C, CompressionAlgorithm, CryptoProvider, MacAlgorithm as M, RekeyLimits,
};

/// A client config for `sshd`: host keys in a known_hosts file of the
/// server's directory (the first connection records the key, the rest
/// check it), never the user's own.
fn config(sshd: &Sshd) -> ClientConfig {
    let mut config =
        ClientConfig::new("127.0.0.1", sshd.port(), &current_user(), sshd.client_key());
    config.host_key = HostKeyCheck::KnownHosts {
        path: sshd.dir().join("known_hosts"),
        unknown: minissh::UnknownHost::AcceptNew,
    };
    config
}

fn connect(sshd: &Sshd, config: &ClientConfig) -> Session {
    Session::connect(config).unwrap_or_else(|e| panic!("connect: {e}\nsshd log:\n{}", sshd.log()))
}

/// Counts bytes and checks they are all zero, without keeping them.
#[derive(Clone, Default)]
struct Zeros(Arc<Mutex<(u64, bool)>>);

impl Write for Zeros {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut s = self.0.lock().unwrap();
        s.0 += buf.len() as u64;
        s.1 |= buf.iter().any(|&b| b != 0);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// `cat` echoes `data` back byte for byte.
fn echo(session: &mut Session, data: Vec<u8>) {
    let out = Recorded::default();
    let err = Recorded::default();
    let len = data.len();
    let status = session
        .exec(
            "cat",
            io::Cursor::new(data.clone()),
            Box::new(out.clone()),
            Box::new(err.clone()),
        )
        .expect("exec cat");
    assert_eq!(
        status,
        ExitStatus::Code(0),
        "stderr: {:?}",
        String::from_utf8_lossy(&err.take())
    );
    let back = out.take();
    assert_eq!(back.len(), len, "echoed length");
    assert!(back == data, "echoed bytes differ");
}

fn download_zeros(session: &mut Session, bytes: u64) {
    let zeros = Zeros::default();
    let status = session
        .exec(
            &format!("head -c {bytes} /dev/zero"),
            io::empty(),
            Box::new(zeros.clone()),
            Box::new(io::sink()),
        )
        .expect("exec head");
    assert_eq!(status, ExitStatus::Code(0));
    let (got, nonzero) = *zeros.0.lock().unwrap();
    assert_eq!(got, bytes, "downloaded length");
    assert!(!nonzero, "downloaded bytes are not all zero");
}

fn upload_and_scp(session: &mut Session, sshd: &Sshd, tag: &str) {
    let dir = sshd.dir().join(format!("up-{tag}"));
    std::fs::create_dir_all(&dir).unwrap();
    // Upload through exec's stdin.
    let data = payload(300_000, 7);
    let target = dir.join("uploaded");
    let status = session
        .exec(
            &format!("cat > '{}'", target.display()),
            io::Cursor::new(data.clone()),
            Box::new(io::sink()),
            Box::new(io::sink()),
        )
        .expect("exec upload");
    assert_eq!(status, ExitStatus::Code(0));
    assert!(
        std::fs::read(&target).unwrap() == data,
        "uploaded file differs"
    );

    // scp of three files, one of them empty, in one channel.
    let local = sshd.dir().join(format!("local-{tag}"));
    std::fs::create_dir_all(&local).unwrap();
    let remote = dir.join("scp");
    std::fs::create_dir_all(&remote).unwrap();
    let files: Vec<(PathBuf, Vec<u8>)> =
        [("one.bin", 100_000), ("two.txt", 0), ("three.bin", 70_001)]
            .iter()
            .enumerate()
            .map(|(i, (name, len))| (local.join(name), payload(*len, i as u64 + 11)))
            .collect();
    for (path, content) in &files {
        std::fs::write(path, content).unwrap();
    }
    let paths: Vec<PathBuf> = files.iter().map(|(p, _)| p.clone()).collect();
    session
        .scp_upload(&paths, remote.to_str().unwrap())
        .expect("scp");
    for (path, content) in &files {
        let landed = std::fs::read(remote.join(path.file_name().unwrap())).unwrap();
        assert!(landed == *content, "{} differs after scp", path.display());
    }
}

/// Kex, a 1 MiB echo, a 64 MiB download, an upload and an scp of three
/// files under `cipher` with each MAC in `macs`.
fn suites(cipher: C, macs: &[M]) {
    suites_with(&[], cipher, macs);
}

/// As [`suites`], against an sshd with `extra` config lines.
fn suites_with(extra: &[&str], cipher: C, macs: &[M]) {
    let Some(sshd) = Sshd::start_or_skip(extra) else {
        return;
    };
    suites_on(&sshd, CryptoProvider::get_default(), cipher, macs);
}

/// As [`suites`], with minissh's packet layer on `provider`.
fn suites_on(sshd: &Sshd, provider: &'static CryptoProvider, cipher: C, macs: &[M]) {
    for &mac in macs {
        let tag = format!("{}-{} ({})", cipher.name(), mac.name(), provider.name());
        let mut config = config(sshd);
        config.prefs.provider = provider;
        config.prefs.ciphers = vec![cipher];
        config.prefs.macs = if mac == M::None {
            vec![M::HmacSha256]
        } else {
            vec![mac]
        };
        let mut session = connect(sshd, &config);
        let n = session.info().negotiated.unwrap();
        assert_eq!((n.cipher_c2s, n.cipher_s2c), (cipher, cipher), "{tag}");
        assert_eq!((n.mac_c2s, n.mac_s2c), (mac, mac), "{tag}");
        assert!(
            session.info().strict_kex,
            "{tag}: OpenSSH offers strict kex"
        );
        assert_eq!(session.info().provider, provider.name(), "{tag}");
        echo(&mut session, payload(1 << 20, 3));
        download_zeros(&mut session, 64 << 20);
        upload_and_scp(&mut session, sshd, &tag);
        session.disconnect().unwrap();
    }
}

const CTR_MACS: [M; 10] = [
    M::HmacSha1,
    M::HmacSha256,
    M::HmacSha512,
    M::HmacSha1Etm,
    M::HmacSha256Etm,
    M::HmacSha512Etm,
    M::Umac64,
    M::Umac128,
    M::Umac64Etm,
    M::Umac128Etm,
];

fn aes128_ctr_with_every_mac() {
    suites(C::Aes128Ctr, &CTR_MACS);
}

fn aes192_ctr_with_every_mac() {
    suites(C::Aes192Ctr, &CTR_MACS);
}

fn aes256_ctr_with_every_mac() {
    suites(C::Aes256Ctr, &CTR_MACS);
}

/// The legacy MACs (feature `legacy`), which OpenSSH serves only when its
/// configuration adds them.
#[cfg(feature = "legacy")]
fn legacy_macs() {
    let macs = [
        M::HmacSha1_96,
        M::HmacMd5,
        M::HmacMd5_96,
        M::HmacSha1_96Etm,
        M::HmacMd5Etm,
        M::HmacMd5_96Etm,
    ];
    let names: Vec<&str> = macs.iter().map(|m| m.name()).collect();
    let line = format!("MACs +{}", names.join(","));
    suites_with(&[&line], C::Aes128Ctr, &macs);
}

/// The CBC ciphers (feature `legacy`), which OpenSSH serves only when its
/// configuration adds them, in both MAC modes.
#[cfg(feature = "legacy")]
fn legacy_ciphers() {
    let ciphers = [C::Aes128Cbc, C::Aes192Cbc, C::Aes256Cbc, C::TripleDesCbc];
    let names: Vec<&str> = ciphers.iter().map(|c| c.name()).collect();
    let line = format!("Ciphers +{}", names.join(","));
    for cipher in ciphers {
        suites_with(&[&line], cipher, &[M::HmacSha256, M::HmacSha1Etm]);
    }
}

fn aead_ciphers() {
    for cipher in [C::Aes128Gcm, C::Aes256Gcm, C::ChaCha20Poly1305] {
        suites(cipher, &[M::None]);
    }
}

/// Each engine of every other provider of the build against OpenSSH: its
/// AES-CTR with each of its HMAC hashes, its AES-GCM, and
/// chacha20-poly1305 (its own for aws-lc-rs, RustCrypto's for OpenSSL).
/// The full matrix above runs on the default provider.
fn one_suite_per_engine_under_every_provider() {
    let Some(sshd) = Sshd::start_or_skip(&[]) else {
        return;
    };
    for &provider in CryptoProvider::available() {
        if provider == CryptoProvider::get_default() {
            continue;
        }
        suites_on(&sshd, provider, C::Aes128Ctr, &[M::HmacSha256Etm]);
        suites_on(&sshd, provider, C::Aes256Ctr, &[M::HmacSha512]);
        suites_on(&sshd, provider, C::Aes192Ctr, &[M::HmacSha1Etm]);
        for cipher in [C::Aes128Gcm, C::Aes256Gcm, C::ChaCha20Poly1305] {
            suites_on(&sshd, provider, cipher, &[M::None]);
        }
    }
}

fn server_initiated_rekey_mid_transfer() {
    let Some(sshd) = Sshd::start_or_skip(&["RekeyLimit 1M"]) else {
        return;
    };
    let mut session = connect(&sshd, &config(&sshd));
    echo(&mut session, payload(32 << 20, 5));
    let info = session.info();
    // 32 MiB each way at 1 MiB per key: the server rekeys about 30 times.
    assert!(info.server_rekeys >= 10, "{info:?}\n{}", sshd.log());
    assert_eq!(info.client_rekeys, 0);
    session.disconnect().unwrap();
}

fn client_initiated_rekey_mid_transfer() {
    let Some(sshd) = Sshd::start_or_skip(&[]) else {
        return;
    };
    let mut config = config(&sshd);
    config.prefs.ciphers = vec![C::Aes128Gcm];
    config.rekey = Some(RekeyLimits {
        max_bytes: Some(1 << 20),
        ..RekeyLimits::default()
    });
    let mut session = connect(&sshd, &config);
    echo(&mut session, payload(32 << 20, 9));
    let info = session.info();
    assert!(info.client_rekeys >= 10, "{info:?}");
    // Every rekey started completes (the last may still be under way).
    let started = info.client_rekeys + info.server_rekeys;
    assert!(
        info.kex_count == 1 + started || info.kex_count == started,
        "{info:?}"
    );
    session.disconnect().unwrap();
}

fn strict_kex_on_and_off() {
    let Some(sshd) = Sshd::start_or_skip(&[]) else {
        return;
    };
    for strict in [true, false] {
        let mut config = config(&sshd);
        config.prefs.strict_kex = strict;
        let mut session = connect(&sshd, &config);
        assert_eq!(session.info().strict_kex, strict);
        echo(&mut session, payload(100_000, 1));
        session.disconnect().unwrap();
    }
}

fn delayed_compression_with_openssh() {
    let Some(sshd) = Sshd::start_or_skip(&["Compression yes"]) else {
        return;
    };
    let mut config = config(&sshd);
    config.prefs.compression = vec![
        CompressionAlgorithm::ZlibOpenSsh,
        CompressionAlgorithm::None,
    ];
    let mut session = connect(&sshd, &config);
    let n = session.info().negotiated.unwrap();
    assert_eq!(n.comp_c2s, CompressionAlgorithm::ZlibOpenSsh);
    assert_eq!(n.comp_s2c, CompressionAlgorithm::ZlibOpenSsh);
    let text: Vec<u8> = (0..1_000_000u32)
        .map(|i| b"compress me "[i as usize % 12])
        .collect();
    echo(&mut session, text);
    download_zeros(&mut session, 8 << 20);
    session.disconnect().unwrap();
}

fn a_wrong_host_key_is_refused() {
    let Some(sshd) = Sshd::start_or_skip(&[]) else {
        return;
    };
    let mut config = config(&sshd);
    // The right key passes...
    config.host_key = HostKeyCheck::parse(sshd.host_key_pub().to_str().unwrap()).unwrap();
    connect(&sshd, &config).disconnect().unwrap();
    // ...another does not.
    config.host_key =
        HostKeyCheck::parse(&format!("{}.pub", sshd.stranger_key().display())).unwrap();
    match Session::connect(&config) {
        Err(Error::HostKeyMismatch { expected, got }) => assert_ne!(expected, got),
        other => panic!("expected a host key mismatch, got {other:?}"),
    }
}

fn an_unknown_user_key_is_refused_cleanly() {
    let Some(sshd) = Sshd::start_or_skip(&[]) else {
        return;
    };
    let mut config = config(&sshd);
    config.identity = sshd.stranger_key();
    match Session::connect(&config) {
        Err(Error::AuthFailed { methods }) => assert!(methods.contains("publickey"), "{methods}"),
        other => panic!("expected an auth failure, got {other:?}"),
    }
}

fn a_command_that_fails_reports_its_status_and_stderr() {
    let Some(sshd) = Sshd::start_or_skip(&[]) else {
        return;
    };
    let mut session = connect(&sshd, &config(&sshd));
    let err = Recorded::default();
    let status = session
        .exec(
            "echo oops >&2; exit 7",
            io::empty(),
            Box::new(io::sink()),
            Box::new(err.clone()),
        )
        .unwrap();
    assert_eq!(status, ExitStatus::Code(7));
    assert_eq!(err.take(), b"oops\n");
    let status = session
        .exec(
            "kill -TERM $$",
            io::empty(),
            Box::new(io::sink()),
            Box::new(io::sink()),
        )
        .unwrap();
    assert_eq!(status, ExitStatus::Signal("TERM".into()));
    session.disconnect().unwrap();
}

fn an_scp_error_line_is_reported() {
    let Some(sshd) = Sshd::start_or_skip(&[]) else {
        return;
    };
    let mut session = connect(&sshd, &config(&sshd));
    let local = sshd.dir().join("a.txt");
    std::fs::write(&local, b"x").unwrap();
    let missing = sshd.dir().join("no/such/dir");
    let err = session
        .scp_upload(&[local.clone(), local], missing.to_str().unwrap())
        .unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("scp:"), "{text}");
    assert!(
        text.contains("No such file or directory") || text.contains("not a directory"),
        "{text}"
    );
}

fn a_peer_that_closes_is_reported() {
    // A server that accepts, then hangs up before identifying itself.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        // Read the client's identification first: closing with unread
        // bytes would send a reset instead of a clean end of stream.
        let (conn, _) = listener.accept().unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(&conn), &mut line).unwrap();
        assert!(line.starts_with("SSH-2.0-minissh"), "{line:?}");
    });
    let key = std::env::temp_dir().join(format!("minissh-close-{}", std::process::id()));
    if interop::sshd::keygen(&key).is_err() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("ssh-keygen is missing under CI=true");
        }
        eprintln!("SKIPPED: ssh-keygen is not installed");
        return;
    }
    let config = ClientConfig::new("127.0.0.1", port, "nobody", &key);
    let err = Session::connect(&config).unwrap_err();
    server.join().unwrap();
    assert!(matches!(err, Error::PeerClosed), "{err:?}");
    assert_eq!(err.to_string(), "the server closed the connection");

    // Nobody listening at all.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = Session::connect(&ClientConfig::new("127.0.0.1", port, "nobody", &key)).unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with(&format!("cannot connect to 127.0.0.1:{port}")),
        "{err}"
    );
    let _ = std::fs::remove_file(&key);
    let _ = std::fs::remove_file(key.with_extension("pub"));
}

fn exec_returns_when_the_command_ignores_a_stdin_that_never_ends() {
    let Some(sshd) = Sshd::start_or_skip(&[]) else {
        return;
    };
    let mut session = connect(&sshd, &config(&sshd));
    // A stdin that blocks forever, like a terminal nobody types into.
    let (stdin, _keep_open) = ssh_packetizer::pipe::pipe();
    let out = Recorded::default();
    let status = session
        .exec(
            "echo hi",
            stdin,
            Box::new(out.clone()),
            Box::new(io::sink()),
        )
        .unwrap();
    assert_eq!(status, ExitStatus::Code(0));
    assert_eq!(out.take(), b"hi\n");
    session.disconnect().unwrap();
}

/// The tests (name, body, whether it needs the peer); a missing peer shows
/// them as ignored outside CI.
fn main() -> std::process::ExitCode {
    let tests: &[harness::PeerTest] = &[
        ("aes128_ctr_with_every_mac", aes128_ctr_with_every_mac, true),
        #[cfg(feature = "legacy")]
        ("legacy_macs", legacy_macs, true),
        #[cfg(feature = "legacy")]
        ("legacy_ciphers", legacy_ciphers, true),
        ("aes192_ctr_with_every_mac", aes192_ctr_with_every_mac, true),
        ("aes256_ctr_with_every_mac", aes256_ctr_with_every_mac, true),
        ("aead_ciphers", aead_ciphers, true),
        (
            "one_suite_per_engine_under_every_provider",
            one_suite_per_engine_under_every_provider,
            true,
        ),
        (
            "server_initiated_rekey_mid_transfer",
            server_initiated_rekey_mid_transfer,
            true,
        ),
        (
            "client_initiated_rekey_mid_transfer",
            client_initiated_rekey_mid_transfer,
            true,
        ),
        ("strict_kex_on_and_off", strict_kex_on_and_off, true),
        (
            "delayed_compression_with_openssh",
            delayed_compression_with_openssh,
            true,
        ),
        (
            "a_wrong_host_key_is_refused",
            a_wrong_host_key_is_refused,
            true,
        ),
        (
            "an_unknown_user_key_is_refused_cleanly",
            an_unknown_user_key_is_refused_cleanly,
            true,
        ),
        (
            "a_command_that_fails_reports_its_status_and_stderr",
            a_command_that_fails_reports_its_status_and_stderr,
            true,
        ),
        (
            "an_scp_error_line_is_reported",
            an_scp_error_line_is_reported,
            true,
        ),
        (
            "a_peer_that_closes_is_reported",
            a_peer_that_closes_is_reported,
            true,
        ),
        (
            "exec_returns_when_the_command_ignores_a_stdin_that_never_ends",
            exec_returns_when_the_command_ignores_a_stdin_that_never_ends,
            true,
        ),
    ];
    harness::run_peer_tests(tests, interop::sshd::missing())
}
