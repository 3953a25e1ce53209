//! Helpers shared by the integration tests.
#![allow(dead_code)]

use serde_json::Value;
use ssh_packetizer::{CipherAlgorithm, Keys, MacAlgorithm, Opened, Opener};

/// Decodes a hex string.
pub fn hex(s: &str) -> Vec<u8> {
    assert!(s.len() % 2 == 0, "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digit"))
        .collect()
}

/// One packet of a known-answer suite.
pub struct VectorPacket {
    pub seqno: u32,
    pub payload: Vec<u8>,
    pub wire: Vec<u8>,
}

/// One known-answer suite from tests/data/suites.json.
pub struct Suite {
    pub cipher: CipherAlgorithm,
    pub mac: MacAlgorithm,
    pub key: Vec<u8>,
    pub iv: Vec<u8>,
    pub mac_key: Vec<u8>,
    pub first_seqno: u32,
    pub packets: Vec<VectorPacket>,
}

impl Suite {
    pub fn keys(&self) -> Keys {
        Keys::new(self.cipher, self.mac, &self.key, &self.iv, &self.mac_key).expect("vector keys")
    }

    pub fn name(&self) -> String {
        format!("{} + {}", self.cipher, self.mac)
    }
}

/// Every suite in the project's copy of the shared vectors.
pub fn suites() -> Vec<Suite> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/suites.json");
    let text = std::fs::read_to_string(path).expect("tests/data/suites.json");
    let doc: Value = serde_json::from_str(&text).expect("valid JSON");
    let s = |v: &Value, k: &str| v[k].as_str().unwrap_or_else(|| panic!("{k}")).to_owned();
    doc["vectors"]
        .as_array()
        .expect("vectors array")
        .iter()
        .map(|v| {
            let mac = s(v, "mac");
            Suite {
                cipher: s(v, "cipher").parse().expect("known cipher"),
                mac: if mac.is_empty() {
                    MacAlgorithm::None
                } else {
                    mac.parse().expect("known MAC")
                },
                key: hex(&s(v, "key")),
                iv: hex(&s(v, "iv")),
                mac_key: hex(&s(v, "mac_key")),
                first_seqno: v["first_seqno"].as_u64().expect("first_seqno") as u32,
                packets: v["packets"]
                    .as_array()
                    .expect("packets")
                    .iter()
                    .map(|p| VectorPacket {
                        seqno: p["seqno"].as_u64().expect("seqno") as u32,
                        payload: hex(&s(p, "payload")),
                        wire: hex(&s(p, "wire")),
                    })
                    .collect(),
            }
        })
        .collect()
}

/// Keys of the right lengths for `cipher` and `mac`, filled from `seed`.
pub fn keys_for(cipher: CipherAlgorithm, mac: MacAlgorithm, seed: u8) -> Keys {
    let spec = cipher.spec();
    let fill = |len: usize, salt: u8| -> Vec<u8> {
        (0..len)
            .map(|i| {
                seed.wrapping_mul(31)
                    .wrapping_add(salt)
                    .wrapping_add(i as u8)
            })
            .collect()
    };
    Keys::new(
        cipher,
        mac,
        &fill(spec.key_len, 1),
        &fill(spec.iv_len, 2),
        &fill(mac.spec().key_len, 3),
    )
    .expect("lengths from the table")
}

/// Every cipher and MAC pair the crate can run today.
pub fn supported_suites() -> Vec<(CipherAlgorithm, MacAlgorithm)> {
    let mut out = vec![(CipherAlgorithm::None, MacAlgorithm::None)];
    for &c in CipherAlgorithm::ALL {
        for &m in MacAlgorithm::ALL {
            if c != CipherAlgorithm::None && ssh_packetizer::Mode::of(c, m).is_ok() {
                let keys = keys_for(c, m, 0);
                if ssh_packetizer::Sealer::new().set_keys(keys).is_ok() {
                    out.push((c, m));
                }
            }
        }
    }
    out
}

/// A payload of `len` bytes that differs from packet to packet.
pub fn payload(len: usize, salt: u64) -> Vec<u8> {
    let mut x = salt.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Feeds `wire` to `opener` whole and returns every packet as (payload, seqno).
pub fn open_all(
    opener: &mut Opener,
    wire: &[u8],
) -> Result<Vec<(Vec<u8>, u32)>, ssh_packetizer::Error> {
    let mut out = Vec::new();
    let mut rest = wire;
    loop {
        let taken = opener.feed(rest);
        rest = &rest[taken..];
        loop {
            match opener.next_packet()? {
                Opened::Packet(p) => out.push((p.payload().to_vec(), p.seqno())),
                Opened::NeedMore(_) => break,
            }
        }
        if rest.is_empty() {
            return Ok(out);
        }
    }
}
