//! A pure-Rust SSH binary packet layer (RFC 4253 §6).
//!
//! The core is sans-IO: a [`Sealer`] turns payloads into wire packets and an
//! [`Opener`] turns wire bytes back into payloads, with padding, encryption,
//! MACs, sequence numbers, length and padding checks, rekey accounting and
//! compression, but no sockets, clocks or threads. On top of it,
//! [`Packetizer`] runs the protocol over any `Read + Write` stream, in the
//! manner of paramiko's Packetizer, and splits into halves for two threads.
//! See the README for the algorithm table, a client-side flow and notes on
//! threading and timeouts.
//!
//! ```
//! use ssh_packetizer::{CipherAlgorithm, Keys, MacAlgorithm, Opened, Opener, Sealer};
//!
//! let keys = Keys::new(
//!     CipherAlgorithm::Aes128Ctr,
//!     MacAlgorithm::HmacSha256Etm,
//!     &[7; 16],  // key
//!     &[9; 16],  // IV
//!     &[3; 32],  // MAC key
//! )?;
//! let (mut sealer, mut opener) = (Sealer::new(), Opener::new());
//! sealer.set_keys(keys.clone())?;
//! opener.set_keys(keys)?;
//!
//! let mut wire = Vec::new();
//! sealer.seal(b"\x05hello", &mut wire)?;
//! opener.feed(&wire);
//! match opener.next_packet()? {
//!     Opened::Packet(p) => assert_eq!((p.payload(), p.seqno()), (&b"\x05hello"[..], 0)),
//!     Opened::NeedMore(n) => unreachable!("a whole packet was fed, yet {n} more bytes wanted"),
//! }
//! # Ok::<(), ssh_packetizer::Error>(())
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod algorithm;
pub mod banner;
pub mod codec;
mod compress;
mod connection;
mod crypto;
pub mod error;
pub mod keys;
pub mod msg;
pub mod packetizer;
pub mod padding;
#[cfg(any(test, feature = "test-util"))]
pub mod pipe;
pub mod rekey;

pub use algorithm::{CipherAlgorithm, CompressionAlgorithm, MacAlgorithm, Mode};
pub use banner::Identification;
pub use codec::{Frame, Opened, Opener, Packet, Sealer, Step};
pub use connection::{Connection, Event, Role, Sent, HOLD_LIMIT};
pub use error::{Error, Result};
pub use keys::{Direction, KdfHash, KeyDerivation, Keys};
pub use packetizer::{PacketReader, PacketWriter, Packetizer, SendMessage};
pub use padding::{PaddingSource, RandomPadding, ZeroPadding};
pub use rekey::RekeyLimits;

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
