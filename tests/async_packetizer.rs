//! The async Packetizer and its halves (feature `tokio`): pairs over
//! `tokio::io::duplex` and TCP in every suite with key switches in the
//! middle, cancel safety, the timers on tokio's paused clock, a writer
//! stuck on a full socket beside a reader that goes on, faults, and the
//! buffers given back at rest.

mod common;

use std::time::Duration;

use common::{keys_for, payload, supported_suites};
use ssh_packetizer::tokio::{Packetizer, IDLE_RELEASE};
use ssh_packetizer::{
    msg, CipherAlgorithm as C, CompressionAlgorithm as Z, Config, Error, Keys, MacAlgorithm as M,
    RekeyLimits, Sealer,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};
use tokio::net::{TcpListener, TcpStream};

/// A message of `len` bytes (type CHANNEL_DATA) for message `i`.
fn message(i: usize, len: usize) -> Vec<u8> {
    let mut m = payload(len, i as u64 + 1);
    m[0] = msg::CHANNEL_DATA;
    m
}

/// Sizes that cross block, read and buffer boundaries.
fn size_of(i: usize) -> usize {
    match i % 9 {
        0 => 32 * 1024,
        1 => 1,
        2 => 16 * 1024 + 3,
        _ => (i * 7919) % 3000 + 1,
    }
}

fn pair() -> (Packetizer<DuplexStream>, Packetizer<DuplexStream>) {
    let (a, b) = tokio::io::duplex(64 * 1024);
    (Packetizer::new(a), Packetizer::new(b))
}

/// `tx` sends NEWKEYS and switches; `rx` reads it and installs the keys.
async fn switch<A, B>(tx: &mut Packetizer<A>, rx: &mut Packetizer<B>, keys: Keys)
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    tx.send_newkeys(keys.clone()).await.unwrap();
    assert_eq!(rx.read_message().await.unwrap().msg_type(), msg::NEWKEYS);
    rx.set_inbound_cipher(keys).unwrap();
}

/// Echoes `count` messages: `a` sends, `b` echoes back, both check.
async fn echo<A, B>(a: &mut Packetizer<A>, b: &mut Packetizer<B>, from: usize, count: usize)
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    for i in from..from + count {
        let sent = message(i, size_of(i));
        a.send_message(&sent).await.unwrap();
        let got = b.read_message().await.unwrap().payload().to_vec();
        assert_eq!(got, sent, "message {i} arrived changed");
        b.send_message(&got).await.unwrap();
        assert_eq!(a.read_message().await.unwrap().payload(), &sent[..]);
    }
}

#[tokio::test]
async fn every_suite_over_duplex_with_key_switches_in_the_middle() {
    for (c, m) in supported_suites() {
        let (mut a, mut b) = pair();
        a.send_identification("SSH-2.0-a").await.unwrap();
        assert_eq!(
            b.read_identification().await.unwrap().software_version(),
            "a"
        );
        echo(&mut a, &mut b, 0, 5).await;
        switch(&mut a, &mut b, keys_for(c, m, 1)).await;
        switch(&mut b, &mut a, keys_for(c, m, 2)).await;
        echo(&mut a, &mut b, 5, 40).await;
        // A rekey in the middle of the stream, each way.
        switch(&mut a, &mut b, keys_for(c, m, 3)).await;
        echo(&mut a, &mut b, 45, 10).await;
        switch(&mut b, &mut a, keys_for(c, m, 4)).await;
        echo(&mut a, &mut b, 55, 40).await;
        // 5 + 1 + 50 + 40 messages from `a`: its sequence numbers ran on.
        assert_eq!(a.connection().seqno_out(), 5 + 1 + 50 + 1 + 40, "{c}+{m}");
    }
}

async fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (client, server) = tokio::join!(TcpStream::connect(addr), listener.accept());
    (client.unwrap(), server.unwrap().0)
}

/// One end over TCP, split: its writer sends `count` messages (switching
/// keys halfway) while its reader takes the peer's `count`.
async fn split_end(stream: TcpStream, c: C, m: M, out_seed: u8, in_seed: u8, count: usize) {
    let p = Packetizer::new(stream);
    let (mut reader, writer) = p.split_with(TcpStream::into_split);
    let sender = tokio::spawn(async move {
        writer.send_newkeys(keys_for(c, m, out_seed)).await.unwrap();
        for i in 0..count {
            if i == count / 2 {
                writer
                    .send_newkeys(keys_for(c, m, out_seed + 10))
                    .await
                    .unwrap();
            }
            writer.send_message(&message(i, size_of(i))).await.unwrap();
        }
        writer
    });
    let mut seed = in_seed;
    let mut i = 0;
    while i < count {
        let packet = reader.read_message().await.unwrap();
        if packet.msg_type() == msg::NEWKEYS {
            reader.set_inbound_cipher(keys_for(c, m, seed)).unwrap();
            seed += 10;
            continue;
        }
        assert_eq!(
            packet.payload(),
            &message(i, size_of(i))[..],
            "{c}+{m}: {i}"
        );
        i += 1;
    }
    let writer = sender.await.unwrap();
    assert_eq!(
        writer.connection().with(|c| c.seqno_out()) as usize,
        count + 2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_suite_over_tcp_with_split_halves_both_ways_at_once() {
    for (c, m) in supported_suites() {
        let (client, server) = tcp_pair().await;
        tokio::join!(
            split_end(client, c, m, 1, 2, 300),
            split_end(server, c, m, 2, 1, 300)
        );
    }
}

/// The wire bytes of `count` messages sealed in the clear.
fn clear_wire(count: usize) -> Vec<u8> {
    let mut sealer = Sealer::new();
    let mut wire = Vec::new();
    for i in 0..count {
        sealer.seal(&message(i, size_of(i)), &mut wire).unwrap();
    }
    wire
}

#[tokio::test]
async fn a_cancelled_read_loses_no_byte() {
    const COUNT: usize = 300;
    let (ours, mut theirs) = tokio::io::duplex(1024);
    let mut p = Packetizer::new(ours);
    let wire = clear_wire(COUNT);
    // The peer drips the stream in 7-byte pieces, so reads are cancelled
    // inside packets as well as between them.
    let dripper = tokio::spawn(async move {
        for chunk in wire.chunks(7) {
            theirs.write_all(chunk).await.unwrap();
            tokio::task::yield_now().await;
        }
        theirs
    });
    let (mut got, mut cancelled) = (0, 0);
    while got < COUNT {
        tokio::select! {
            biased;
            packet = p.read_message() => {
                assert_eq!(packet.unwrap().payload(), &message(got, size_of(got))[..]);
                got += 1;
            }
            _ = tokio::task::yield_now() => cancelled += 1,
        }
    }
    assert!(
        cancelled > COUNT,
        "reads were cancelled ({cancelled} times)"
    );
    drop(dripper.await.unwrap());
    assert!(matches!(p.read_message().await, Err(Error::Closed)));
}

#[tokio::test]
async fn a_cancelled_read_of_the_split_reader_loses_no_byte() {
    const COUNT: usize = 200;
    let (ours, mut theirs) = tokio::io::duplex(1024);
    let (mut reader, _writer) = Packetizer::new(ours).into_split();
    let wire = clear_wire(COUNT);
    tokio::spawn(async move {
        for chunk in wire.chunks(5) {
            theirs.write_all(chunk).await.unwrap();
            tokio::task::yield_now().await;
        }
    });
    let (mut got, mut cancelled) = (0, 0);
    while got < COUNT {
        tokio::select! {
            biased;
            packet = reader.read_message() => {
                assert_eq!(packet.unwrap().payload(), &message(got, size_of(got))[..]);
                got += 1;
            }
            _ = tokio::task::yield_now() => cancelled += 1,
        }
    }
    assert!(cancelled > COUNT);
}

#[tokio::test]
async fn raw_reads_lines_and_the_identification() {
    let (ours, mut theirs) = tokio::io::duplex(4096);
    let mut p = Packetizer::new(ours);
    theirs
        .write_all(b"hello\r\nsecond line\nSSH-2.0-peer_1.0 note\r\nabcdefRAW")
        .await
        .unwrap();
    let id = p.read_identification().await.unwrap();
    assert_eq!(id.software_version(), "peer_1.0");
    assert_eq!(id.pre_banner.len(), 2);
    assert_eq!(p.read_all(6, false).await.unwrap(), b"abcdef");
    // Three bytes are in; five are asked for: nothing is taken until all
    // are there, and a cancelled wait loses nothing.
    let waited = tokio::time::timeout(Duration::from_millis(20), p.read_all(5, false)).await;
    assert!(waited.is_err(), "the read waits for the rest");
    theirs.write_all(b"!!\nline\n").await.unwrap();
    assert_eq!(p.read_all(5, false).await.unwrap(), b"RAW!!");
    assert_eq!(p.read_line().await.unwrap(), "");
    assert_eq!(p.read_line().await.unwrap(), "line");
    drop(theirs);
    assert!(matches!(p.read_line().await, Err(Error::Closed)));
}

#[tokio::test]
async fn the_peers_newkeys_holds_the_next_packet_until_the_keys_are_in() {
    let (mut a, mut b) = pair();
    let keys = keys_for(C::Aes128Gcm, M::None, 1);
    a.send_newkeys(keys.clone()).await.unwrap();
    a.send_message(&message(0, 100)).await.unwrap();
    assert_eq!(b.read_message().await.unwrap().msg_type(), msg::NEWKEYS);
    assert!(matches!(b.read_message().await, Err(Error::KeysPending)));
    b.set_inbound_cipher(keys).unwrap();
    assert_eq!(
        b.read_message().await.unwrap().payload(),
        &message(0, 100)[..]
    );
}

/// Both ends switched to `c`: the initial kex is done.
async fn keyed_pair(c: C, m: M) -> (Packetizer<DuplexStream>, Packetizer<DuplexStream>) {
    keyed_pair_with(Config::client(), c, m).await
}

/// As [`keyed_pair`], the first configured with `config`.
async fn keyed_pair_with(
    config: Config,
    c: C,
    m: M,
) -> (Packetizer<DuplexStream>, Packetizer<DuplexStream>) {
    let (a, b) = tokio::io::duplex(64 * 1024);
    let (mut a, mut b) = (Packetizer::with_config(a, config), Packetizer::new(b));
    switch(&mut a, &mut b, keys_for(c, m, 1)).await;
    switch(&mut b, &mut a, keys_for(c, m, 2)).await;
    (a, b)
}

#[tokio::test(start_paused = true)]
async fn the_handshake_deadline_fires_on_tokios_clock() {
    let (mut a, _silent_peer) = pair();
    let started = tokio::time::Instant::now();
    a.start_handshake(Duration::from_secs(30));
    let err = a.read_message().await.unwrap_err();
    assert!(matches!(err, Error::HandshakeTimeout), "{err:?}");
    assert_eq!(started.elapsed(), Duration::from_secs(30));
    assert!(a.handshake_timed_out());
    // From then on every call reports that first error.
    match a.send_message(&[msg::IGNORE]).await {
        Err(Error::Failed(first)) => assert!(matches!(*first, Error::HandshakeTimeout)),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_completed_handshake_never_times_out() {
    let (mut a, mut b) = pair();
    a.start_handshake(Duration::from_secs(5));
    a.complete_handshake();
    let reader = tokio::spawn(async move {
        let got = a.read_message().await.map(|p| p.msg_type());
        (got, a)
    });
    tokio::time::sleep(Duration::from_secs(60)).await;
    b.send_message(&[msg::IGNORE]).await.unwrap();
    let (got, a) = reader.await.unwrap();
    assert_eq!(got.unwrap(), msg::IGNORE);
    assert!(!a.connection().handshake_timed_out());
}

#[tokio::test(start_paused = true)]
async fn the_keepalive_goes_out_after_the_interval_of_silence() {
    let (mut a, mut b) = keyed_pair(C::ChaCha20Poly1305, M::None).await;
    a.set_keepalive(Some(Duration::from_secs(15)), |sink| {
        sink.send_message(&[msg::IGNORE, 0, 0, 0, 0]).map(|_| ())
    });
    let started = tokio::time::Instant::now();
    // `a` waits to read; its loop sends the keepalive when it falls due.
    let reader = tokio::spawn(async move {
        let got = a.read_message().await.map(|p| p.payload().to_vec());
        (got, a)
    });
    let first = b.read_message().await.unwrap();
    assert_eq!(first.msg_type(), msg::IGNORE);
    assert_eq!(started.elapsed(), Duration::from_secs(15));
    // Quiet again: the next one comes 15 s after the last traffic.
    assert_eq!(b.read_message().await.unwrap().msg_type(), msg::IGNORE);
    assert_eq!(started.elapsed(), Duration::from_secs(30));
    b.send_message(&message(1, 10)).await.unwrap();
    let (got, _a) = reader.await.unwrap();
    assert_eq!(got.unwrap(), message(1, 10));
}

#[tokio::test(start_paused = true)]
async fn key_age_asks_for_a_rekey_once() {
    let config = Config::client().rekey_limits(RekeyLimits {
        max_time: Some(Duration::from_secs(60)),
        ..RekeyLimits::default()
    });
    let (mut a, mut b) = keyed_pair_with(config, C::Aes256Ctr, M::HmacSha256Etm).await;
    let started = tokio::time::Instant::now();
    assert!(matches!(a.read_message().await, Err(Error::NeedRekey)));
    assert_eq!(started.elapsed(), Duration::from_secs(60));
    assert!(a.need_rekey());
    // Once per request: the next read waits for packets.
    b.send_message(&message(2, 50)).await.unwrap();
    assert_eq!(
        a.read_message().await.unwrap().payload(),
        &message(2, 50)[..]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_stuck_on_a_full_socket_never_stalls_the_reader() {
    let (ours, theirs) = tcp_pair().await;
    let (mut reader, writer) = Packetizer::new(ours).split_with(TcpStream::into_split);
    // The peer does not read for now; our writer fills the socket and waits.
    let stuck = tokio::spawn(async move {
        let big = message(0, 32 * 1024);
        for _ in 0..2048 {
            writer.send_message(&big).await.unwrap();
        }
    });
    let mut peer = Packetizer::new(theirs);
    for i in 0..200 {
        peer.send_message(&message(i, 500)).await.unwrap();
    }
    for i in 0..200 {
        assert_eq!(
            reader.read_message().await.unwrap().payload(),
            &message(i, 500)[..]
        );
    }
    assert!(
        !stuck.is_finished(),
        "64 MiB cannot have gone into an unread socket"
    );
    // The peer reads at last: everything arrives.
    for _ in 0..2048 {
        assert_eq!(
            peer.read_message().await.unwrap().payload().len(),
            32 * 1024
        );
    }
    stuck.await.unwrap();
}

#[tokio::test]
async fn a_tampered_packet_fails_the_read_tells_the_peer_and_stays_failed() {
    let (c, m) = (C::Aes128Ctr, M::HmacSha256);
    let (ours, mut theirs) = tokio::io::duplex(64 * 1024);
    let mut p = Packetizer::new(ours);
    // Keys on both ways; the peer's side is a bare Sealer and Opener.
    let mut sealer = Sealer::new();
    let mut wire = Vec::new();
    sealer.seal_newkeys(keys_for(c, m, 1), &mut wire).unwrap();
    sealer.seal(&message(0, 100), &mut wire).unwrap();
    let last = wire.len() - 1;
    wire[last] ^= 1;
    theirs.write_all(&wire).await.unwrap();
    p.send_newkeys(keys_for(c, m, 2)).await.unwrap();
    assert_eq!(p.read_message().await.unwrap().msg_type(), msg::NEWKEYS);
    p.set_inbound_cipher(keys_for(c, m, 1)).unwrap();
    let err = p.read_message().await.unwrap_err();
    assert!(matches!(err, Error::MacMismatch { .. }), "{err:?}");
    match p.read_message().await {
        Err(Error::Failed(first)) => assert!(matches!(*first, Error::MacMismatch { .. })),
        other => panic!("{other:?}"),
    }
    // The peer got our NEWKEYS and then a DISCONNECT saying why.
    drop(p);
    let mut from_us = Vec::new();
    theirs.read_to_end(&mut from_us).await.unwrap();
    let mut opener = ssh_packetizer::Opener::new();
    let mut opener_in = ssh_packetizer::InputBuffer::new();
    let packets = match common::open_all(&mut opener, &mut opener_in, &from_us) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(packets[0].0, [msg::NEWKEYS]);
    opener.set_keys(keys_for(c, m, 2)).unwrap();
    // The rest is buffered in the Opener already.
    let disconnect = common::open_all(&mut opener, &mut opener_in, &[]).unwrap();
    assert_eq!(disconnect.len(), 1);
    assert_eq!(disconnect[0].0[0], msg::DISCONNECT);
    let reason = u32::from_be_bytes(disconnect[0].0[1..5].try_into().unwrap());
    assert_eq!(reason, msg::reason::MAC_ERROR);
}

#[tokio::test]
async fn eof_inside_a_packet_says_how_much_was_missing() {
    let (ours, mut theirs) = tokio::io::duplex(64 * 1024);
    let mut p = Packetizer::new(ours);
    let wire = clear_wire(1);
    theirs.write_all(&wire[..wire.len() - 3]).await.unwrap();
    drop(theirs);
    match p.read_message().await {
        Err(Error::Eof { needed, got }) => {
            assert_eq!((needed, got), (wire.len(), wire.len() - 3));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_connection_at_rest_gives_its_buffers_back() {
    let (mut a, mut b) = keyed_pair(C::Aes128Gcm, M::None).await;
    echo(&mut a, &mut b, 0, 20).await;
    assert!(a.buffer_bytes() > 32 * 1024, "{}", a.buffer_bytes());
    // At rest, with a read pending: the buffers go after IDLE_RELEASE.
    let rested = tokio::time::timeout(IDLE_RELEASE * 2, a.read_message()).await;
    assert!(rested.is_err());
    assert_eq!(a.buffer_bytes(), 0);
    // Not before: a read pending for less than that keeps them.
    echo(&mut a, &mut b, 20, 3).await;
    let held = a.buffer_bytes();
    let _ = tokio::time::timeout(IDLE_RELEASE / 2, a.read_message()).await;
    assert_eq!(a.buffer_bytes(), held);
    // And traffic after a release grows them again.
    echo(&mut a, &mut b, 23, 5).await;
}

#[tokio::test(start_paused = true)]
async fn the_split_reader_gives_the_buffers_back_at_rest() {
    let (a, mut b) = keyed_pair(C::Aes128Gcm, M::None).await;
    let (mut reader, writer) = a.into_split();
    for i in 0..10 {
        writer.send_message(&message(i, 20_000)).await.unwrap();
        assert_eq!(b.read_message().await.unwrap().payload().len(), 20_000);
        b.send_message(&message(i, 20_000)).await.unwrap();
        assert_eq!(reader.read_message().await.unwrap().payload().len(), 20_000);
    }
    assert!(reader.buffer_bytes() > 0);
    let _ = tokio::time::timeout(IDLE_RELEASE * 2, reader.read_message()).await;
    assert_eq!(reader.buffer_bytes(), 0);
}

#[tokio::test]
async fn zlib_through_the_split_halves() {
    let keys = |seed| keys_for(C::Aes256Gcm, M::None, seed).with_compression(Z::Zlib);
    let (mut a, mut b) = pair();
    switch(&mut a, &mut b, keys(1)).await;
    switch(&mut b, &mut a, keys(2)).await;
    let (mut reader, writer) = a.into_split();
    for i in 0..50 {
        let text = vec![b'a' + (i % 26) as u8; 10_000];
        let mut sent = vec![msg::CHANNEL_DATA];
        sent.extend_from_slice(&text);
        writer.send_message(&sent).await.unwrap();
        let got = b.read_message().await.unwrap().payload().to_vec();
        assert_eq!(got, sent);
        b.send_message(&got).await.unwrap();
        assert_eq!(reader.read_message().await.unwrap().payload(), &sent[..]);
    }
}

#[tokio::test]
async fn a_disconnect_from_the_peer_is_reported_with_its_reason() {
    let (mut a, mut b) = pair();
    b.disconnect(msg::reason::BY_APPLICATION, "bye")
        .await
        .unwrap();
    match a.read_message().await {
        Err(Error::Disconnected {
            reason,
            description,
        }) => assert_eq!(
            (reason, description.as_str()),
            (msg::reason::BY_APPLICATION, "bye")
        ),
        other => panic!("{other:?}"),
    }
    assert!(b.connection().is_closed());
}

#[tokio::test(start_paused = true)]
async fn a_deadline_set_through_the_writer_wakes_the_waiting_reader() {
    let (a, _silent_peer) = pair();
    let (mut reader, writer) = a.into_split();
    let started = tokio::time::Instant::now();
    let read = tokio::spawn(async move { reader.read_message().await.map(|p| p.msg_type()) });
    // The reader is waiting before the deadline exists.
    tokio::task::yield_now().await;
    writer.connection().start_handshake(Duration::from_secs(5));
    let result = tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .expect("the reader saw the deadline")
        .unwrap();
    assert!(matches!(result, Err(Error::HandshakeTimeout)), "{result:?}");
    assert_eq!(started.elapsed(), Duration::from_secs(5));
}

#[tokio::test(start_paused = true)]
async fn closing_through_the_writer_ends_the_waiting_read() {
    let (a, _silent_peer) = pair();
    let (mut reader, writer) = a.into_split();
    let read = tokio::spawn(async move { reader.read_message().await.map(|p| p.msg_type()) });
    tokio::task::yield_now().await;
    writer.connection().close();
    let result = tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .expect("the reader saw the close")
        .unwrap();
    assert!(matches!(result, Err(Error::Closed)), "{result:?}");
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_send_is_finished_by_the_waiting_reader() {
    let (ours, theirs) = tokio::io::duplex(1024);
    let (mut reader, writer) = Packetizer::new(ours).into_split();
    let mut peer = Packetizer::new(theirs);
    let reading = tokio::spawn(async move {
        let got = reader.read_message().await.map(|p| p.payload().to_vec());
        (got, reader)
    });
    tokio::task::yield_now().await;
    // The stream takes 1 KiB: the send waits, and is given up half done.
    let big = message(0, 10_000);
    let sent = tokio::time::timeout(Duration::from_millis(10), writer.send_message(&big)).await;
    assert!(sent.is_err(), "the send could not finish");
    // As the peer reads, the waiting reader writes the rest.
    let got = tokio::time::timeout(Duration::from_secs(10), peer.read_message())
        .await
        .expect("the rest of the packet was written")
        .unwrap();
    assert_eq!(got.payload(), &big[..]);
    peer.send_message(&message(1, 10)).await.unwrap();
    let (got, _reader) = reading.await.unwrap();
    assert_eq!(got.unwrap(), message(1, 10));
}

#[tokio::test(start_paused = true)]
async fn a_select_tick_at_rest_does_not_keep_the_buffers() {
    let (mut a, mut b) = keyed_pair(C::Aes128Gcm, M::None).await;
    echo(&mut a, &mut b, 0, 20).await;
    assert!(a.buffer_bytes() > 0);
    // The read is dropped and made again every 300 ms: still at rest.
    let mut tick = tokio::time::interval(Duration::from_millis(300));
    let until = tokio::time::Instant::now() + IDLE_RELEASE * 3;
    while tokio::time::Instant::now() < until {
        tokio::select! {
            packet = a.read_message() => panic!("{:?}", packet.map(|p| p.msg_type())),
            _ = tick.tick() => {}
        }
    }
    assert_eq!(a.buffer_bytes(), 0);
}

/// A stream whose writes wait until its one read has delivered `incoming`,
/// and fail with a broken pipe from then on: a peer that sent its last
/// packet and reset the connection while our output was still queued.
struct ResetAfterSending {
    incoming: Vec<u8>,
    delivered: bool,
}

impl AsyncRead for ResetAfterSending {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if self.delivered {
            return std::task::Poll::Pending;
        }
        let n = buf.remaining().min(self.incoming.len());
        let rest = self.incoming.split_off(n);
        buf.put_slice(&self.incoming);
        self.incoming = rest;
        self.delivered = self.incoming.is_empty();
        std::task::Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for ResetAfterSending {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        _buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        if self.delivered {
            std::task::Poll::Ready(Err(std::io::ErrorKind::BrokenPipe.into()))
        } else {
            std::task::Poll::Pending
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// A Packetizer over [`ResetAfterSending`] whose send of a message was
/// given up while the stream would not take it: the message is sealed and
/// queued, and the next read tries to write it.
async fn queued_output_then(incoming: Vec<u8>) -> Packetizer<ResetAfterSending> {
    let mut p = Packetizer::new(ResetAfterSending {
        incoming,
        delivered: false,
    });
    let send =
        tokio::time::timeout(Duration::from_millis(10), p.send_message(&message(0, 100))).await;
    assert!(send.is_err(), "the stream takes no write yet");
    p
}

fn assert_the_write_error_comes_next(e: Error) {
    assert!(matches!(e, Error::Failed(_)), "{e:?}");
    assert_eq!(e.io_kind(), Some(std::io::ErrorKind::BrokenPipe), "{e:?}");
}

#[tokio::test]
async fn a_packet_read_as_the_write_fails_is_delivered_then_the_error() {
    // Regression: the read loop wrote pending output after taking the
    // packet and returned the write's error instead: the packet was gone.
    let wire = clear_wire(1);
    let mut p = queued_output_then(wire).await;
    let packet = p.read_message().await.unwrap();
    assert_eq!(packet.payload(), &message(0, size_of(0))[..]);
    assert_the_write_error_comes_next(p.read_message().await.unwrap_err());

    // The same for the split reader, with the writer's send given up.
    let (mut reader, writer) = Packetizer::new(ResetAfterSending {
        incoming: clear_wire(1),
        delivered: false,
    })
    .into_split();
    let send = tokio::time::timeout(
        Duration::from_millis(10),
        writer.send_message(&message(0, 100)),
    )
    .await;
    assert!(send.is_err(), "the stream takes no write yet");
    let packet = reader.read_message().await.unwrap();
    assert_eq!(packet.payload(), &message(0, size_of(0))[..]);
    assert_the_write_error_comes_next(reader.read_message().await.unwrap_err());
}

#[tokio::test]
async fn raw_bytes_read_as_the_write_fails_are_delivered_then_the_error() {
    let mut p = queued_output_then(b"12345678".to_vec()).await;
    assert_eq!(p.read_all(8, false).await.unwrap(), b"12345678");
    assert_the_write_error_comes_next(p.read_all(1, false).await.unwrap_err());
    let mut p = queued_output_then(b"a line\r\n".to_vec()).await;
    assert_eq!(p.read_line().await.unwrap(), "a line");
    assert_the_write_error_comes_next(p.read_line().await.unwrap_err());
}

#[tokio::test]
async fn cancelled_raw_reads_take_nothing() {
    let (ours, mut theirs) = tokio::io::duplex(64 * 1024);
    let mut p = Packetizer::new(ours);
    theirs.write_all(b"hello").await.unwrap();
    // Half of a read_all and half of a line: each read is given up.
    let half = tokio::time::timeout(Duration::from_millis(20), p.read_all(10, false)).await;
    assert!(half.is_err(), "only 5 of 10 bytes are there");
    theirs.write_all(b"world, a li").await.unwrap();
    assert_eq!(p.read_all(10, false).await.unwrap(), b"helloworld");
    let half = tokio::time::timeout(Duration::from_millis(20), p.read_line()).await;
    assert!(half.is_err(), "the line has no end yet");
    theirs.write_all(b"ne\r\nSSH-2.0-x\r\n").await.unwrap();
    assert_eq!(p.read_line().await.unwrap(), ", a line");
    assert_eq!(p.read_identification().await.unwrap().line, b"SSH-2.0-x");
}

#[tokio::test]
async fn a_cancelled_send_goes_out_once_with_the_next_call() {
    let (ours, theirs) = tokio::io::duplex(1024);
    let mut p = Packetizer::new(ours);
    let mut peer = Packetizer::new(theirs);
    // The stream takes 1 KiB: the send is given up with its packet sealed.
    let big = message(0, 10_000);
    let sent = tokio::time::timeout(Duration::from_millis(20), p.send_message(&big)).await;
    assert!(sent.is_err(), "the send could not finish");
    // The next send writes the rest first, then its own: each once, in order.
    let reading = tokio::spawn(async move {
        let mut got = Vec::new();
        for _ in 0..3 {
            got.push(peer.read_message().await.unwrap().payload().to_vec());
        }
        got
    });
    p.send_message(&message(1, 10)).await.unwrap();
    // And a send cancelled before its first poll did nothing.
    drop(p.send_message(&message(9, 10)));
    p.send_message(&message(2, 10)).await.unwrap();
    assert_eq!(
        reading.await.unwrap(),
        [big, message(1, 10), message(2, 10)]
    );
}

/// What can disconnect and flush: the whole Packetizer and the writer half.
trait Disconnecting {
    async fn disconnect_with(&mut self, description: &str) -> Result<(), Error>;
    async fn flush_now(&mut self) -> Result<(), Error>;
}

impl Disconnecting for Packetizer<DuplexStream> {
    async fn disconnect_with(&mut self, description: &str) -> Result<(), Error> {
        self.disconnect(msg::reason::BY_APPLICATION, description)
            .await
    }
    async fn flush_now(&mut self) -> Result<(), Error> {
        self.flush().await
    }
}

impl Disconnecting for ssh_packetizer::tokio::PacketWriter<tokio::io::WriteHalf<DuplexStream>> {
    async fn disconnect_with(&mut self, description: &str) -> Result<(), Error> {
        self.disconnect(msg::reason::BY_APPLICATION, description)
            .await
    }
    async fn flush_now(&mut self) -> Result<(), Error> {
        self.flush().await
    }
}

/// Gives a DISCONNECT up half written through `end` (the stream takes
/// 1 KiB, the DISCONNECT is larger), then checks that `flush` finishes it
/// for `peer` and answers `Closed`.
async fn a_half_written_disconnect_is_finished<T: Disconnecting>(
    end: &mut T,
    mut peer: Packetizer<DuplexStream>,
) {
    let long = "x".repeat(4000);
    let given_up =
        tokio::time::timeout(Duration::from_millis(20), end.disconnect_with(&long)).await;
    assert!(given_up.is_err(), "the stream could not take it all");
    let heard = tokio::spawn(async move { peer.read_message().await.map(|m| m.msg_type()) });
    assert!(matches!(end.flush_now().await, Err(Error::Closed)));
    let heard = tokio::time::timeout(Duration::from_secs(10), heard)
        .await
        .expect("the rest of the DISCONNECT was written")
        .unwrap();
    assert!(
        matches!(heard, Err(Error::Disconnected { reason: 11, .. })),
        "{heard:?}"
    );
}

#[tokio::test]
async fn a_disconnect_given_up_half_written_goes_out_with_flush() {
    // Before the fix, every call after the close (flush too) answered
    // Closed and the peer never heard the rest.
    let (ours, theirs) = tokio::io::duplex(1024);
    let mut p = Packetizer::new(ours);
    a_half_written_disconnect_is_finished(&mut p, Packetizer::new(theirs)).await;
    assert!(matches!(p.send_message(&[94]).await, Err(Error::Closed)));
    // The same through the split writer.
    let (ours, theirs) = tokio::io::duplex(1024);
    let (_reader, mut writer) = Packetizer::new(ours).into_split();
    a_half_written_disconnect_is_finished(&mut writer, Packetizer::new(theirs)).await;
}
