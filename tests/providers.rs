//! The crypto providers of the build against each other: what each seals
//! is byte for byte what every other seals and opens, in every suite; a
//! tampered stream is caught under each; and each says truthfully which
//! provider runs each algorithm.
//!
//! With the default build only RustCrypto is there and these check it
//! against itself; CI runs them again with `aws-lc-rs` and `openssl`.

mod common;

use common::{keys_for, open_all, payload, supported_suites};
use ssh_packetizer::{
    CipherAlgorithm, CryptoProvider, Error, InputBuffer, MacAlgorithm, Opened, Opener, Sealer,
    ZeroPadding,
};

/// The smallest maximum packet length an Opener takes.
const SMALL_MAX: usize = 35_000;

/// Lengths around block and packet edges, and one past the 32 KiB bulk size.
const LENS: [usize; 9] = [1, 7, 15, 16, 17, 255, 4095, 16_384, 35_000];

/// Whether `provider` runs suite `c`+`m` at all (a FIPS provider refuses
/// what is not approved; `fips_refuses_what_is_not_approved` checks that).
fn runs(provider: &'static CryptoProvider, c: CipherAlgorithm, m: MacAlgorithm) -> bool {
    !provider.is_fips() || (provider.allows_cipher(c) && provider.allows_mac(m))
}

fn sealer(provider: &'static CryptoProvider, c: CipherAlgorithm, m: MacAlgorithm) -> Sealer {
    let mut sealer = Sealer::new();
    sealer.set_crypto_provider(provider);
    sealer.set_keys(keys_for(c, m, 5)).unwrap();
    // Deterministic padding, so that two providers' bytes can be compared.
    sealer.set_padding_source(Box::new(ZeroPadding));
    sealer
}

fn opener(provider: &'static CryptoProvider, c: CipherAlgorithm, m: MacAlgorithm) -> Opener {
    let mut opener = Opener::new();
    opener.set_crypto_provider(provider);
    opener.set_keys(keys_for(c, m, 5)).unwrap();
    opener
}

/// The stream `provider` seals for LENS in suite `c`+`m`.
fn sealed(provider: &'static CryptoProvider, c: CipherAlgorithm, m: MacAlgorithm) -> Vec<u8> {
    let mut sealer = sealer(provider, c, m);
    let mut wire = Vec::new();
    for (i, &n) in LENS.iter().enumerate() {
        sealer.seal(&payload(n, i as u64), &mut wire).unwrap();
    }
    wire
}

fn expected() -> Vec<(Vec<u8>, u32)> {
    LENS.iter()
        .enumerate()
        .map(|(i, &n)| (payload(n, i as u64), i as u32))
        .collect()
}

#[test]
fn every_provider_pair_agrees_byte_for_byte_in_every_suite() {
    let providers = CryptoProvider::available();
    let mut pairs = 0;
    for (c, m) in supported_suites() {
        let reference = sealed(CryptoProvider::rust_crypto(), c, m);
        for &sender in providers {
            if !runs(sender, c, m) {
                continue;
            }
            let wire = sealed(sender, c, m);
            assert!(
                wire == reference,
                "{c}+{m}: {} seals other bytes than rustcrypto",
                sender.name()
            );
            for &receiver in providers {
                if !runs(receiver, c, m) {
                    continue;
                }
                let mut opener = opener(receiver, c, m);
                let mut opener_in = InputBuffer::new();
                let opened = open_all(&mut opener, &mut opener_in, &wire).unwrap_or_else(|e| {
                    panic!("{c}+{m} {}->{}: {e}", sender.name(), receiver.name())
                });
                assert_eq!(
                    opened,
                    expected(),
                    "{c}+{m} {}->{}",
                    sender.name(),
                    receiver.name()
                );
                pairs += 1;
            }
        }
    }
    if !cfg!(feature = "fips") {
        assert_eq!(
            pairs,
            supported_suites().len() * providers.len() * providers.len()
        );
    }
    assert!(pairs > 0);
}

#[test]
fn a_key_switch_between_providers_keeps_the_stream() {
    // The sender switches provider and suite at a key change while the
    // receiver stays on its own; then the other way round.
    let providers = CryptoProvider::available();
    let (first, second) = (
        (CipherAlgorithm::Aes128Ctr, MacAlgorithm::HmacSha256Etm),
        (CipherAlgorithm::Aes256Gcm, MacAlgorithm::None),
    );
    for &a in providers {
        for &b in providers {
            // (Both suites are FIPS-approved.)
            let mut sealer = sealer(a, first.0, first.1);
            let mut opener = opener(b, first.0, first.1);
            let mut opener_in = InputBuffer::new();
            let mut wire = Vec::new();
            sealer.seal(&payload(100, 1), &mut wire).unwrap();
            sealer.set_crypto_provider(b);
            sealer.set_keys(keys_for(second.0, second.1, 6)).unwrap();
            sealer.seal(&payload(200, 2), &mut wire).unwrap();
            opener.feed(&mut opener_in, &wire);
            match opener.next_packet(&mut opener_in).unwrap() {
                Opened::Packet(p) => assert_eq!(p.payload(), payload(100, 1)),
                other => panic!("{other:?}"),
            }
            opener.set_crypto_provider(a);
            opener.set_keys(keys_for(second.0, second.1, 6)).unwrap();
            match opener.next_packet(&mut opener_in).unwrap() {
                Opened::Packet(p) => assert_eq!(p.payload(), payload(200, 2)),
                other => panic!("{other:?}"),
            }
        }
    }
}

#[test]
fn a_tampered_stream_is_caught_under_every_provider() {
    for &provider in CryptoProvider::available() {
        for (c, m) in supported_suites() {
            if c == CipherAlgorithm::None || !runs(provider, c, m) {
                continue;
            }
            let mut sealer = sealer(provider, c, m);
            let (mut wire, mut starts, mut payloads) = (Vec::new(), Vec::new(), Vec::new());
            for (i, n) in [40usize, 300, 33].into_iter().enumerate() {
                starts.push(wire.len());
                payloads.push(payload(n, i as u64));
                sealer.seal(&payloads[i], &mut wire).unwrap();
            }
            // A sample of the bytes (the full sweep runs on the default
            // provider, in tests/tamper.rs).
            for offset in (0..wire.len()).step_by(5) {
                let hit = starts.partition_point(|&start| start <= offset) - 1;
                let mut bad = wire.clone();
                bad[offset] ^= 0x10;
                let mut opener = opener(provider, c, m);
                // The smallest maximum packet, so that CBC's discard
                // (which takes one) ends in the junk after the stream.
                opener.set_max_packet_len(SMALL_MAX).unwrap();
                bad.resize(bad.len() + SMALL_MAX + 100, 0);
                let mut out = Vec::new();
                let end = feed_until_error(&mut opener, &mut InputBuffer::new(), &bad, &mut out);
                assert_eq!(
                    out,
                    payloads[..hit],
                    "{} {c}+{m} @{offset}: tampered data came out",
                    provider.name()
                );
                match end {
                    Some(e) => assert!(e.is_peer_fault(), "{} {c}+{m}: {e:?}", provider.name()),
                    None => panic!("{} {c}+{m} @{offset}: accepted", provider.name()),
                }
            }
        }
    }
}

/// Feeds `wire` and collects payloads until an error, or `None` if the
/// Opener only waits for more at the end.
fn feed_until_error(
    opener: &mut Opener,
    opener_in: &mut InputBuffer,
    wire: &[u8],
    out: &mut Vec<Vec<u8>>,
) -> Option<Error> {
    let mut rest = wire;
    loop {
        rest = &rest[opener.feed(opener_in, rest)..];
        loop {
            match opener.next_packet(opener_in) {
                Ok(Opened::Packet(p)) => out.push(p.payload().to_vec()),
                Ok(Opened::NeedMore(_)) => {
                    if rest.is_empty() {
                        return None;
                    }
                    break;
                }
                Ok(other) => panic!("{other:?}"),
                Err(e) => return Some(e),
            }
        }
    }
}

#[test]
fn each_provider_names_who_runs_each_algorithm() {
    let rust_crypto = CryptoProvider::rust_crypto();
    for &provider in CryptoProvider::available() {
        assert!(!provider.is_fips() || cfg!(feature = "fips"));
        for &c in CipherAlgorithm::ALL {
            if c == CipherAlgorithm::None {
                continue;
            }
            let supplier = provider.cipher_supplier(c);
            if !c.is_available() {
                assert!(matches!(supplier, Err(Error::Unsupported { .. })), "{c}");
                continue;
            }
            let own = match provider.name() {
                "rustcrypto" => true,
                // aws-lc-rs has OpenSSH's chacha20-poly1305 construction;
                // neither it nor OpenSSL has the CBC forms here.
                "aws-lc-rs" => !c.is_legacy(),
                "openssl" => !c.is_legacy() && c != CipherAlgorithm::ChaCha20Poly1305,
                other => panic!("unknown provider {other}"),
            };
            if provider.is_fips() {
                continue; // see fips_refuses_what_is_not_approved
            }
            let expected = if own { provider } else { rust_crypto };
            assert_eq!(supplier.unwrap(), expected, "{} {c}", provider.name());
        }
        for &m in MacAlgorithm::ALL {
            let supplier = provider.mac_supplier(m);
            if !m.is_available() {
                assert!(matches!(supplier, Err(Error::Unsupported { .. })), "{m}");
                continue;
            }
            let name = m.name();
            let own = provider.name() == "rustcrypto"
                || m == MacAlgorithm::None
                || !(name.starts_with("umac") || name.starts_with("hmac-md5"));
            if provider.is_fips() {
                continue;
            }
            let expected = if own { provider } else { rust_crypto };
            assert_eq!(supplier.unwrap(), expected, "{} {m}", provider.name());
        }
    }
}

#[test]
fn providers_are_found_by_name() {
    for &provider in CryptoProvider::available() {
        assert_eq!(CryptoProvider::by_name(provider.name()), Some(provider));
    }
    assert_eq!(
        CryptoProvider::available()[0],
        CryptoProvider::rust_crypto()
    );
    assert_eq!(
        CryptoProvider::available().len(),
        1 + usize::from(cfg!(feature = "aws-lc-rs")) + usize::from(cfg!(feature = "openssl"))
    );
    assert!(CryptoProvider::by_name("ring").is_none());
}

#[cfg(feature = "fips")]
#[test]
fn fips_refuses_what_is_not_approved() {
    let fips = CryptoProvider::aws_lc_rs();
    assert!(fips.is_fips());
    assert_eq!(CryptoProvider::get_default(), fips);
    for c in [CipherAlgorithm::Aes128Ctr, CipherAlgorithm::Aes256Gcm] {
        assert_eq!(fips.cipher_supplier(c).unwrap(), fips);
    }
    let refused = fips.cipher_supplier(CipherAlgorithm::ChaCha20Poly1305);
    assert!(
        matches!(refused, Err(Error::NotApproved { .. })),
        "{refused:?}"
    );
    assert!(fips.mac_supplier(MacAlgorithm::Umac64Etm).is_err());
    assert_eq!(
        fips.mac_supplier(MacAlgorithm::HmacSha512Etm).unwrap(),
        fips
    );
    // Keys of a refused algorithm are refused at installation.
    let mut sealer = Sealer::new();
    let keys = keys_for(CipherAlgorithm::ChaCha20Poly1305, MacAlgorithm::None, 1);
    assert!(matches!(
        sealer.set_keys(keys),
        Err(Error::NotApproved { .. })
    ));
}

#[test]
fn the_ctr_counter_carries_alike_under_every_provider() {
    // An IV two blocks short of all ones: the first packet's keystream
    // carries through all 128 bits of the counter, and then wraps.
    let mut iv = [0xff; 16];
    iv[15] = 0xfe;
    for c in [
        CipherAlgorithm::Aes128Ctr,
        CipherAlgorithm::Aes192Ctr,
        CipherAlgorithm::Aes256Ctr,
    ] {
        let m = MacAlgorithm::HmacSha256Etm;
        let keys = || {
            ssh_packetizer::Keys::new(
                c,
                m,
                ssh_packetizer::KeyMaterial {
                    key: &vec![0x42; c.spec().key_len()],
                    iv: &iv,
                    mac_key: &[0x17; 32],
                },
            )
            .unwrap()
        };
        let seal = |provider: &'static CryptoProvider| {
            let mut sealer = Sealer::new();
            sealer.set_crypto_provider(provider);
            sealer.set_keys(keys()).unwrap();
            sealer.set_padding_source(Box::new(ZeroPadding));
            let mut wire = Vec::new();
            for (i, &n) in [100usize, 5000, 3].iter().enumerate() {
                sealer.seal(&payload(n, i as u64), &mut wire).unwrap();
            }
            wire
        };
        let reference = seal(CryptoProvider::rust_crypto());
        for &provider in CryptoProvider::available() {
            assert!(seal(provider) == reference, "{c}: {}", provider.name());
            let mut opener = Opener::new();
            let mut opener_in = InputBuffer::new();
            opener.set_crypto_provider(provider);
            opener.set_keys(keys()).unwrap();
            let opened = open_all(&mut opener, &mut opener_in, &reference).unwrap();
            assert_eq!(opened.len(), 3, "{c}: {}", provider.name());
            assert_eq!(opened[1].0, payload(5000, 1));
        }
    }
}
