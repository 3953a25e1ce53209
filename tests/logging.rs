//! What reaches the `log` facade: key switches and rekeys at debug, and
//! plaintext only when the hexdump is turned on.

use ssh_packetizer::KeyMaterial;
use std::sync::Mutex;

use ssh_packetizer::pipe::pipe;
use ssh_packetizer::{CipherAlgorithm, Config, Keys, MacAlgorithm, Packetizer, RekeyLimits};

static RECORDS: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, record: &log::Record) {
        RECORDS
            .lock()
            .unwrap()
            .push((record.target().to_owned(), record.args().to_string()));
    }
    fn flush(&self) {}
}

fn take() -> Vec<(String, String)> {
    std::mem::take(&mut *RECORDS.lock().unwrap())
}

// One test, so the global logger's records are not shared between threads.
#[test]
fn hexdump_only_when_asked_and_key_switches_logged() {
    log::set_logger(&Capture).unwrap();
    log::set_max_level(log::LevelFilter::Trace);
    let secret = b"\x5etop secret plaintext";
    let secret_hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    let keys = || {
        Keys::new(
            CipherAlgorithm::Aes128Gcm,
            MacAlgorithm::None,
            KeyMaterial {
                key: &[9; 16],
                iv: &[8; 12],
                mac_key: &[],
            },
        )
        .unwrap()
    };

    // A keyed pair, the hexdump as `hexdump` says.
    let pair = |hexdump: bool| {
        let (a, b) = pipe();
        let limits = RekeyLimits {
            max_bytes: Some(1),
            ..RekeyLimits::default()
        };
        let config = Config::client().rekey_limits(limits).hexdump(hexdump);
        let mut tx = Packetizer::with_config(a, config);
        let mut rx = Packetizer::with_config(b, Config::server().hexdump(hexdump));
        tx.send_newkeys(keys()).unwrap();
        assert_eq!(rx.read_message().unwrap().msg_type(), 21);
        rx.set_inbound_cipher(keys()).unwrap();
        // tx's inbound direction switches too: its initial kex is done, so
        // its spent budget asks for a rekey.
        tx.set_inbound_cipher(keys()).unwrap();
        (tx, rx)
    };
    let (mut tx, mut rx) = pair(false);
    tx.send_message(secret).unwrap();
    rx.read_message().unwrap();
    let quiet = take();
    assert!(quiet
        .iter()
        .any(|(_, m)| m.contains("outbound keys: aes128-gcm@openssh.com")));
    assert!(quiet.iter().any(|(_, m)| m.contains("rekey needed")));
    assert!(
        !quiet
            .iter()
            .any(|(_, m)| m.contains(&secret_hex) || m.contains("top secret")),
        "plaintext logged without the hexdump: {quiet:?}"
    );

    let (mut tx, mut rx) = pair(true);
    take();
    tx.send_message(secret).unwrap();
    rx.read_message().unwrap();
    let loud = take();
    let dumps: Vec<_> = loud
        .iter()
        .filter(|(target, m)| target == "ssh_packetizer::hexdump" && m.contains(&secret_hex))
        .collect();
    assert_eq!(dumps.len(), 2, "one dump out, one in: {loud:?}");

    // Authentication payloads (a password in USERAUTH_REQUEST, answers in
    // USERAUTH_INFO_RESPONSE) are never dumped, hexdump or not.
    for msg_type in [50u8, 61] {
        let mut auth = vec![msg_type];
        auth.extend_from_slice(b"hunter2 is my password");
        let auth_hex: String = auth[1..].iter().map(|b| format!("{b:02x}")).collect();
        tx.send_message(&auth).unwrap();
        assert_eq!(rx.read_message().unwrap().payload(), &auth[..]);
        let logged = take();
        let dumps: Vec<_> = logged
            .iter()
            .filter(|(target, _)| target == "ssh_packetizer::hexdump")
            .collect();
        assert_eq!(dumps.len(), 2, "{logged:?}");
        for (_, m) in dumps {
            assert!(!m.contains(&auth_hex) && !m.contains("hunter2"), "{m}");
            assert!(m.contains(&format!("message {msg_type}")), "{m}");
        }
    }
}
