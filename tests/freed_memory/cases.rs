//! The cases: one per driver, provider and suite. Each moves marked
//! payloads under a first key set, switches to a second key set with zlib
//! on, moves more, has a send refused as too large, then feeds a receiver
//! a stream whose last packet was tampered with, and drops everything.
//!
//! The test's own copies (key material, payloads, what it received) live in
//! wiped buffers, so whatever the scan finds was left by the crate.

use std::io::Write;

use ssh_packetizer::{
    CipherAlgorithm, CompressionAlgorithm, Config, CryptoProvider, Error, InputBuffer, KeyMaterial,
    Keys, MacAlgorithm, Opened, Opener, Sealer,
};
use zeroize::{Zeroize, Zeroizing};

use crate::scan::{mark, Kind};

#[path = "../common/mod.rs"]
mod common;

/// Payload sizes sent under each key set.
const SIZES: [usize; 6] = [64, 1000, 32 * 1024, 200, 5000, 64];
/// Over the default 256 KiB maximum packet: refused.
const TOO_LARGE: usize = 300_000;
/// Message type of the payloads (SSH_MSG_CHANNEL_DATA): never NEWKEYS.
const DATA: u8 = 94;

/// The drivers a case runs through.
#[derive(Clone, Copy, Debug)]
pub enum Driver {
    /// `Sealer` and `Opener` with an `InputBuffer`.
    Codec,
    /// The sync `Packetizer`.
    Packetizer,
    /// The sync `PacketReader` and `PacketWriter`.
    Halves,
    /// The tokio `Packetizer`.
    #[cfg(feature = "tokio")]
    AsyncPacketizer,
    /// The tokio `PacketReader` and `PacketWriter`.
    #[cfg(feature = "tokio")]
    AsyncHalves,
    /// `PacketCodec` under `tokio_util`'s `Framed`.
    #[cfg(feature = "tokio")]
    Framed,
}

const DRIVERS: &[Driver] = &[
    Driver::Codec,
    Driver::Packetizer,
    Driver::Halves,
    #[cfg(feature = "tokio")]
    Driver::AsyncPacketizer,
    #[cfg(feature = "tokio")]
    Driver::AsyncHalves,
    #[cfg(feature = "tokio")]
    Driver::Framed,
];

/// One case.
pub struct Case {
    index: u64,
    provider: &'static CryptoProvider,
    cipher: CipherAlgorithm,
    mac: MacAlgorithm,
    driver: Driver,
}

/// Every case of this build: every driver, every provider in the suites
/// where it runs the cipher or the MAC itself (RustCrypto in all).
pub fn all() -> Vec<Case> {
    let rust_crypto = CryptoProvider::rust_crypto();
    let mut cases = Vec::new();
    for &driver in DRIVERS {
        for &provider in CryptoProvider::available() {
            for (cipher, mac) in common::supported_suites() {
                let own = provider
                    .cipher_supplier(cipher)
                    .is_ok_and(|p| p == provider)
                    && cipher != CipherAlgorithm::None
                    || provider.mac_supplier(mac).is_ok_and(|p| p == provider)
                        && mac != MacAlgorithm::None;
                if provider != rust_crypto && !own {
                    continue;
                }
                cases.push(Case {
                    index: cases.len() as u64,
                    provider,
                    cipher,
                    mac,
                    driver,
                });
            }
        }
    }
    cases
}

/// xorshift64: marks that differ from case to case, so a block left over
/// from one case is never blamed on the next.
struct Noise(u64);

impl Noise {
    fn fill(&mut self, out: &mut [u8]) {
        for b in out {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            *b = (self.0 >> 24) as u8;
        }
    }
}

/// What one case moves: two key sets and the payload marker.
struct Script {
    config: Config,
    first: Keys,
    second: Keys,
    plaintext: [u8; 8],
    marks_plaintext: bool,
}

impl Case {
    /// The test's name: driver, provider, suite.
    pub fn name(&self) -> String {
        format!(
            "{:?}/{}/{}+{}",
            self.driver,
            self.provider.name(),
            self.cipher,
            self.mac
        )
    }

    /// Whether the case runs a cipher on a provider whose C heap the scan
    /// hooks (OpenSSL's cipher contexts live there; its HMACs, over the
    /// library's one-shot digests, allocate nothing).
    pub fn hooked_c_heap(&self) -> bool {
        self.provider.name() == "openssl"
            && self
                .provider
                .cipher_supplier(self.cipher)
                .is_ok_and(|p| p == self.provider)
    }

    /// Registers the marks and runs the driver's script.
    pub fn run(&self) {
        let mut noise = Noise(self.index.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let first = self.keys(&mut noise, 1);
        let second = self
            .keys(&mut noise, 2)
            .with_compression(CompressionAlgorithm::Zlib);
        let mut plaintext = [0u8; 8];
        noise.fill(&mut plaintext);
        // In the clear the wire is the plaintext: the marker would be found
        // in every stream buffer, and there is nothing to keep secret.
        let marks_plaintext = self.cipher != CipherAlgorithm::None;
        if marks_plaintext {
            mark(Kind::Plaintext, &plaintext);
            crate::scan::scrub_stack();
        }
        let script = Script {
            config: Config::client().crypto_provider(self.provider),
            first,
            second,
            plaintext,
            marks_plaintext,
        };
        match self.driver {
            Driver::Codec => codec(&script, self.provider),
            Driver::Packetizer => sync_whole(&script),
            Driver::Halves => sync_halves(&script),
            #[cfg(feature = "tokio")]
            Driver::AsyncPacketizer => tokio_cases::whole(&script),
            #[cfg(feature = "tokio")]
            Driver::AsyncHalves => tokio_cases::halves(&script),
            #[cfg(feature = "tokio")]
            Driver::Framed => tokio_cases::framed(&script),
        }
    }

    /// A key set from `noise`, its bytes marked as set `set`.
    fn keys(&self, noise: &mut Noise, set: u8) -> Keys {
        let spec = (self.cipher.spec(), self.mac.spec());
        let mut key = Zeroizing::new(vec![0u8; spec.0.key_len()]);
        let mut iv = Zeroizing::new(vec![0u8; spec.0.iv_len()]);
        let mut mac_key = Zeroizing::new(vec![0u8; spec.1.key_len()]);
        noise.fill(&mut key);
        noise.fill(&mut iv);
        noise.fill(&mut mac_key);
        mark(Kind::Key(set), &key);
        // The counter of CTR and GCM runs in the IV's last bytes.
        mark(Kind::Iv(set), &iv[..iv.len().min(8)]);
        mark(Kind::MacKey(set), &mac_key);
        // `mark` read the bytes through locals: wiped here, before the
        // crate's own code runs, so what is found later is the crate's.
        crate::scan::scrub_stack();
        Keys::new(
            self.cipher,
            self.mac,
            KeyMaterial {
                key: &key,
                iv: &iv,
                mac_key: &mac_key,
            },
        )
        .expect("lengths from the table")
    }
}

impl Script {
    /// Payload `i`: the message type, noise, and the marker every 61 bytes.
    fn payload(&self, i: usize, len: usize) -> Zeroizing<Vec<u8>> {
        let mut p = Zeroizing::new(vec![0u8; len]);
        Noise(i as u64 * 7919 + 1).fill(&mut p);
        p[0] = DATA;
        for at in (5..len.saturating_sub(8)).step_by(61) {
            p[at..at + 8].copy_from_slice(&self.plaintext);
        }
        p
    }

    fn too_large(&self) -> Zeroizing<Vec<u8>> {
        self.payload(99, TOO_LARGE)
    }

    /// The wire of a peer that sends NEWKEYS, then payloads under the first
    /// key set, the last one with a flipped byte.
    fn forged_stream(&self) -> Vec<u8> {
        let mut sealer = Sealer::new();
        let mut wire = Vec::new();
        sealer.seal(&[21], &mut wire).unwrap();
        sealer.set_keys(self.first.clone()).unwrap();
        for (i, &len) in SIZES.iter().enumerate().take(3) {
            sealer.seal(&self.payload(i, len), &mut wire).unwrap();
        }
        let last = wire.len();
        sealer.seal(&self.payload(3, 500), &mut wire).unwrap();
        if self.marks_plaintext {
            // Past the length field: the packet is read whole, then refused.
            let at = last + (wire.len() - last) / 2;
            wire[at] ^= 0x40;
        } else {
            // In the clear nothing authenticates the body: break the length.
            wire[last] = 0xff;
        }
        wire
    }

    /// Checks a received payload against payload `i` and wipes the copy.
    fn check(&self, got: &mut [u8], i: usize, len: usize) {
        assert!(
            got[..] == self.payload(i, len)[..],
            "payload {i} ({len} bytes) came back changed"
        );
        got.zeroize();
    }
}

/// An error the forged stream may end in: the MAC, the AEAD tag, or the
/// decrypted length or padding being refused first.
fn is_forgery_error(e: &Error) -> bool {
    matches!(
        e,
        Error::MacMismatch { .. }
            | Error::PacketCorrupt { .. }
            | Error::BadPacketLength { .. }
            | Error::BadPadding { .. }
            | Error::BadBlockAlignment { .. }
            // CBC: the discard runs on to the end of the stream.
            | Error::EofWhileDiscarding { .. }
    )
}

fn codec(s: &Script, provider: &'static CryptoProvider) {
    let (mut sealer, mut opener, mut input) = (Sealer::new(), Opener::new(), InputBuffer::new());
    sealer.set_crypto_provider(provider);
    opener.set_crypto_provider(provider);
    let mut wire = Vec::new();
    for keys in [&s.first, &s.second] {
        sealer.set_keys(keys.clone()).unwrap();
        opener.set_keys(keys.clone()).unwrap();
        for (i, &len) in SIZES.iter().enumerate() {
            sealer.seal(&s.payload(i, len), &mut wire).unwrap();
            assert_eq!(opener.feed(&mut input, &wire), wire.len());
            wire.clear();
            match opener.next_packet(&mut input).unwrap() {
                Opened::Packet(p) => {
                    let mut got = Zeroizing::new(p.payload().to_vec());
                    s.check(&mut got, i, len);
                }
                other => panic!("packet {i}: {other:?}"),
            }
        }
    }
    let err = sealer.seal(&s.too_large(), &mut wire).unwrap_err();
    assert!(matches!(err, Error::PayloadTooLarge { .. }), "{err}");
    drop(wire);
    let (mut opener, mut input) = (Opener::new(), InputBuffer::new());
    opener.set_crypto_provider(provider);
    let forged = s.forged_stream();
    opener.feed(&mut input, &forged);
    let result = loop {
        let wanted = match opener.next_packet(&mut input) {
            Ok(Opened::AwaitingKeys) => {
                opener.set_keys(s.first.clone()).unwrap();
                continue;
            }
            Ok(Opened::Packet(p)) => {
                Zeroizing::new(p.payload().to_vec()).zeroize();
                continue;
            }
            Ok(Opened::NeedMore(n)) => n,
            Ok(other) => panic!("the forged stream ended in {other:?}"),
            Err(e) => break e,
        };
        // CBC: the discard wants its full length before it reports.
        assert!(
            wanted > 0 && input.buffered() < 1 << 20,
            "the forged stream wants {wanted} bytes more"
        );
        opener.feed(&mut input, &vec![0; wanted]);
    };
    assert!(is_forgery_error(&result), "{result}");
}

fn sync_whole(s: &Script) {
    use ssh_packetizer::pipe::pipe;
    use ssh_packetizer::Packetizer;
    let (a, b) = pipe();
    let mut tx = Packetizer::with_config(a, s.config.clone());
    let mut rx = Packetizer::with_config(b, s.config.clone());
    for keys in [&s.first, &s.second] {
        tx.send_newkeys(keys.clone()).unwrap();
        assert_eq!(rx.read_message().unwrap().msg_type(), 21);
        rx.set_inbound_cipher(keys.clone()).unwrap();
        for (i, &len) in SIZES.iter().enumerate() {
            tx.send_message(&s.payload(i, len)).unwrap();
            let mut got = Zeroizing::new(rx.read_message().unwrap().payload().to_vec());
            s.check(&mut got, i, len);
        }
    }
    let err = tx.send_message(&s.too_large()).unwrap_err();
    assert!(matches!(err, Error::PayloadTooLarge { .. }), "{err}");
    drop((tx, rx));

    let (a, mut b) = pipe();
    b.write_all(&s.forged_stream()).unwrap();
    // The peer hangs up after it: a CBC discard reads to the end.
    drop(b);
    let mut rx = Packetizer::with_config(a, s.config.clone());
    assert_eq!(rx.read_message().unwrap().msg_type(), 21);
    rx.set_inbound_cipher(s.first.clone()).unwrap();
    let err = loop {
        match rx.read_message() {
            Ok(p) => Zeroizing::new(p.payload().to_vec()).zeroize(),
            Err(e) => break e,
        }
    };
    assert!(is_forgery_error(&err), "{err}");
}

fn sync_halves(s: &Script) {
    use ssh_packetizer::pipe::pipe;
    use ssh_packetizer::Packetizer;
    let (a, b) = pipe();
    let (a_reader, tx) = Packetizer::with_config(a, s.config.clone())
        .split()
        .unwrap();
    let (mut rx, b_writer) = Packetizer::with_config(b, s.config.clone())
        .split()
        .unwrap();
    for keys in [&s.first, &s.second] {
        tx.send_newkeys(keys.clone()).unwrap();
        assert_eq!(rx.read_message().unwrap().msg_type(), 21);
        rx.set_inbound_cipher(keys.clone()).unwrap();
        for (i, &len) in SIZES.iter().enumerate() {
            tx.send_message(&s.payload(i, len)).unwrap();
            let mut got = Zeroizing::new(rx.read_message().unwrap().payload().to_vec());
            s.check(&mut got, i, len);
        }
    }
    let err = tx.send_message(&s.too_large()).unwrap_err();
    assert!(matches!(err, Error::PayloadTooLarge { .. }), "{err}");
    drop((a_reader, tx, rx, b_writer));

    let (a, mut b) = pipe();
    b.write_all(&s.forged_stream()).unwrap();
    drop(b);
    let (mut rx, writer) = Packetizer::with_config(a, s.config.clone())
        .split()
        .unwrap();
    assert_eq!(rx.read_message().unwrap().msg_type(), 21);
    rx.set_inbound_cipher(s.first.clone()).unwrap();
    let err = loop {
        match rx.read_message() {
            Ok(p) => Zeroizing::new(p.payload().to_vec()).zeroize(),
            Err(e) => break e,
        }
    };
    assert!(is_forgery_error(&err), "{err}");
    drop((rx, writer));
}

#[cfg(feature = "tokio")]
mod tokio_cases {
    use futures_util::{SinkExt, StreamExt};
    use ssh_packetizer::tokio::{PacketCodec, Packetizer};
    use tokio::io::{duplex, AsyncWriteExt};
    use tokio_util::codec::Framed;
    use zeroize::{Zeroize, Zeroizing};

    use super::{is_forgery_error, Error, Script, SIZES};

    /// Room for a whole phase in the stream, so one task can send, then read.
    const ROOM: usize = 1 << 20;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let out = runtime.block_on(f);
        // The runtime's own blocks are freed inside the case too.
        drop(runtime);
        out
    }

    pub fn whole(s: &Script) {
        block_on(async {
            let (a, b) = duplex(ROOM);
            let mut tx = Packetizer::with_config(a, s.config.clone());
            let mut rx = Packetizer::with_config(b, s.config.clone());
            for keys in [&s.first, &s.second] {
                tx.send_newkeys(keys.clone()).await.unwrap();
                assert_eq!(rx.read_message().await.unwrap().msg_type(), 21);
                rx.set_inbound_cipher(keys.clone()).unwrap();
                for (i, &len) in SIZES.iter().enumerate() {
                    tx.send_message(&s.payload(i, len)).await.unwrap();
                    let packet = rx.read_message().await.unwrap();
                    let mut got = Zeroizing::new(packet.payload().to_vec());
                    s.check(&mut got, i, len);
                }
            }
            let err = tx.send_message(&s.too_large()).await.unwrap_err();
            assert!(matches!(err, Error::PayloadTooLarge { .. }), "{err}");
            drop((tx, rx));

            let (a, mut b) = duplex(ROOM);
            b.write_all(&s.forged_stream()).await.unwrap();
            drop(b);
            let mut rx = Packetizer::with_config(a, s.config.clone());
            assert_eq!(rx.read_message().await.unwrap().msg_type(), 21);
            rx.set_inbound_cipher(s.first.clone()).unwrap();
            let err = loop {
                match rx.read_message().await {
                    Ok(p) => Zeroizing::new(p.payload().to_vec()).zeroize(),
                    Err(e) => break e,
                }
            };
            assert!(is_forgery_error(&err), "{err}");
            drop(rx);
        });
    }

    pub fn halves(s: &Script) {
        block_on(async {
            let (a, b) = duplex(ROOM);
            let (a_reader, tx) = Packetizer::with_config(a, s.config.clone()).into_split();
            let (mut rx, b_writer) = Packetizer::with_config(b, s.config.clone()).into_split();
            for keys in [&s.first, &s.second] {
                tx.send_newkeys(keys.clone()).await.unwrap();
                assert_eq!(rx.read_message().await.unwrap().msg_type(), 21);
                rx.set_inbound_cipher(keys.clone()).unwrap();
                for (i, &len) in SIZES.iter().enumerate() {
                    tx.send_message(&s.payload(i, len)).await.unwrap();
                    let packet = rx.read_message().await.unwrap();
                    let mut got = Zeroizing::new(packet.payload().to_vec());
                    s.check(&mut got, i, len);
                }
            }
            let err = tx.send_message(&s.too_large()).await.unwrap_err();
            assert!(matches!(err, Error::PayloadTooLarge { .. }), "{err}");
            drop((a_reader, tx, rx, b_writer));

            let (a, mut b) = duplex(ROOM);
            b.write_all(&s.forged_stream()).await.unwrap();
            drop(b);
            let (mut rx, writer) = Packetizer::with_config(a, s.config.clone()).into_split();
            assert_eq!(rx.read_message().await.unwrap().msg_type(), 21);
            rx.set_inbound_cipher(s.first.clone()).unwrap();
            let err = loop {
                match rx.read_message().await {
                    Ok(p) => Zeroizing::new(p.payload().to_vec()).zeroize(),
                    Err(e) => break e,
                }
            };
            assert!(is_forgery_error(&err), "{err}");
            drop((rx, writer));
        });
    }

    /// Takes an item's payload and wipes it once checked: the item is the
    /// caller's, so wiping it is the caller's part (SECURITY.md).
    fn owned(packet: ssh_packetizer::tokio::OwnedPacket) -> Zeroizing<Vec<u8>> {
        let bytes = packet.into_payload();
        let mut mine = bytes
            .try_into_mut()
            .expect("the item's payload is not shared");
        let copy = Zeroizing::new(mine.to_vec());
        mine.as_mut().zeroize();
        copy
    }

    pub fn framed(s: &Script) {
        block_on(async {
            let (a, b) = duplex(ROOM);
            let mut tx = Framed::new(a, PacketCodec::new(s.config.clone()));
            let mut rx = Framed::new(b, PacketCodec::new(s.config.clone()));
            for keys in [&s.first, &s.second] {
                tx.send(keys.clone()).await.unwrap();
                assert_eq!(rx.next().await.unwrap().unwrap().msg_type(), 21);
                rx.codec_mut().set_inbound_keys(keys.clone()).unwrap();
                for (i, &len) in SIZES.iter().enumerate() {
                    // Each of the three payload types the codec takes:
                    // the owned ones are the codec's to wipe.
                    let payload = s.payload(i, len);
                    match i % 3 {
                        0 => tx.send(&payload[..]).await.unwrap(),
                        1 => tx.send(payload.to_vec()).await.unwrap(),
                        _ => tx.send(bytes::Bytes::from(payload.to_vec())).await.unwrap(),
                    }
                    let mut got = owned(rx.next().await.unwrap().unwrap());
                    s.check(&mut got, i, len);
                }
            }
            let err = tx.send(&s.too_large()[..]).await.unwrap_err();
            assert!(matches!(err, Error::PayloadTooLarge { .. }), "{err}");
            drop((tx, rx));

            let (a, mut b) = duplex(ROOM);
            b.write_all(&s.forged_stream()).await.unwrap();
            drop(b);
            let mut rx = Framed::new(a, PacketCodec::new(s.config.clone()));
            assert_eq!(rx.next().await.unwrap().unwrap().msg_type(), 21);
            rx.codec_mut().set_inbound_keys(s.first.clone()).unwrap();
            let err = loop {
                match rx.next().await {
                    Some(Ok(p)) => drop(owned(p)),
                    Some(Err(e)) => break e,
                    None => panic!("the forged stream ended without an error"),
                }
            };
            assert!(is_forgery_error(&err), "{err}");
            drop(rx);
        });
    }
}
