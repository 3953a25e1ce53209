//! A `tokio_util::codec` Decoder and Encoder over the connection core, for
//! `Framed` users.

use bytes::{Buf, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::timer::now;
use crate::codec::{InputBuffer, Opened};
use crate::connection::{Config, Connection};
use crate::error::Error;
use crate::keys::Keys;

/// A good `Framed::set_backpressure_boundary` for bulk transfer in 32 KiB
/// packets: `Framed` writes its buffer out once it holds this much, so two
/// packets go out per write rather than one (the default boundary, 8 KiB,
/// flushes after every 32 KiB packet), and at most about this much plus one
/// packet waits in memory per connection.
pub const BACKPRESSURE_BOUNDARY: usize = 64 * 1024;

/// One packet the codec decoded: its payload, copied out of the codec's
/// input buffer (which is wiped), and its sequence number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnedPacket {
    payload: Bytes,
    seqno: u32,
}

impl OwnedPacket {
    /// The payload, message type byte first.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// The message type (the payload's first byte).
    pub fn msg_type(&self) -> u8 {
        self.payload[0]
    }

    /// The inbound sequence number it carried.
    pub fn seqno(&self) -> u32 {
        self.seqno
    }

    /// The payload as shared bytes (no copy).
    pub fn into_payload(self) -> Bytes {
        self.payload
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
/// the inbound keys, with one input bound of bytes waiting in `Framed`'s
/// buffer, the codec fails the connection with [`Error::InputOverflow`]
/// rather than let that buffer grow. Once the connection failed, what `Framed` read is wiped
/// and dropped at each poll. A fatal error caused by the peer's bytes
/// queues a DISCONNECT in the core, which the codec cannot write (a decoder
/// has no write buffer): `connection().pending_output()` holds it for a
/// caller who wants to send it on the raw stream.
///
/// # Memory
/// `Framed` keeps its own read buffer (8 KiB to start) and write buffer
/// (up to the back-pressure boundary plus one packet, see
/// [`BACKPRESSURE_BOUNDARY`]); they hold only wire bytes. Each decode moves
/// what `Framed` read into the codec's [`InputBuffer`] (bounded, wiped as
/// it is given back), where packets are decrypted (and inflated, with
/// compression on); the payload is copied out into the item. The codec's
/// core keeps its output buffer, at most one packet, between encodes
/// ([`PacketCodec::release_idle_memory`] gives both back).
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
    /// The wire bytes moved out of `Framed`'s read buffer, where packets
    /// are opened.
    input: InputBuffer,
}

impl PacketCodec {
    /// A codec with `config`, in the clear mode, sequence numbers 0 (the
    /// identification lines are exchanged before: see
    /// [`Packetizer::into_framed`](super::Packetizer::into_framed)).
    pub fn new(config: Config) -> PacketCodec {
        PacketCodec::from_parts(Connection::new(config, now()), InputBuffer::new())
    }

    /// A codec over a connection core as it stands (keys, sequence
    /// numbers, settings) and the input it was reading from (the bytes
    /// after the identification line, or a packet half read).
    pub fn from_parts(core: Connection, input: InputBuffer) -> PacketCodec {
        PacketCodec { core, input }
    }

    /// The connection core, for inspection, as of the last call.
    pub fn connection(&self) -> &Connection {
        &self.core
    }

    /// The input the codec opens packets in, for inspection: what it holds
    /// beyond what `Framed`'s read buffer still has.
    pub fn input(&self) -> &InputBuffer {
        &self.input
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

    /// Gives back the codec's buffers that hold nothing (the input, the
    /// core's output and hold), wiped; returns the bytes given back.
    /// `Framed`'s own buffers are `Framed`'s.
    pub fn release_idle_memory(&mut self) -> usize {
        self.core.release_idle_memory(&mut self.input)
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

/// Wipes and empties `Framed`'s read buffer once the connection failed:
/// nothing in it will be read, and its capacity is reused by later reads
/// rather than grown.
fn discard(src: &mut BytesMut) {
    use zeroize::Zeroize;
    src.as_mut().zeroize();
    src.clear();
}

impl Decoder for PacketCodec {
    type Item = OwnedPacket;
    type Error = Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<OwnedPacket>, Error> {
        let now = now();
        if let Err(e) = self.core.check() {
            // A failed connection reads nothing more: what `Framed` read
            // meanwhile is dropped, so polling on cannot grow its buffer.
            discard(src);
            return Err(e);
        }
        loop {
            // As much as the input bound takes (all of it, normally); the
            // timers run either way.
            let fed = self.core.feed(&mut self.input, src, now);
            src.advance(fed);
            match self.core.poll_packet(&mut self.input) {
                Ok(Opened::Packet(packet)) => {
                    return Ok(Some(OwnedPacket {
                        payload: Bytes::copy_from_slice(packet.payload()),
                        seqno: packet.seqno(),
                    }))
                }
                // The input took some but not all: a packet more is in.
                Ok(Opened::NeedMore(_)) if fed > 0 && !src.is_empty() => continue,
                Ok(Opened::NeedMore(_)) => return Ok(None),
                // Nothing until the keys are in; `src` keeps the bytes,
                // but no more than the core would hold: `Framed` reads on
                // while `decode` says nothing, and a caller that polls on
                // would let the peer grow its buffer without limit.
                Ok(_) if src.len() > self.core.input_limit() => {
                    let e = Error::InputOverflow {
                        buffered: self.input.buffered() + src.len(),
                        limit: self.core.input_limit(),
                    };
                    discard(src);
                    return Err(self.core.fail_with(e));
                }
                Ok(_) => return Ok(None),
                Err(e) => {
                    if self.core.is_closed() {
                        discard(src);
                    }
                    return Err(e);
                }
            }
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<OwnedPacket>, Error> {
        match self.decode(src)? {
            Some(packet) => Ok(Some(packet)),
            None if src.is_empty()
                && self.input.buffered() == 0
                && !self.core.opener().is_mid_packet() =>
            {
                Ok(None)
            }
            None => Err(self.core.recv_eof(&self.input, None)),
        }
    }
}

impl Encoder<&[u8]> for PacketCodec {
    type Error = Error;

    fn encode(&mut self, payload: &[u8], dst: &mut BytesMut) -> Result<(), Error> {
        self.encode_payload(payload, dst)
    }
}

/// The payload given is the codec's once sealed: it is wiped before it is
/// dropped.
impl Encoder<Vec<u8>> for PacketCodec {
    type Error = Error;

    fn encode(&mut self, mut payload: Vec<u8>, dst: &mut BytesMut) -> Result<(), Error> {
        let result = self.encode_payload(&payload, dst);
        zeroize::Zeroize::zeroize(&mut payload);
        result
    }
}

/// The payload given is wiped before it is dropped when this was its last
/// handle; a `Bytes` shared with other handles stays theirs.
impl Encoder<Bytes> for PacketCodec {
    type Error = Error;

    fn encode(&mut self, payload: Bytes, dst: &mut BytesMut) -> Result<(), Error> {
        let result = self.encode_payload(&payload, dst);
        if let Ok(mut only) = payload.try_into_mut() {
            zeroize::Zeroize::zeroize(only.as_mut());
        }
        result
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
