//! minissh: a small SSH client built on ssh-packetizer, for interop tests
//! against OpenSSH and paramiko and for benchmarks against OpenSSH's `ssh`.
//!
//! It speaks curve25519-sha256 with strict kex, ssh-ed25519 host keys and
//! user keys, one session channel at a time (`exec`, scp upload), and
//! rekeys whenever either side asks. It is not published and not part of
//! the library.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod channel;
pub mod error;
pub mod hostkey;
pub mod identity;
mod inbound;
pub mod kex;
pub mod known_hosts;
pub mod msg;
mod outbound;
pub mod scp;
pub mod server;
pub mod session;
pub mod window;
pub mod wire;

pub use channel::{Channel, ExitStatus};
pub use error::{Error, Result};
pub use hostkey::{HostKeyCheck, UnknownHost, Verdict};
pub use inbound::Info;
pub use kex::Preferences;
pub use session::{Config, Session};
