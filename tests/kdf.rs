//! RFC 4253 §7.2 key derivation against values computed independently with
//! Python's hashlib (tests/data/kdf.json), with every crypto provider's
//! hash.

mod common;

use common::hex;
use ssh_packetizer::{
    CipherAlgorithm, CryptoProvider, Direction, InputBuffer, KdfHash, KeyDerivation, MacAlgorithm,
    Opened, Opener, Sealer,
};

fn load() -> serde_json::Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/kdf.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn derivation(doc: &serde_json::Value, hash: KdfHash) -> KeyDerivation {
    let field = |k: &str| hex(doc[k].as_str().unwrap());
    KeyDerivation::from_shared_secret(hash, &field("k"), &field("h"), &field("session_id"))
}

#[test]
fn derived_bytes_match_the_reference() {
    let doc = load();
    let cases = doc["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 8);
    for case in cases {
        let hash = match case["hash"].as_str().unwrap() {
            "sha256" => KdfHash::Sha256,
            _ => KdfHash::Sha512,
        };
        let letter = case["letter"].as_str().unwrap().as_bytes()[0];
        let len = case["len"].as_u64().unwrap() as usize;
        for &provider in CryptoProvider::available() {
            let out = derivation(&doc, hash)
                .with_crypto_provider(provider)
                .derive(letter, len);
            let expected = hex(case["out"].as_str().unwrap());
            assert_eq!(&out[..], &expected[..], "{case} ({})", provider.name());
        }
    }
}

#[test]
fn both_ends_derive_working_keys() {
    let doc = load();
    let d = derivation(&doc, KdfHash::Sha256);
    let (cipher, mac) = (CipherAlgorithm::Aes256Ctr, MacAlgorithm::HmacSha512Etm);
    // The client seals with its c->s keys; the server opens with the same.
    let client_out = d.keys(Direction::ClientToServer, cipher, mac).unwrap();
    let server_in = derivation(&doc, KdfHash::Sha256)
        .keys(Direction::ClientToServer, cipher, mac)
        .unwrap();
    let mut sealer = Sealer::new();
    sealer.set_keys(client_out).unwrap();
    let mut wire = Vec::new();
    sealer.seal(b"\x50hello", &mut wire).unwrap();
    let mut opener = Opener::new();
    let mut opener_in = InputBuffer::new();
    opener.set_keys(server_in).unwrap();
    opener.feed(&mut opener_in, &wire);
    assert!(
        matches!(opener.next_packet(&mut opener_in), Ok(Opened::Packet(p)) if p.payload() == b"\x50hello")
    );
    // The other direction's keys differ and cannot open it.
    let mut wrong = Opener::new();
    let mut wrong_in = InputBuffer::new();
    wrong
        .set_keys(d.keys(Direction::ServerToClient, cipher, mac).unwrap())
        .unwrap();
    wrong.feed(&mut wrong_in, &wire);
    assert!(wrong.next_packet(&mut wrong_in).is_err());
}
