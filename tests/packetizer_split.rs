//! A split Packetizer: reader and writer halves on two threads.

mod common;

use std::net::{TcpListener, TcpStream};

use std::thread;
use std::time::Duration;

use common::{clear_stream, keys_for, payload, Recorded, Scripted, Step};
use ssh_packetizer::pipe::pipe;
use ssh_packetizer::Duplex;
use ssh_packetizer::{
    CipherAlgorithm as C, Config, Connection, Error, InputBuffer, MacAlgorithm as M, Opened,
    Opener, PacketReader, PacketWriter, Packetizer, RekeyLimits,
};

const N: usize = 2000;

#[test]
fn full_duplex_on_two_threads_over_tcp() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (c, m) = (C::ChaCha20Poly1305, M::None);
    let keyed = move |p: &mut Packetizer<TcpStream>, out: u8, inn: u8| {
        p.send_newkeys(keys_for(c, m, out)).unwrap();
        assert_eq!(p.read_message().unwrap().msg_type(), 21);
        p.set_inbound_cipher(keys_for(c, m, inn)).unwrap();
    };
    let server = thread::spawn(move || {
        let mut p = Packetizer::tcp(listener.accept().unwrap().0).unwrap();
        keyed(&mut p, 2, 1);
        let (mut reader, writer) = p.split().unwrap();
        // Send and receive at the same time, from two threads.
        let sender = thread::spawn(move || {
            for i in 0..N {
                let mut msg = payload(i % 5000 + 1, i as u64 + 7);
                msg[0] = 94;
                writer.send_message(&msg).unwrap();
            }
            writer
        });
        for i in 0..N {
            let mut msg = payload(i % 3000 + 1, i as u64);
            msg[0] = 94;
            assert_eq!(reader.read_message().unwrap().payload(), &msg[..]);
        }
        sender.join().unwrap();
    });
    let mut p = Packetizer::tcp(TcpStream::connect(addr).unwrap()).unwrap();
    keyed(&mut p, 1, 2);
    let (mut reader, writer) = p.split().unwrap();
    let sender = thread::spawn(move || {
        for i in 0..N {
            let mut msg = payload(i % 3000 + 1, i as u64);
            msg[0] = 94;
            writer.send_message(&msg).unwrap();
        }
    });
    for i in 0..N {
        let mut msg = payload(i % 5000 + 1, i as u64 + 7);
        msg[0] = 94;
        let m = reader.read_message().unwrap();
        // The server's NEWKEYS took sequence number 0.
        assert_eq!((m.payload(), m.seqno()), (&msg[..], i as u32 + 1));
    }
    sender.join().unwrap();
    server.join().unwrap();
}

#[test]
fn a_reader_blocked_forever_does_not_stop_the_writer() {
    let (a, b) = pipe();
    let (mut reader, writer) = Packetizer::new(a).split().unwrap();
    // No read timeout: this thread blocks in read until the peer writes.
    let blocked = thread::spawn(move || reader.read_message().map(|m| m.payload().to_vec()));
    thread::sleep(Duration::from_millis(20));
    for i in 0..100u8 {
        writer.send_message(&[94, i]).unwrap();
    }
    let mut peer = Packetizer::new(b);
    for i in 0..100u8 {
        assert_eq!(peer.read_message().unwrap().payload(), [94, i]);
    }
    peer.send_message(&[94, 255]).unwrap();
    assert_eq!(blocked.join().unwrap().unwrap(), [94, 255]);
}

#[test]
fn a_broken_pipe_on_the_writer_closes_the_reader_too() {
    let (a, b) = pipe();
    let (mut reader, writer) = Packetizer::new(a).split().unwrap();
    drop(b);
    let err = writer.send_message(&[94]).unwrap_err();
    assert_eq!(err.io_kind(), Some(std::io::ErrorKind::BrokenPipe));
    assert!(reader.connection().with(|c| c.is_closed()));
    // The reader names the writer's broken pipe as the cause.
    let later = reader.read_message().map(|_| ()).unwrap_err();
    assert!(matches!(later, Error::Failed(_)), "{later:?}");
    assert_eq!(later.io_kind(), Some(std::io::ErrorKind::BrokenPipe));
}

/// A client whose every packet spends its budget.
fn one_byte_budget() -> Config {
    Config::client().rekey_limits(RekeyLimits {
        max_bytes: Some(1),
        ..RekeyLimits::default()
    })
}

fn should_start_kex<T>(half: &T) -> bool
where
    T: HalfCore,
{
    half.core(|c| c.should_start_kex())
}

/// Both halves reach the core the same way.
trait HalfCore {
    fn core<U>(&self, f: impl FnOnce(&mut Connection) -> U) -> U;
}

impl<R: std::io::Read> HalfCore for PacketReader<R> {
    fn core<U>(&self, f: impl FnOnce(&mut Connection) -> U) -> U {
        self.connection().with(f)
    }
}

impl<W: std::io::Write + Send> HalfCore for PacketWriter<W> {
    fn core<U>(&self, f: impl FnOnce(&mut Connection) -> U) -> U {
        self.connection().with(f)
    }
}

#[test]
fn should_start_kex_is_false_once_a_kexinit_went_either_way() {
    let (a, b) = pipe();
    let (mut ours, mut peer) = (Packetizer::new(a), Packetizer::new(b));
    let (c, m) = (C::Aes128Gcm, M::None);
    ours.send_newkeys(keys_for(c, m, 1)).unwrap();
    peer.send_newkeys(keys_for(c, m, 2)).unwrap();
    assert_eq!(peer.read_message().unwrap().msg_type(), 21);
    peer.set_inbound_cipher(keys_for(c, m, 1)).unwrap();
    assert_eq!(ours.read_message().unwrap().msg_type(), 21);
    ours.set_inbound_cipher(keys_for(c, m, 2)).unwrap();
    let (mut reader, writer) = ours.split().unwrap();
    assert!(!should_start_kex(&writer));

    // The peer starts a rekey: once its KEXINIT is read, a rekey is wanted
    // but must be answered, not started again.
    let kexinit = [20; 40];
    peer.send_message(&kexinit).unwrap();
    assert_eq!(reader.read_message().unwrap().payload(), kexinit);
    assert!(writer.connection().need_rekey() && reader.connection().need_rekey());
    assert!(!should_start_kex(&writer) && !should_start_kex(&reader));

    // Our own spent budget, in a fresh pair: wanted and to be started
    // until our KEXINIT goes out.
    let (a, _b) = pipe();
    let mut p = Packetizer::with_config(a, one_byte_budget());
    p.send_newkeys(keys_for(c, m, 1)).unwrap();
    p.set_inbound_cipher(keys_for(c, m, 2)).unwrap();
    let (reader, writer) = p.split().unwrap();
    writer.send_message(&[94]).unwrap();
    assert!(should_start_kex(&writer) && should_start_kex(&reader));
    writer.send_message(&kexinit).unwrap();
    assert!(writer.connection().need_rekey() && !should_start_kex(&writer));
}

#[test]
fn rekey_signalling_is_shared_between_the_halves() {
    let (a, _b) = pipe();
    let mut p = Packetizer::with_config(a, one_byte_budget());
    p.send_newkeys(keys_for(C::Aes128Gcm, M::None, 1)).unwrap();
    p.set_inbound_cipher(keys_for(C::Aes128Gcm, M::None, 2))
        .unwrap();
    let (mut reader, writer) = p.split().unwrap();
    assert!(!reader.connection().need_rekey());
    writer.send_message(&[94]).unwrap();
    assert!(
        reader.connection().need_rekey(),
        "the writer's spent budget shows on the reader"
    );
    writer
        .send_newkeys(keys_for(C::Aes128Gcm, M::None, 3))
        .unwrap();
    assert!(writer.connection().need_rekey());
    reader
        .set_inbound_cipher(keys_for(C::Aes128Gcm, M::None, 4))
        .unwrap();
    assert!(!writer.connection().need_rekey() && !reader.connection().need_rekey());
}

#[test]
fn the_readers_keepalive_sends_through_the_writer_half() {
    let script = Scripted::new(vec![
        Step::Tick(Duration::from_secs(20)),
        Step::Tick(Duration::from_secs(20)),
        Step::Data(clear_stream(&[&[94]])),
    ]);
    let clock = script.clock.clone();
    let out = Recorded::default();
    let stream = Duplex {
        reader: script,
        writer: out.clone(),
    };
    let mut p = Packetizer::with_clock(stream, Config::client(), clock);
    // Keys switched both ways (to the clear mode): keepalives may run.
    p.send_newkeys(ssh_packetizer::Keys::clear()).unwrap();
    p.set_inbound_cipher(ssh_packetizer::Keys::clear()).unwrap();
    let (mut reader, writer) = p.split().unwrap();
    reader.set_keepalive(Some(Duration::from_secs(15)), |w| {
        w.send_message(&[2, 0, 0, 0, 0]).map(|_| ())
    });
    assert_eq!(reader.read_message().unwrap().msg_type(), 94);
    let (mut o, mut input) = (Opener::new(), InputBuffer::new());
    o.feed(&mut input, &out.0.lock().unwrap());
    assert!(matches!(o.next_packet(&mut input).unwrap(), Opened::Packet(p) if p.msg_type() == 21));
    o.set_keys(ssh_packetizer::Keys::clear()).unwrap();
    for seqno in 1..3 {
        assert!(
            matches!(o.next_packet(&mut input).unwrap(), Opened::Packet(p) if p.msg_type() == 2 && p.seqno() == seqno)
        );
    }
    assert_eq!(writer.connection().with(|c| c.seqno_out()), 3);
}

#[test]
fn buffered_bytes_and_queued_packets_survive_the_split() {
    let (a, b) = pipe();
    let mut peer = Packetizer::new(b);
    peer.write_all(b"SSH-2.0-peer\r\n").unwrap();
    peer.send_message(&[20, 1]).unwrap();
    let mut p = Packetizer::new(a);
    assert_eq!(p.read_identification().unwrap().line, b"SSH-2.0-peer");
    p.queue_message(&[20, 2]).unwrap();
    let (mut reader, writer) = p.split().unwrap();
    assert_eq!(reader.read_message().unwrap().payload(), [20, 1]);
    writer.flush().unwrap();
    assert_eq!(peer.read_message().unwrap().payload(), [20, 2]);
}

#[test]
fn the_writer_half_sends_the_identification_and_refuses_raw_bytes_later() {
    let (a, b) = pipe();
    let (_reader, writer) = Packetizer::new(a).split().unwrap();
    let mut peer = Packetizer::new(b);
    writer.send_identification("SSH-2.0-half").unwrap();
    assert_eq!(peer.read_identification().unwrap().as_str(), "SSH-2.0-half");
    writer.send_message(&[20]).unwrap();
    assert!(matches!(
        writer.write_all(b"x"),
        Err(Error::InvalidCall { .. })
    ));
    assert_eq!(peer.read_message().unwrap().msg_type(), 20);
}

#[test]
fn try_flush_never_waits_behind_a_writer_stuck_on_a_full_socket() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let ours = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let theirs = listener.accept().unwrap().0;
    let (_reader, writer) = Packetizer::tcp(ours).unwrap().split().unwrap();
    let stuck = writer.clone();
    // 64 MiB to a peer that reads nothing yet: far more than the socket
    // buffers hold, so this writer blocks with the stream's lock held.
    let big = thread::spawn(move || {
        let mut msg = vec![0u8; 32 * 1024];
        msg[0] = 94;
        for _ in 0..2048 {
            stuck.send_message(&msg).unwrap();
        }
    });
    thread::sleep(Duration::from_millis(300));
    assert!(!big.is_finished(), "the big writer should be blocked");
    // Another clone seals a message and flushes without waiting.
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let quick = writer.clone();
    thread::spawn(move || {
        quick.queue_message(&[2, 0, 0, 0, 1, 0xaa]).unwrap();
        done_tx.send(quick.try_flush()).unwrap();
    });
    let flushed = done_rx.recv_timeout(Duration::from_secs(5));
    assert!(
        matches!(flushed, Ok(Ok(()))),
        "try_flush waited: {flushed:?}"
    );
    // The busy writer writes it in its turn (packets go out in the order
    // they were sealed): nothing is lost.
    let mut peer = Packetizer::tcp(theirs).unwrap();
    let (mut big_ones, mut markers) = (0, 0);
    while big_ones < 2048 || markers == 0 {
        let packet = peer.read_message().unwrap();
        match packet.msg_type() {
            94 => big_ones += 1,
            2 => {
                assert_eq!(packet.payload(), [2, 0, 0, 0, 1, 0xaa]);
                assert!(big_ones < 2048, "sealed while the big writer was busy");
                markers += 1;
            }
            other => panic!("message {other}"),
        }
    }
    assert_eq!((big_ones, markers), (2048, 1));
    big.join().unwrap();
}
