//! The I/O calls the Packetizer makes: every read offers at least 64 KiB and
//! every whole packet in it is parsed before the next read; a send is one
//! write, a batch is one write. Counted with a stream wrapper.

mod common;

use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex};

use common::keys_for;
use ssh_packetizer::pipe::pipe;
use ssh_packetizer::{CipherAlgorithm, MacAlgorithm, Packetizer};

#[derive(Debug, Default)]
struct Calls {
    reads: usize,
    smallest_read_offer: usize,
    writes: usize,
}

struct Counted<S> {
    inner: S,
    calls: Arc<Mutex<Calls>>,
}

impl<S: Read> Read for Counted<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut c = self.calls.lock().unwrap();
        c.reads += 1;
        c.smallest_read_offer = if c.reads == 1 {
            buf.len()
        } else {
            c.smallest_read_offer.min(buf.len())
        };
        drop(c);
        self.inner.read(buf)
    }
}

impl<S: Write> Write for Counted<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.calls.lock().unwrap().writes += 1;
        self.inner.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

type Side = Packetizer<Counted<ssh_packetizer::pipe::PipeEnd>>;

fn counted_pair() -> (Side, Side, Arc<Mutex<Calls>>, Arc<Mutex<Calls>>) {
    let (a, b) = pipe();
    let (ca, cb) = (
        Arc::new(Mutex::new(Calls::default())),
        Arc::new(Mutex::new(Calls::default())),
    );
    let mut tx = Packetizer::new(Counted {
        inner: a,
        calls: ca.clone(),
    });
    let mut rx = Packetizer::new(Counted {
        inner: b,
        calls: cb.clone(),
    });
    let (c, m) = (CipherAlgorithm::Aes128Ctr, MacAlgorithm::HmacSha256Etm);
    tx.send_newkeys(keys_for(c, m, 1)).unwrap();
    assert_eq!(rx.read_message().unwrap().msg_type(), 21);
    rx.set_inbound_cipher(keys_for(c, m, 1)).unwrap();
    // Count from here: the key switch's own write and read are setup.
    *ca.lock().unwrap() = Calls::default();
    *cb.lock().unwrap() = Calls::default();
    (tx, rx, ca, cb)
}

#[test]
fn one_write_per_packet_and_few_large_reads() {
    for payload_len in [64usize, 1024, 32 * 1024] {
        let (mut tx, mut rx, sent, received) = counted_pair();
        let payload = vec![94u8; payload_len];
        // The pipe holds 4 MiB, so 1,000 packets of 32 KiB go in two rounds.
        let rounds = if payload_len > 4096 { 8 } else { 1 };
        for _ in 0..rounds {
            for _ in 0..1000 / rounds {
                tx.send_message(&payload).unwrap();
            }
            for _ in 0..1000 / rounds {
                assert_eq!(rx.read_message().unwrap().payload().len(), payload_len);
            }
        }
        let (s, r) = (sent.lock().unwrap(), received.lock().unwrap());
        assert_eq!(s.writes, 1000, "one write per packet");
        assert!(r.smallest_read_offer >= 64 * 1024, "{r:?}");
        // Reads: the wire volume in 64 KiB pieces, plus one per round where
        // the pipe ran dry mid-packet.
        let wire = 1000 * (payload_len + 60);
        assert!(
            r.reads <= wire / (64 * 1024) + 2 * rounds + 2,
            "{payload_len}: {r:?}"
        );
        eprintln!(
            "{payload_len:>6} B payloads, per 1,000 packets: {} writes, {} reads (each offering >= {} bytes)",
            s.writes, r.reads, r.smallest_read_offer
        );
    }
}

#[test]
fn a_batch_is_one_write() {
    let (mut tx, mut rx, sent, received) = counted_pair();
    for _ in 0..10 {
        for _ in 0..100 {
            tx.queue_message(&[94u8; 64]).unwrap();
        }
        tx.flush().unwrap();
    }
    for _ in 0..1000 {
        rx.read_message().unwrap();
    }
    let (s, r) = (sent.lock().unwrap(), received.lock().unwrap());
    assert_eq!(s.writes, 10, "one write per batch of 100");
    assert!(r.reads <= 3, "{r:?}");
    eprintln!(
        "64 B payloads in batches of 100, per 1,000 packets: {} writes, {} reads",
        s.writes, r.reads
    );
}
