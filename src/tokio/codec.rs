//! A `tokio_util::codec` Decoder and Encoder over the connection core, for
//! `Framed` users.

use std::ops::Range;

use bytes::{Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::timer::now;
use crate::codec::Frame;
use crate::connection::{Config, Connection};
use crate::error::Error;
use crate::keys::Keys;

/// A good `Framed::set_backpressure_boundary` for bulk transfer in 32 KiB
/// packets: `Framed` writes its buffer out once it holds this much, so two
/// packets go out per write rather than one (the default boundary, 8 KiB,
/// flushes after every 32 KiB packet), and at most about this much plus one
/// packet waits in memory per connection.
pub const BACKPRESSURE_BOUNDARY: usize = 64 * 1024;

/// One packet the codec decoded: its wire bytes, decrypted in place in
/// `Framed`'s read buffer and split off it without a copy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnedPacket {
    wire: Bytes,
    payload: Range<usize>,
    seqno: u32,
}

impl OwnedPacket {
    /// The payload, message type byte first.
    pub fn payload(&self) -> &[u8] {
        &self.wire[self.payload.clone()]
    }

    /// The message type (the payload's first byte).
    pub fn msg_type(&self) -> u8 {
        self.wire[self.payload.start]
    }

    /// The inbound sequence number it carried.
    pub fn seqno(&self) -> u32 {
        self.seqno
    }

    /// The payload as shared bytes (no copy).
    pub fn into_payload(self) -> Bytes {
        self.wire.slice(self.payload)
    }
}

/// The SSH binary packet protocol as a `tokio_util::codec` codec: `Framed`
/// gives a `Stream` of [`OwnedPacket`]s and a `Sink` of payloads (`&[u8]`,
/// `Vec<u8>`, `Bytes`) and of [`Keys`] (NEWKEYS and the outbound switch in
/// one step). Every rule of the [`Connection`] applies: NEWKEYS, rekeys,
/// holds during our kex, DISCONNECT, the first error.
///
/// # Key switches
/// After the stream yields the peer's NEWKEYS, install the inbound keys
/// with `framed.codec_mut().set_inbound_keys(keys)` before polling the
/// stream again. Until then the codec decodes nothing more (the bytes after
/// NEWKEYS are under the new keys). `Framed` reads the socket before it
/// decodes again once `decode` returned nothing, so polling first would
/// wait for more bytes from the peer, which may never come. Installed
/// first, a packet that arrived in the same read as NEWKEYS is decoded at
/// the next poll.
///
/// # Rekeys and timers
/// Encoding never blocks on a rekey: a spent budget, the peer's KEXINIT or
/// key age raise [`Event::RekeyWanted`](crate::Event::RekeyWanted) (see
/// [`Connection::poll_event`] and [`Connection::need_rekey`] through
/// [`PacketCodec::connection_mut`]); look after each item and send. The
/// codec reads tokio's clock as it decodes and encodes; a `Framed` user who
/// wants the handshake deadline or the keepalive while nothing moves runs
/// `poll_timeout` / `handle_timeout` on `connection_mut()` from a timer of
/// their own.
///
/// # Errors
/// A decode error ends `Framed`'s stream and is kept: later sends answer
/// [`Error::Failed`] with it. Polled on after the peer's NEWKEYS without
/// the inbound keys, past one input bound of bytes, the codec fails the
/// connection with [`Error::InputOverflow`] rather than let `Framed`'s
/// buffer grow. Once the connection failed, what `Framed` read is wiped
/// and dropped at each poll. A fatal error caused by the peer's bytes
/// queues a DISCONNECT in the core, which the codec cannot write (a decoder
/// has no write buffer): `connection().pending_output()` holds it for a
/// caller who wants to send it on the raw stream.
///
/// # Memory
/// `Framed` keeps its own read buffer (8 KiB to start, grown to the largest
/// packet read) and write buffer (up to the back-pressure boundary plus one
/// packet, see [`BACKPRESSURE_BOUNDARY`]); the codec's core keeps its
/// output buffer, at most one packet, between encodes
/// ([`Connection::release_idle_memory`] gives it back). Decrypted packets
/// live in `Framed`'s buffer, which is not wiped when freed; the
/// [`Packetizer`](super::Packetizer) wipes its own. Compression is not
/// supported here (an inflated payload cannot live in the read buffer):
/// use the Packetizer.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), ssh_packetizer::Error> {
/// use futures_util::{SinkExt, StreamExt};
/// use ssh_packetizer::tokio::PacketCodec;
/// use ssh_packetizer::Config;
/// use tokio_util::codec::Framed;
///
/// let (a, b) = tokio::io::duplex(64 * 1024);
/// let mut client = Framed::new(a, PacketCodec::new(Config::client()));
/// let mut server = Framed::new(b, PacketCodec::new(Config::server()));
/// client.send(&b"\x14 a KEXINIT"[..]).await?;
/// let kexinit = server.next().await.unwrap()?;
/// assert_eq!((kexinit.msg_type(), kexinit.seqno()), (20, 0));
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct PacketCodec {
    core: Connection,
    /// How much of `Framed`'s read buffer the core has been told of, so
    /// fresh bytes count as traffic once.
    accounted: usize,
}

impl PacketCodec {
    /// A codec with `config`, in the clear mode, sequence numbers 0 (the
    /// identification lines are exchanged before: see
    /// [`Packetizer::into_framed`](super::Packetizer::into_framed)).
    pub fn new(config: Config) -> PacketCodec {
        PacketCodec::from_connection(Connection::new(config, now()))
    }

    /// A codec over a connection core as it stands (keys, sequence
    /// numbers, settings); its own input must hold nothing.
    pub fn from_connection(core: Connection) -> PacketCodec {
        PacketCodec { core, accounted: 0 }
    }

    /// The connection core, for inspection, as of the last call.
    pub fn connection(&self) -> &Connection {
        &self.core
    }

    /// The connection core, its timers brought up to tokio's clock first:
    /// rekey requests and events ([`Connection::poll_event`],
    /// [`Connection::should_start_kex`]), strict kex, delayed compression,
    /// the handshake deadline.
    pub fn connection_mut(&mut self) -> &mut Connection {
        self.core.handle_timeout(now());
        &mut self.core
    }

    /// Installs the inbound keys: right after the peer's NEWKEYS came out
    /// of the stream, before polling it again.
    pub fn set_inbound_keys(&mut self, keys: Keys) -> Result<(), Error> {
        self.core.set_inbound_keys(keys, now())
    }

    /// Moves what the core sealed into `Framed`'s write buffer.
    fn move_output(&mut self, dst: &mut BytesMut) {
        let out = self.core.pending_output();
        dst.extend_from_slice(out);
        let n = out.len();
        self.core.output_written(n, now());
    }

    fn encode_payload(&mut self, payload: &[u8], dst: &mut BytesMut) -> Result<(), Error> {
        self.core.send_message(payload)?;
        self.move_output(dst);
        Ok(())
    }
}

impl Decoder for PacketCodec {
    type Item = OwnedPacket;
    type Error = Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<OwnedPacket>, Error> {
        let fresh = src.len().saturating_sub(self.accounted);
        self.core.received(fresh, now());
        self.accounted = src.len();
        if let Err(e) = self.core.check() {
            // A failed connection reads nothing more: what `Framed` read
            // meanwhile is dropped, so polling on cannot grow its buffer.
            discard(src);
            self.accounted = 0;
            return Err(e);
        }
        if src.is_empty() {
            return Ok(None);
        }
        let opened = match self.core.open_in_place(&mut src[..]) {
            Ok(opened) => opened,
            Err(e) => {
                if self.core.is_closed() {
                    discard(src);
                    self.accounted = 0;
                }
                return Err(e);
            }
        };
        match opened {
            Frame::Packet {
                payload,
                wire_len,
                seqno,
            } => {
                let wire = src.split_to(wire_len).freeze();
                self.accounted -= wire_len;
                Ok(Some(OwnedPacket {
                    wire,
                    payload,
                    seqno,
                }))
            }
            Frame::NeedMore(n) => {
                src.reserve(n);
                Ok(None)
            }
            // Nothing until the keys are in; `src` keeps the bytes, but no
            // more than the core would hold: `Framed` reads on while
            // `decode` says nothing.
            // Past the bound the connection fails: a caller that polls on
            // would let the peer grow `Framed`'s buffer without limit.
            _ if src.len() > self.core.input_limit() => {
                let e = self.core.fail_with(Error::InputOverflow {
                    buffered: src.len(),
                    limit: self.core.input_limit(),
                });
                discard(src);
                self.accounted = 0;
                Err(e)
            }
            _ => Ok(None),
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<OwnedPacket>, Error> {
        match self.decode(src)? {
            Some(packet) => Ok(Some(packet)),
            None if src.is_empty() && !self.core.opener_core().mid_packet() => Ok(None),
            None => Err(self.core.recv_eof_in_place(src.len())),
        }
    }
}

/// Wipes and empties `Framed`'s read buffer once the connection failed:
/// nothing in it will be read, and its capacity is reused by later reads
/// rather than grown.
fn discard(src: &mut BytesMut) {
    use zeroize::Zeroize;
    src.as_mut().zeroize();
    src.clear();
}

impl Encoder<&[u8]> for PacketCodec {
    type Error = Error;

    fn encode(&mut self, payload: &[u8], dst: &mut BytesMut) -> Result<(), Error> {
        self.encode_payload(payload, dst)
    }
}

impl Encoder<Vec<u8>> for PacketCodec {
    type Error = Error;

    fn encode(&mut self, payload: Vec<u8>, dst: &mut BytesMut) -> Result<(), Error> {
        self.encode_payload(&payload, dst)
    }
}

impl Encoder<Bytes> for PacketCodec {
    type Error = Error;

    fn encode(&mut self, payload: Bytes, dst: &mut BytesMut) -> Result<(), Error> {
        self.encode_payload(&payload, dst)
    }
}

/// Sending [`Keys`] sends NEWKEYS under the current keys and switches the
/// outbound keys to these, in one step; messages held during our exchange
/// follow under the new keys.
impl Encoder<Keys> for PacketCodec {
    type Error = Error;

    fn encode(&mut self, keys: Keys, dst: &mut BytesMut) -> Result<(), Error> {
        let result = self.core.send_newkeys(keys, now());
        // What was sealed goes out even if a held message failed after.
        self.move_output(dst);
        result.map(|_| ())
    }
}
