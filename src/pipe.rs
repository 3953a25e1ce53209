//! An in-memory duplex byte pipe, for driving two Packetizers without sockets
//! in tests, fuzz harnesses and benchmarks.
//!
//! Each end reads what the other writes. It behaves like a socket where it
//! matters to a packet layer: reads block until bytes arrive (or a read
//! timeout passes, reported as `WouldBlock`), a read after the other end is
//! gone returns 0 (EOF), a write after the other end is gone fails with
//! `BrokenPipe`, and each direction holds a bounded number of bytes, so a
//! writer blocks while its peer does not read.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// Bytes one direction holds before writes block.
pub const DEFAULT_CAPACITY: usize = 4 * 1024 * 1024;

#[derive(Debug, Default)]
struct Flow {
    bytes: VecDeque<u8>,
    /// The writing end shut down or was dropped: readers see EOF once empty.
    write_closed: bool,
    /// The reading end was dropped: writes fail.
    read_closed: bool,
}

/// One direction: a bounded byte queue with a condition variable.
#[derive(Debug)]
struct Channel {
    flow: Mutex<Flow>,
    changed: Condvar,
    capacity: usize,
}

impl Channel {
    fn new(capacity: usize) -> Arc<Channel> {
        Arc::new(Channel {
            flow: Mutex::new(Flow::default()),
            changed: Condvar::new(),
            capacity: capacity.max(1),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Flow> {
        // A panic elsewhere while holding the lock leaves plain bytes behind,
        // nothing half-updated, so the state is still usable.
        self.flow.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn read(&self, buf: &mut [u8], timeout: Option<Duration>) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let mut flow = self.lock();
        while flow.bytes.is_empty() && !flow.write_closed {
            flow = match timeout {
                None => self.changed.wait(flow).unwrap_or_else(|e| e.into_inner()),
                Some(t) => {
                    let (flow, waited) = self
                        .changed
                        .wait_timeout(flow, t)
                        .unwrap_or_else(|e| e.into_inner());
                    if waited.timed_out() && flow.bytes.is_empty() && !flow.write_closed {
                        return Err(io::ErrorKind::WouldBlock.into());
                    }
                    flow
                }
            };
        }
        let n = buf.len().min(flow.bytes.len());
        // The queue is at most two contiguous runs: copy each whole.
        let (front, back) = flow.bytes.as_slices();
        let from_front = n.min(front.len());
        buf[..from_front].copy_from_slice(&front[..from_front]);
        buf[from_front..n].copy_from_slice(&back[..n - from_front]);
        flow.bytes.drain(..n);
        self.changed.notify_all();
        Ok(n)
    }

    fn write(&self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let mut flow = self.lock();
        loop {
            if flow.read_closed {
                return Err(io::ErrorKind::BrokenPipe.into());
            }
            if flow.write_closed {
                return Err(io::Error::new(
                    io::ErrorKind::NotConnected,
                    "this end's writing side was shut down",
                ));
            }
            let room = self.capacity - flow.bytes.len().min(self.capacity);
            if room > 0 {
                let n = room.min(buf.len());
                flow.bytes.extend(&buf[..n]);
                self.changed.notify_all();
                return Ok(n);
            }
            flow = self.changed.wait(flow).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn close_write(&self) {
        self.lock().write_closed = true;
        self.changed.notify_all();
    }

    fn close_read(&self) {
        let mut flow = self.lock();
        flow.read_closed = true;
        flow.bytes.clear();
        self.changed.notify_all();
    }
}

/// A pair of connected ends with the default capacity.
pub fn pipe() -> (PipeEnd, PipeEnd) {
    pipe_with_capacity(DEFAULT_CAPACITY)
}

/// A pair of connected ends, each direction holding up to `capacity` bytes.
pub fn pipe_with_capacity(capacity: usize) -> (PipeEnd, PipeEnd) {
    let a_to_b = Channel::new(capacity);
    let b_to_a = Channel::new(capacity);
    let a = PipeEnd {
        reader: PipeReader::new(b_to_a.clone()),
        writer: PipeWriter::new(a_to_b.clone()),
    };
    let b = PipeEnd {
        reader: PipeReader::new(a_to_b),
        writer: PipeWriter::new(b_to_a),
    };
    (a, b)
}

/// One end of a [`pipe`]: reads what the other end writes and the reverse.
/// Dropping it closes both directions, as closing a socket does.
#[derive(Debug)]
pub struct PipeEnd {
    reader: PipeReader,
    writer: PipeWriter,
}

impl PipeEnd {
    /// Makes reads give up after `timeout` with `WouldBlock`, like a socket's
    /// read timeout; `None` blocks until bytes or EOF arrive.
    pub fn set_read_timeout(&mut self, timeout: Option<Duration>) {
        self.reader.timeout = timeout;
    }

    /// Ends this end's writing direction: the peer reads EOF once it has read
    /// what was written, while this end can still read.
    pub fn shutdown_write(&mut self) {
        self.writer.channel.close_write();
    }

    /// Separates the reading and writing halves, for two threads.
    pub fn split(self) -> (PipeReader, PipeWriter) {
        (self.reader, self.writer)
    }
}

impl Read for PipeEnd {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.reader.read(buf)
    }
}

impl Write for PipeEnd {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writer.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The reading half of a [`PipeEnd`].
#[derive(Debug)]
pub struct PipeReader {
    channel: Arc<Channel>,
    timeout: Option<Duration>,
}

impl PipeReader {
    fn new(channel: Arc<Channel>) -> PipeReader {
        PipeReader {
            channel,
            timeout: None,
        }
    }

    /// As [`PipeEnd::set_read_timeout`].
    pub fn set_read_timeout(&mut self, timeout: Option<Duration>) {
        self.timeout = timeout;
    }
}

impl Read for PipeReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.channel.read(buf, self.timeout)
    }
}

impl Drop for PipeReader {
    fn drop(&mut self) {
        self.channel.close_read();
    }
}

/// The writing half of a [`PipeEnd`].
#[derive(Debug)]
pub struct PipeWriter {
    channel: Arc<Channel>,
}

impl PipeWriter {
    fn new(channel: Arc<Channel>) -> PipeWriter {
        PipeWriter { channel }
    }
}

impl Write for PipeWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.channel.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for PipeWriter {
    fn drop(&mut self) {
        self.channel.close_write();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_flow_both_ways_and_eof_follows_a_drop() {
        let (mut a, mut b) = pipe();
        a.write_all(b"ping").unwrap();
        b.write_all(b"pong").unwrap();
        let mut buf = [0u8; 4];
        b.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"ping");
        a.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"pong");
        a.write_all(b"last").unwrap();
        drop(a);
        b.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"last");
        assert_eq!(b.read(&mut buf).unwrap(), 0);
        assert_eq!(b.write(b"x").unwrap_err().kind(), io::ErrorKind::BrokenPipe);
    }

    #[test]
    fn a_read_timeout_is_would_block() {
        let (mut a, _b) = pipe();
        a.set_read_timeout(Some(Duration::from_millis(5)));
        let err = a.read(&mut [0u8; 1]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
    }

    #[test]
    fn a_full_direction_blocks_the_writer_until_read() {
        let (mut a, mut b) = pipe_with_capacity(8);
        let writer = std::thread::spawn(move || {
            a.write_all(&[7u8; 64]).unwrap();
            a
        });
        let mut got = vec![0u8; 64];
        b.read_exact(&mut got).unwrap();
        assert_eq!(got, [7u8; 64]);
        drop(writer.join().unwrap());
    }

    #[test]
    fn shutdown_write_leaves_reading_open() {
        let (mut a, mut b) = pipe();
        a.shutdown_write();
        assert_eq!(b.read(&mut [0u8; 4]).unwrap(), 0);
        b.write_all(b"ok").unwrap();
        let mut buf = [0u8; 2];
        a.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"ok");
    }
}
