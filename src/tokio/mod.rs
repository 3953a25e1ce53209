//! The async drivers (feature `tokio`): a [`Packetizer`] over any
//! `AsyncRead + AsyncWrite + Unpin`, its [`PacketReader`] / [`PacketWriter`]
//! halves for two tasks, and a `tokio_util::codec` [`PacketCodec`] for
//! `Framed` users.
//!
//! All three are thin drivers over the same [`Connection`](crate::Connection)
//! as the sync ones, so every rule (NEWKEYS, rekeys, deadlines, keepalive,
//! holds during a kex, the first fatal error) is the same. The timers run on
//! `tokio::time` (tests can pause the clock); the streams need no read
//! timeout, but the runtime needs its time driver (`enable_time` or
//! `enable_all` on the builder; `#[tokio::main]` turns it on). Which calls
//! are cancel-safe is said on [`Packetizer`].

mod codec;
mod driver;
mod packetizer;
mod split;
mod timer;

pub use self::codec::{OwnedPacket, PacketCodec, BACKPRESSURE_BOUNDARY};
pub use self::packetizer::Packetizer;
pub use self::split::{PacketReader, PacketWriter};
pub use self::timer::IDLE_RELEASE;
