//! Two Packetizers talking: over the in-memory pipe and over 127.0.0.1 TCP,
//! every suite, many messages with a key switch mid-stream.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;

use common::{keys_for, payload, supported_suites};
use ssh_packetizer::pipe::pipe;
use ssh_packetizer::{CipherAlgorithm, MacAlgorithm, Packetizer};

const NEWKEYS: u8 = 21;
const MESSAGES: usize = 1200;
const SWITCH_AT: usize = 300;

fn size_of(i: usize) -> usize {
    if i.is_multiple_of(97) {
        32 * 1024
    } else {
        (i * 7919) % 3000 + 1
    }
}

/// Echoes every message back; on NEWKEYS switches inbound keys, echoes
/// NEWKEYS, then switches outbound keys.
fn echo_server<S: Read + Write>(mut p: Packetizer<S>, suite: (CipherAlgorithm, MacAlgorithm)) {
    p.write_all(b"SSH-2.0-server_1.0\r\n").unwrap();
    let peer = p.read_identification().unwrap();
    assert_eq!(peer.as_str(), "SSH-2.0-client_1.0 test");
    loop {
        let msg = match p.read_message() {
            Ok(m) => m.payload().to_vec(),
            Err(ssh_packetizer::Error::Closed) => return,
            Err(e) => panic!("server: {e}"),
        };
        if msg[0] == NEWKEYS {
            p.set_inbound_cipher(keys_for(suite.0, suite.1, 1)).unwrap();
            p.send_newkeys(keys_for(suite.0, suite.1, 2)).unwrap();
        } else {
            p.send_message(&msg).unwrap();
        }
    }
}

fn client<S: Read + Write>(mut p: Packetizer<S>, suite: (CipherAlgorithm, MacAlgorithm)) {
    p.write_all(b"SSH-2.0-client_1.0 test\r\n").unwrap();
    let peer = p.read_identification().unwrap();
    assert_eq!(peer.software_version(), "server_1.0");
    for i in 0..MESSAGES {
        if i == SWITCH_AT {
            p.send_newkeys(keys_for(suite.0, suite.1, 1)).unwrap();
            let echo = p.read_message().unwrap();
            assert_eq!(echo.msg_type(), NEWKEYS);
            p.set_inbound_cipher(keys_for(suite.0, suite.1, 2)).unwrap();
        }
        let mut msg = payload(size_of(i), i as u64);
        msg[0] = 94;
        let seq = p.send_message(&msg).unwrap().seqno().unwrap();
        assert_eq!(seq as usize, i + usize::from(i >= SWITCH_AT));
        let echo = p.read_message().unwrap();
        assert_eq!(echo.payload(), &msg[..], "{suite:?} message {i}");
    }
    assert!(!p.need_rekey());
}

#[test]
fn every_suite_over_the_in_memory_pipe() {
    for suite in supported_suites() {
        let (a, b) = pipe();
        let server = thread::spawn(move || echo_server(Packetizer::new(b), suite));
        client(Packetizer::new(a), suite);
        server.join().unwrap();
    }
}

#[test]
fn every_suite_over_tcp() {
    for suite in supported_suites() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            echo_server(Packetizer::tcp(stream).unwrap(), suite);
        });
        client(
            Packetizer::tcp(TcpStream::connect(addr).unwrap()).unwrap(),
            suite,
        );
        server.join().unwrap();
    }
}

#[test]
fn a_batch_of_queued_messages_goes_out_in_one_flush() {
    let (a, b) = pipe();
    let mut sender = Packetizer::new(a);
    let mut receiver = Packetizer::new(b);
    for i in 0..50u8 {
        sender.queue_message(&[94, i]).unwrap();
    }
    let queued = sender.connection().pending_output().len();
    assert_eq!(queued, 50 * 16);
    sender.flush().unwrap();
    assert_eq!(sender.connection().pending_output().len(), 0);
    for i in 0..50u8 {
        let m = receiver.read_message().unwrap();
        assert_eq!((m.payload(), m.seqno()), (&[94, i][..], u32::from(i)));
    }
}

#[test]
fn after_the_peer_closes_the_second_send_fails_with_broken_pipe_or_reset() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut p = Packetizer::tcp(stream).unwrap();
        assert_eq!(p.read_message().unwrap().msg_type(), 94);
        // Dropping the Packetizer closes the socket.
    });
    let mut p = Packetizer::tcp(TcpStream::connect(addr).unwrap()).unwrap();
    p.send_message(&[94, 1]).unwrap();
    server.join().unwrap();
    // The peer is gone. The first send only fills our kernel buffer; the
    // peer's RST then breaks a later one.
    let mut outcome = Ok(ssh_packetizer::Sent::Held);
    for _ in 0..50 {
        outcome = p.send_message(&[94; 100]);
        if outcome.is_err() {
            break;
        }
        thread::sleep(std::time::Duration::from_millis(10));
    }
    let err = outcome.expect_err("sending into a closed connection kept succeeding");
    let kind = err.io_kind().expect("an I/O error");
    assert!(
        matches!(
            kind,
            std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
        ),
        "{kind:?}"
    );
    assert!(p.connection().is_closed());
    // Every later call names the broken pipe (or reset) as its cause.
    let later = p.send_message(&[94]).unwrap_err();
    assert!(
        matches!(later, ssh_packetizer::Error::Failed(_)),
        "{later:?}"
    );
    assert_eq!(later.io_kind(), Some(kind));
    // Reading says the same, at once.
    let later = p.read_message().map(|_| ()).unwrap_err();
    assert_eq!(later.io_kind(), Some(kind), "{later:?}");
}

#[test]
fn a_clean_close_at_a_packet_boundary_reads_as_closed_over_tcp() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut p = Packetizer::tcp(stream).unwrap();
        p.send_message(&[94, 7]).unwrap();
    });
    let mut p = Packetizer::tcp(TcpStream::connect(addr).unwrap()).unwrap();
    assert_eq!(p.read_message().unwrap().payload(), [94, 7]);
    server.join().unwrap();
    assert!(matches!(
        p.read_message(),
        Err(ssh_packetizer::Error::Closed)
    ));
}
