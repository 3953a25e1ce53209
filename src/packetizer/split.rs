//! A Packetizer split into a reading half and a writing half for two threads.
//!
//! Both halves share the closed flag, the rekey signalling, the traffic clock
//! and the handshake deadline. The writer is a cloneable handle behind a
//! mutex; the reader keeps a clone to send keepalives with and takes that
//! lock only to send, never while it waits in `read`, so a blocked reader
//! never holds up the writer.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::read::{Endpoint, Keepalive, ReadSide};
use super::shared::Shared;
use super::write::WriteSide;
use super::{Packetizer, SendMessage};
use crate::banner::Identification;
use crate::codec::Packet;
use crate::error::Error;
use crate::keys::Keys;
use crate::pipe::{PipeEnd, PipeReader, PipeWriter};
use crate::rekey::RekeyLimits;

/// A stream that can be taken apart into a reading and a writing half.
pub trait SplitStream: Read + Write + Sized {
    /// The reading half.
    type Reader: Read + Send + 'static;
    /// The writing half.
    type Writer: Write + Send + 'static;

    /// The two halves.
    fn split_stream(self) -> io::Result<(Self::Reader, Self::Writer)>;
}

impl SplitStream for TcpStream {
    type Reader = TcpStream;
    type Writer = TcpStream;

    fn split_stream(self) -> io::Result<(TcpStream, TcpStream)> {
        Ok((self.try_clone()?, self))
    }
}

impl SplitStream for PipeEnd {
    type Reader = PipeReader;
    type Writer = PipeWriter;

    fn split_stream(self) -> io::Result<(PipeReader, PipeWriter)> {
        Ok(self.split())
    }
}

/// Any reader and writer used as one stream (a child process's stdout and
/// stdin, two pipes), so a Packetizer can run over them and split them again.
#[derive(Debug)]
pub struct Duplex<R, W> {
    /// Where bytes are read from.
    pub reader: R,
    /// Where bytes are written to.
    pub writer: W,
}

impl<R: Read, W> Read for Duplex<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.reader.read(buf)
    }
}

impl<R, W: Write> Write for Duplex<R, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writer.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.writer.flush()
    }
}

impl<R: Read + Send + 'static, W: Write + Send + 'static> SplitStream for Duplex<R, W> {
    type Reader = R;
    type Writer = W;

    fn split_stream(self) -> io::Result<(R, W)> {
        Ok((self.reader, self.writer))
    }
}

/// The two halves [`Packetizer::split`] returns.
pub type Halves<S> = (
    PacketReader<<S as SplitStream>::Reader>,
    PacketWriter<<S as SplitStream>::Writer>,
);

impl<S: SplitStream> Packetizer<S> {
    /// Splits into a reader and a writer for two threads. Buffered inbound
    /// bytes, queued outbound packets, keys, sequence numbers, limits and the
    /// keepalive carry over.
    pub fn split(self) -> Result<Halves<S>, Error> {
        let Packetizer {
            io,
            read,
            write,
            shared,
        } = self;
        let (reader_io, writer_io) = io.split_stream().map_err(Error::Io)?;
        let writer = PacketWriter {
            inner: Arc::new(Mutex::new(WriterInner {
                io: writer_io,
                write,
            })),
            shared: shared.clone(),
        };
        let reader = PacketReader {
            io: reader_io,
            read,
            sink: Box::new(writer.clone()),
            shared,
        };
        Ok((reader, writer))
    }
}

struct WriterInner<W> {
    io: W,
    write: WriteSide,
}

/// The writing half of a split Packetizer. Clones share one stream and one
/// Sealer, so several threads may send; each message goes out whole.
pub struct PacketWriter<W> {
    inner: Arc<Mutex<WriterInner<W>>>,
    shared: Arc<Shared>,
}

impl<W> Clone for PacketWriter<W> {
    fn clone(&self) -> Self {
        PacketWriter {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<W: Write> PacketWriter<W> {
    fn lock(&self) -> MutexGuard<'_, WriterInner<W>> {
        // A panic while holding the lock may have left half a packet queued;
        // the connection is unusable then, so close it and carry on to
        // report `Closed`.
        self.inner.lock().unwrap_or_else(|e| {
            self.shared.close();
            e.into_inner()
        })
    }

    /// As [`Packetizer::send_message`].
    pub fn send_message(&self, payload: &[u8]) -> Result<u32, Error> {
        let mut inner = self.lock();
        let WriterInner { io, write } = &mut *inner;
        let result = write.send(io, &self.shared, payload);
        self.shared.settle(result)
    }

    /// As [`Packetizer::queue_message`].
    pub fn queue_message(&self, payload: &[u8]) -> Result<u32, Error> {
        let result = self.lock().write.queue(&self.shared, payload);
        self.shared.settle(result)
    }

    /// As [`Packetizer::flush`].
    pub fn flush(&self) -> Result<(), Error> {
        let mut inner = self.lock();
        let WriterInner { io, write } = &mut *inner;
        let result = write.flush(io, &self.shared);
        self.shared.settle(result)
    }

    /// As [`Packetizer::set_outbound_cipher`].
    pub fn set_outbound_cipher(&self, keys: Keys) -> Result<(), Error> {
        self.lock().write.switch_keys(&self.shared, keys)
    }

    /// Starts `zlib@openssh.com` compression outbound.
    pub fn start_delayed_compression(&self) {
        self.lock().write.sealer.start_delayed_compression();
    }

    /// As [`Packetizer::reset_seqno_out`].
    pub fn reset_seqno_out(&self) {
        self.lock().write.sealer.reset_seqno();
    }

    /// Lets the outbound sequence number wrap from now on.
    pub fn mark_initial_kex_done(&self) {
        self.lock().write.sealer.mark_initial_kex_done();
    }

    /// The next outbound sequence number.
    pub fn seqno_out(&self) -> u32 {
        self.lock().write.sealer.seqno()
    }

    /// Sets the outbound byte limit and the shared key age limit.
    pub fn set_rekey_limits(&self, limits: RekeyLimits) {
        self.lock().write.sealer.set_rekey_limits(limits);
        self.shared.set_max_key_age(limits.max_time);
    }

    /// As [`Packetizer::need_rekey`], for both halves.
    pub fn need_rekey(&self) -> bool {
        self.shared.rekey_wanted()
    }

    /// Closes both halves.
    pub fn close(&self) {
        self.shared.close();
    }

    /// Whether the connection is closed.
    pub fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }
}

impl<W: Write> SendMessage for PacketWriter<W> {
    fn send_message(&mut self, payload: &[u8]) -> Result<u32, Error> {
        PacketWriter::send_message(self, payload)
    }
}

/// The reading half of a split Packetizer.
pub struct PacketReader<R> {
    io: R,
    read: ReadSide,
    /// The writer, for keepalives.
    sink: Box<dyn SendMessage + Send>,
    shared: Arc<Shared>,
}

struct Half<'a, R> {
    io: &'a mut R,
    sink: &'a mut (dyn SendMessage + Send),
}

impl<R: Read> Endpoint for Half<'_, R> {
    fn read_bytes(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.io.read(buf)
    }

    fn sink(&mut self) -> &mut dyn SendMessage {
        self.sink
    }
}

impl<R: Read> PacketReader<R> {
    /// As [`Packetizer::read_message`].
    pub fn read_message(&mut self) -> Result<Packet<'_>, Error> {
        let mut ep = Half {
            io: &mut self.io,
            sink: &mut *self.sink,
        };
        let result = self.read.read_message(&mut ep, &self.shared);
        self.shared.settle(result)
    }

    /// As [`Packetizer::read_all`].
    pub fn read_all(&mut self, n: usize, check_rekey: bool) -> Result<Vec<u8>, Error> {
        let mut ep = Half {
            io: &mut self.io,
            sink: &mut *self.sink,
        };
        let result = self.read.read_all(&mut ep, &self.shared, n, check_rekey);
        self.shared.settle(result)
    }

    /// As [`Packetizer::read_identification`].
    pub fn read_identification(&mut self) -> Result<Identification, Error> {
        let mut ep = Half {
            io: &mut self.io,
            sink: &mut *self.sink,
        };
        let result = self.read.read_identification(&mut ep, &self.shared);
        self.shared.settle(result)
    }

    /// As [`Packetizer::set_inbound_cipher`].
    pub fn set_inbound_cipher(&mut self, keys: Keys) -> Result<(), Error> {
        self.read.switch_keys(&self.shared, keys)
    }

    /// Starts `zlib@openssh.com` decompression inbound.
    pub fn start_delayed_compression(&mut self) {
        self.read.opener.start_delayed_compression();
    }

    /// As [`Packetizer::reset_seqno_in`].
    pub fn reset_seqno_in(&mut self) {
        self.read.opener.reset_seqno();
    }

    /// Lets the inbound sequence number wrap from now on.
    pub fn mark_initial_kex_done(&mut self) {
        self.read.opener.mark_initial_kex_done();
    }

    /// The next inbound sequence number.
    pub fn seqno_in(&self) -> u32 {
        self.read.opener.seqno()
    }

    /// Sets the inbound byte limit, the grace and the shared key age limit.
    pub fn set_rekey_limits(&mut self, limits: RekeyLimits) {
        self.read.opener.set_rekey_limits(limits);
        self.shared.set_max_key_age(limits.max_time);
    }

    /// As [`Packetizer::set_keepalive`]; the callback sends through the
    /// writer half.
    pub fn set_keepalive<F>(&mut self, interval: Option<Duration>, callback: F)
    where
        F: FnMut(&mut dyn SendMessage) -> Result<(), Error> + Send + 'static,
    {
        self.read.keepalive = interval.map(|interval| Keepalive {
            interval,
            callback: Box::new(callback),
        });
        self.shared.touch();
    }

    /// As [`Packetizer::start_handshake`].
    pub fn start_handshake(&self, timeout: Duration) {
        self.shared.start_handshake(timeout);
    }

    /// As [`Packetizer::handshake_timed_out`].
    pub fn handshake_timed_out(&self) -> bool {
        self.shared.handshake_timed_out()
    }

    /// As [`Packetizer::complete_handshake`].
    pub fn complete_handshake(&self) {
        self.shared.complete_handshake();
    }

    /// As [`Packetizer::need_rekey`], for both halves.
    pub fn need_rekey(&self) -> bool {
        self.shared.rekey_wanted()
    }

    /// Closes both halves. A reader blocked in `read` notices at its next
    /// read timeout; give the stream one.
    pub fn close(&self) {
        self.shared.close();
    }

    /// Whether the connection is closed.
    pub fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }
}
