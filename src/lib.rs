//! A pure-Rust SSH binary packet layer (RFC 4253 §6), for SSH clients,
//! servers, fuzzers and benchmark harnesses that talk to OpenSSH and paramiko
//! byte for byte.
//!
//! # Layers
//!
//! - [`Sealer`] / [`Opener`]: the sans-IO codec, one direction each:
//!   framing, padding, encryption, MACs, sequence numbers, every receive
//!   check OpenSSH makes, rekey budgets, compression. The Opener stops after
//!   NEWKEYS until the next keys are installed.
//! - [`Connection`]: the sans-IO connection core over both directions, in
//!   the manner of quinn-proto. It owns every rule that spans them: NEWKEYS
//!   handling and the atomic outbound key switch, strict-kex resets, "initial
//!   kex done", one `need_rekey`, the handshake deadline, the keepalive and
//!   the key age (as deadlines: [`Connection::poll_timeout`]), messages held
//!   during a key exchange, DISCONNECT in and out, bounded input, and the
//!   first fatal error, reported by every later call. It reads no clock and
//!   does no I/O: drivers hand it bytes and `now`. [`Connection::split`]
//!   splits it into an [`Inbound`] and an [`Outbound`] half over one
//!   [`SharedConnection`], for a reader and writers that run apart.
//! - [`Packetizer`], [`PacketReader`] and [`PacketWriter`]: thin sync
//!   drivers over any `Read + Write`, in the manner of paramiko's
//!   Packetizer, split into halves for two threads (over the core's own
//!   split). No lock is held across a blocking read or write.
//!
//! # Quick start
//!
//! ```
//! use ssh_packetizer::pipe::pipe; // an in-memory socket (feature `test-util`)
//! use ssh_packetizer::{msg, CipherAlgorithm, KeyMaterial, Keys, MacAlgorithm, Packetizer};
//!
//! let (a, b) = pipe();
//! let (mut client, mut server) = (Packetizer::new(a), Packetizer::new(b));
//! client.send_identification("SSH-2.0-quickstart")?;
//! assert_eq!(server.read_identification()?.as_str(), "SSH-2.0-quickstart");
//!
//! // ... KEXINIT and the key exchange go here; it yields keys per direction:
//! let keys = Keys::new(
//!     CipherAlgorithm::Aes256Gcm,
//!     MacAlgorithm::None,
//!     KeyMaterial { key: &[7; 32], iv: &[9; 12], mac_key: &[] },
//! )?;
//! client.send_newkeys(keys.clone())?; // NEWKEYS, then the switch, in one step
//! assert_eq!(server.read_message()?.msg_type(), msg::NEWKEYS);
//! server.set_inbound_cipher(keys)?;   // the server held everything after NEWKEYS
//!
//! client.send_message(&[msg::CHANNEL_DATA, 1, 2, 3])?;
//! let m = server.read_message()?;      // borrowed from the read buffer: no copy
//! assert_eq!((m.msg_type(), m.payload()), (msg::CHANNEL_DATA, &[94, 1, 2, 3][..]));
//! # Ok::<(), ssh_packetizer::Error>(())
//! ```
//!
//! The codec alone, with no I/O at all:
//!
//! ```
//! use ssh_packetizer::{
//!     CipherAlgorithm, InputBuffer, KeyMaterial, Keys, MacAlgorithm, Opened, Opener, Sealer,
//! };
//!
//! let keys = Keys::new(
//!     CipherAlgorithm::Aes128Ctr,
//!     MacAlgorithm::HmacSha256Etm,
//!     KeyMaterial { key: &[7; 16], iv: &[9; 16], mac_key: &[3; 32] },
//! )?;
//! let (mut sealer, mut opener) = (Sealer::new(), Opener::new());
//! sealer.set_keys(keys.clone())?;
//! opener.set_keys(keys)?;
//!
//! let mut wire = Vec::new();
//! sealer.seal(b"\x05hello", &mut wire)?;
//! let mut input = InputBuffer::new(); // the wire bytes, lent to each read
//! opener.feed(&mut input, &wire);
//! match opener.next_packet(&mut input)? {
//!     Opened::Packet(p) => assert_eq!((p.payload(), p.seqno()), (&b"\x05hello"[..], 0)),
//!     other => unreachable!("a whole packet was fed, yet {other:?}"),
//! }
//! # Ok::<(), ssh_packetizer::Error>(())
//! ```
//!
//! # Crypto providers
//!
//! The engines run on a [`CryptoProvider`], in the manner of rustls: RustCrypto
//! (pure Rust, the default and the only one in a default build), aws-lc-rs
//! (feature `aws-lc-rs`; `fips` for its FIPS build) or OpenSSL (feature
//! `openssl`, the system's libcrypto). A connection takes the process
//! default ([`CryptoProvider::install_default`]) unless its [`Config`]
//! names another ([`Config::crypto_provider`]); an algorithm the provider's library
//! lacks runs on RustCrypto, unless the provider is in FIPS mode, which
//! refuses it. Providers interoperate byte for byte.
//!
//! ```
//! use ssh_packetizer::{CipherAlgorithm, CryptoProvider, KeyMaterial, Keys, MacAlgorithm, Sealer};
//!
//! // The fastest provider this build has: aws-lc-rs, OpenSSL or RustCrypto.
//! let provider = ["aws-lc-rs", "openssl", "rustcrypto"]
//!     .into_iter()
//!     .find_map(CryptoProvider::by_name)
//!     .unwrap();
//! let mut sealer = Sealer::new();
//! sealer.set_crypto_provider(provider); // a Connection and every driver: Config::crypto_provider
//! sealer.set_keys(Keys::new(
//!     CipherAlgorithm::Aes128Gcm,
//!     MacAlgorithm::None,
//!     KeyMaterial { key: &[7; 16], iv: &[9; 12], mac_key: &[] },
//! )?)?;
//! // Who runs UMAC for it: RustCrypto, for every provider but a FIPS one.
//! let umac = provider.mac_supplier(MacAlgorithm::Umac64Etm);
//! assert!(umac.is_ok() || provider.is_fips());
//! # Ok::<(), ssh_packetizer::Error>(())
//! ```
//!
//! # Algorithms
//!
//! | name | kind | key | IV | block | MAC / tag |
//! |---|---|---|---|---|---|
//! | `none` | clear, before the first NEWKEYS | 0 | 0 | 8 | 0 |
//! | `aes128-ctr`, `aes192-ctr`, `aes256-ctr` | cipher, with a MAC | 16, 24, 32 | 16 | 16 | the MAC's |
//! | `aes128-gcm@openssh.com`, `aes256-gcm@openssh.com` | AEAD | 16, 32 | 12 | 16 | 16 |
//! | `chacha20-poly1305@openssh.com` | AEAD | 64 | 0 | 8 | 16 |
//! | `hmac-sha1`, `hmac-sha2-256`, `hmac-sha2-512` | MAC, encrypt-and-MAC | 20, 32, 64 | | | 20, 32, 64 |
//! | the same with `-etm@openssh.com` | MAC, encrypt-then-MAC | 20, 32, 64 | | | 20, 32, 64 |
//! | `zlib`, `zlib@openssh.com` | compression (from the keys; after user auth) | | | | |
//!
//! # Building
//!
//! The cryptography crates are very slow unoptimised (10,000 messages took
//! 25 s in a plain debug build, 1 s with them optimised). In the crate that
//! depends on this one, optimise dependencies in dev builds:
//!
//! ```toml
//! [profile.dev.package."*"]
//! opt-level = 3
//! ```
//!
//! Features: `test-util` adds the in-memory `pipe` module, `ManualClock` and
//! arbitrary sequence numbers (`set_seqno`), for tests and harnesses.

// No unsafe code but in `zlib`, which drives zlib-rs's C interface.
#![deny(unsafe_code)]
// docs.rs (`--cfg docsrs`, nightly): mark each item with the feature it needs.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs)]

pub mod algorithm;
mod banner;
mod codec;
mod compress;
mod connection;
mod crypto;
mod error;
mod keys;
pub mod msg;
pub mod negotiate;
mod packetizer;
mod padding;
#[cfg(any(test, feature = "test-util"))]
pub mod pipe;
mod read_loop;
mod rekey;
#[cfg(feature = "tokio")]
pub mod tokio;
mod wipe;
mod zlib;

pub use algorithm::{CipherAlgorithm, CompressionAlgorithm, KdfHash, MacAlgorithm};
pub use banner::Identification;
pub use codec::{
    InputBuffer, Opened, Opener, Packet, Sealer, DEFAULT_MAX_PACKET_LEN, MAX_MAX_PACKET_LEN,
    MIN_MAX_PACKET_LEN,
};
pub use connection::{
    Config, Connection, Event, Inbound, Outbound, Role, Sent, SharedConnection, SplitDriver,
};
pub use crypto::{CryptoProvider, Direction, KeyDerivation};
pub use error::{Error, Result};
pub use keys::{KeyMaterial, Keys};
#[cfg(any(test, feature = "test-util"))]
pub use packetizer::ManualClock;
pub use packetizer::{
    Clock, Duplex, Halves, PacketReader, PacketWriter, Packetizer, SplitStream, SystemClock,
    DEFAULT_TICK, NONBLOCKING_BACKOFF,
};
pub use padding::{PaddingSource, RandomPadding, ZeroPadding};
pub use read_loop::SendMessage;
pub use rekey::RekeyLimits;

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
