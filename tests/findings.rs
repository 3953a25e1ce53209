//! One regression test per finding of the review that led to the connection
//! core (issue 11), numbered as the issue numbers them. Each asserts the
//! behaviour the finding asked for, through the public API, and failed on
//! the code before the core.

mod common;

use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use common::{clear_stream, keys_for, switch_keys, Scripted, Step};
use ssh_packetizer::pipe::{pipe, pipe_with_capacity};
use ssh_packetizer::ManualClock;
use ssh_packetizer::{
    msg, CipherAlgorithm as C, Config, Connection, Error, InputBuffer, Keys, MacAlgorithm as M,
    Opened, Opener, Packet, Packetizer, RekeyLimits, Sealer,
};

const SEC: Duration = Duration::from_secs(1);

/// Both directions switched, in the clear so scripts stay readable: the
/// initial kex is done.
fn keyed_in_the_clear<S: Read + Write>(p: &mut Packetizer<S>) {
    p.send_newkeys(Keys::clear()).unwrap();
    p.set_inbound_cipher(Keys::clear()).unwrap();
}

/// Both directions switched to real keys (no bytes come in under them).
fn keyed<S: Read + Write>(p: &mut Packetizer<S>) {
    p.send_newkeys(keys_for(C::Aes128Gcm, M::None, 1)).unwrap();
    p.set_inbound_cipher(keys_for(C::Aes128Gcm, M::None, 2))
        .unwrap();
}

/// A client whose budget one large message spends.
fn spendable() -> Config {
    Config::client().rekey_limits(RekeyLimits {
        max_bytes: Some(64 * 1024),
        ..RekeyLimits::default()
    })
}

/// Spends the outbound budget of a Packetizer configured with [`spendable`].
fn spend_outbound_budget<S: Read + Write>(p: &mut Packetizer<S>) {
    p.send_message(&[msg::IGNORE; 70_000]).unwrap();
    assert!(p.need_rekey());
}

#[test]
fn finding_01_a_pending_rekey_masks_neither_the_deadline_nor_the_keepalive() {
    // A rekey wanted and a deadline set: NeedRekey once, then the deadline.
    // Then the same with our KEXINIT out (it answers the request): a peer
    // that goes silent after it is cut off at the deadline.
    for kexinit_sent in [false, true] {
        let ticks = (0..120).map(|_| Step::Tick(60 * SEC)).collect();
        let mut p = Scripted::new(ticks).packetizer_with(spendable());
        keyed(&mut p);
        spend_outbound_budget(&mut p);
        p.start_handshake(5 * SEC);
        if kexinit_sent {
            p.send_message(&[msg::KEXINIT]).unwrap();
        }
        let mut need_rekey = 0;
        let err = loop {
            match p.read_message() {
                Err(Error::NeedRekey) => need_rekey += 1,
                Err(e) => break e,
                Ok(m) => panic!("nothing was sent, yet {:?}", m.payload()),
            }
            assert!(need_rekey < 3, "NeedRekey again and again");
        };
        assert!(matches!(err, Error::HandshakeTimeout), "{err:?}");
        assert!(p.handshake_timed_out());
        let expected = if kexinit_sent { 0 } else { 1 };
        assert_eq!(
            need_rekey, expected,
            "reported once per request, not once answered"
        );
    }

    // With a rekey wanted (and no exchange begun), the keepalive still runs.
    let ticks = (0..6).map(|_| Step::Tick(10 * SEC)).collect();
    let mut p = Scripted::new(ticks).packetizer_with(spendable());
    keyed(&mut p);
    spend_outbound_budget(&mut p);
    let fired = Arc::new(AtomicUsize::new(0));
    let count = fired.clone();
    p.set_keepalive(Some(15 * SEC), move |w| {
        count.fetch_add(1, Ordering::SeqCst);
        w.send_message(&[msg::IGNORE]).map(|_| ())
    });
    assert!(matches!(p.read_message(), Err(Error::NeedRekey)));
    assert!(
        matches!(p.read_message(), Err(Error::Closed)),
        "the script ends"
    );
    assert_eq!(
        fired.load(Ordering::SeqCst),
        3,
        "60 s idle at 15 s, minus the first tick"
    );
}

#[test]
fn finding_02_need_rekey_stays_cleared_when_the_inbound_keys_switch_first() {
    let (a, b) = pipe();
    let limits = RekeyLimits {
        max_bytes: Some(50_000),
        ..RekeyLimits::default()
    };
    let mut ours = Packetizer::with_config(a, Config::client().rekey_limits(limits));
    let mut peer = Packetizer::new(b);
    let k = |seed| keys_for(C::Aes128Gcm, M::None, seed);
    switch_keys(&mut ours, &mut peer, k(1));
    switch_keys(&mut peer, &mut ours, k(2));
    ours.send_message(&vec![msg::CHANNEL_DATA; 60_000]).unwrap();
    assert!(ours.need_rekey(), "the outbound budget is spent");
    peer.read_message().unwrap();
    peer.send_newkeys(k(3)).unwrap();
    peer.send_message(&[msg::CHANNEL_DATA, 1]).unwrap();
    peer.send_message(&[msg::CHANNEL_DATA, 2]).unwrap();
    assert!(matches!(ours.read_message(), Err(Error::NeedRekey)), "once");
    assert_eq!(ours.read_message().unwrap().msg_type(), msg::NEWKEYS);
    ours.set_inbound_cipher(k(3)).unwrap();
    assert_eq!(ours.read_message().unwrap().payload(), [94, 1]);
    ours.send_newkeys(k(4)).unwrap();
    assert!(!ours.need_rekey());
    assert_eq!(ours.read_message().unwrap().payload(), [94, 2]);
    assert!(!ours.need_rekey(), "came back after a finished rekey");
}

#[test]
fn finding_03_read_all_keeps_every_byte_through_a_failing_keepalive() {
    let steps = vec![
        Step::Data(b"hello".to_vec()),
        Step::Tick(20 * SEC),
        Step::Data(b"world".to_vec()),
    ];
    let mut p = Scripted::new(steps).packetizer();
    keyed_in_the_clear(&mut p);
    // A callback that fails without closing anything (an empty payload).
    p.set_keepalive(Some(10 * SEC), |w| w.send_message(&[]).map(|_| ()));
    let err = p.read_all(10, false).unwrap_err();
    assert!(matches!(err, Error::EmptyPayload), "{err:?}");
    assert!(!p.connection().is_closed());
    assert_eq!(p.read_all(10, false).unwrap(), b"helloworld");
}

#[test]
fn finding_04_a_writer_stuck_on_a_full_socket_stalls_nobody() {
    let (mut ours, mut peer) = pipe_with_capacity(16 * 1024);
    ours.set_read_timeout(Some(Duration::from_millis(5)));
    let clock = Arc::new(ManualClock::new());
    let mut p = Packetizer::with_clock(ours, Config::client(), clock.clone());
    keyed_in_the_clear(&mut p);
    let (mut reader, writer) = p.split().unwrap();
    let fired = Arc::new(AtomicUsize::new(0));
    let count = fired.clone();
    reader.set_keepalive(Some(SEC), move |w| {
        count.fetch_add(1, Ordering::SeqCst);
        w.send_message(&[msg::IGNORE, 7]).map(|_| ())
    });
    // The writer fills the socket and blocks: the peer does not read yet.
    let big = vec![msg::CHANNEL_DATA; 200_000];
    let stuck = thread::spawn(move || writer.send_message(&big).map(|_| ()));
    thread::sleep(Duration::from_millis(50));
    assert!(!stuck.is_finished(), "the writer should be blocked");
    clock.advance(3600 * SEC);
    // The reader still reads, and its keepalive does not wait for the writer.
    let (tx, rx) = mpsc::channel();
    let reading = thread::spawn(move || {
        let got = reader.read_message().map(|m| m.payload().to_vec());
        tx.send(got).unwrap();
        reader
    });
    thread::sleep(Duration::from_millis(50));
    let mut sealer = Sealer::new();
    let mut wire = Vec::new();
    sealer.seal(&[msg::CHANNEL_DATA, 42], &mut wire).unwrap();
    peer.write_all(&wire).unwrap();
    let got = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the reader was stalled behind the writer");
    assert_eq!(got.unwrap(), [94, 42]);
    assert!(fired.load(Ordering::SeqCst) >= 1, "the keepalive ran");
    // The peer drains: NEWKEYS, the big message, then the keepalive.
    let mut opener = Opener::new();
    let mut opener_in = InputBuffer::new();
    let mut seen = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    while !seen.contains(&msg::IGNORE) {
        let n = peer.read(&mut buf).unwrap();
        assert!(n > 0);
        let mut at = 0;
        while at < n {
            at += opener.feed(&mut opener_in, &buf[at..n]);
            loop {
                match opener.next_packet(&mut opener_in).unwrap() {
                    Opened::Packet(p) => seen.push(p.msg_type()),
                    Opened::AwaitingKeys => opener.set_keys(Keys::clear()).unwrap(),
                    _ => break,
                }
            }
        }
    }
    assert_eq!(seen[..2], [msg::NEWKEYS, msg::CHANNEL_DATA]);
    assert_eq!(seen.last(), Some(&msg::IGNORE));
    stuck.join().unwrap().unwrap();
    drop(reading.join().unwrap());
}

#[test]
fn finding_05_the_writer_switches_keys_atomically_among_clones() {
    let (a, b) = pipe();
    let (mut ours, mut peer) = (Packetizer::new(a), Packetizer::new(b));
    let k = |seed| keys_for(C::Aes128Ctr, M::HmacSha256Etm, seed);
    switch_keys(&mut ours, &mut peer, k(1));
    let (_reader, writer) = ours.split().unwrap();
    const SWITCHES: u8 = 20;
    const PER_THREAD: usize = 2_000;
    let senders: Vec<_> = (0..3)
        .map(|t| {
            let w = writer.clone();
            thread::spawn(move || {
                for i in 0..PER_THREAD {
                    w.send_message(&[msg::CHANNEL_DATA, t, i as u8]).unwrap();
                }
            })
        })
        .collect();
    let switcher = thread::spawn(move || {
        for seed in 2..2 + SWITCHES {
            writer.send_newkeys(k(seed)).unwrap();
            thread::sleep(Duration::from_millis(1));
        }
    });
    let (mut data, mut switched) = (0, 0);
    while data < 3 * PER_THREAD || switched < SWITCHES {
        let m = peer
            .read_message()
            .unwrap_or_else(|e| panic!("after {data} packets and {switched} switches: {e}"));
        if m.msg_type() == msg::NEWKEYS {
            switched += 1;
            peer.set_inbound_cipher(k(1 + switched)).unwrap();
        } else {
            data += 1;
        }
    }
    for s in senders {
        s.join().unwrap();
    }
    switcher.join().unwrap();
}

#[test]
fn finding_06_the_opener_stops_at_newkeys_until_the_keys_are_in() {
    let next = keys_for(C::Aes128Gcm, M::None, 9);
    let mut sealer = Sealer::new();
    let mut wire = Vec::new();
    sealer.seal_newkeys(next.clone(), &mut wire).unwrap();
    sealer.seal(&[msg::SERVICE_REQUEST, 1], &mut wire).unwrap();
    let mut opener = Opener::new();
    let mut opener_in = InputBuffer::new();
    assert_eq!(opener.feed(&mut opener_in, &wire), wire.len());
    assert!(
        matches!(opener.next_packet(&mut opener_in).unwrap(), Opened::Packet(p) if p.msg_type() == 21)
    );
    // A driver draining what it has reads nothing under the wrong keys.
    assert!(matches!(
        opener.next_packet(&mut opener_in).unwrap(),
        Opened::AwaitingKeys
    ));
    opener.set_keys(next).unwrap();
    assert!(
        matches!(opener.next_packet(&mut opener_in).unwrap(), Opened::Packet(p) if p.payload() == [5, 1])
    );
}

#[test]
fn finding_07_no_timer_runs_before_the_first_keys() {
    let mut steps: Vec<Step> = (0..10).map(|_| Step::Tick(3600 * SEC)).collect();
    steps.push(Step::Data(clear_stream(&[&[msg::KEXINIT]])));
    let mut p = Scripted::new(steps).packetizer_with(Config::client().rekey_limits(RekeyLimits {
        max_time: Some(60 * SEC),
        ..RekeyLimits::default()
    }));
    let fired = Arc::new(AtomicUsize::new(0));
    let count = fired.clone();
    p.set_keepalive(Some(SEC), move |_| {
        count.fetch_add(1, Ordering::SeqCst);
        Ok(())
    });
    assert_eq!(p.read_message().unwrap().msg_type(), msg::KEXINIT);
    assert!(!p.need_rekey(), "no key to age in the clear");
    assert_eq!(
        fired.load(Ordering::SeqCst),
        0,
        "no keepalive before NEWKEYS"
    );
}

#[test]
fn finding_08_the_initial_kex_is_done_once_both_directions_switched() {
    // A wrap is allowed once both directions switched, with no call saying
    // so; before, it is refused (Terrapin). Driven on the core directly.
    let now = Instant::now();
    let mut c = ssh_packetizer::Connection::new(Config::client(), now);
    c.set_seqnos(0, u32::MAX - 1);
    c.send_newkeys(Keys::clear(), now).unwrap(); // seqno u32::MAX - 1
    assert!(matches!(
        c.send_message(&[msg::IGNORE]),
        Err(Error::SequenceWrapped)
    ));
    let mut c = ssh_packetizer::Connection::new(Config::client(), now);
    c.set_seqnos(0, u32::MAX - 1);
    c.send_newkeys(Keys::clear(), now).unwrap();
    c.set_inbound_keys(Keys::clear(), now).unwrap();
    assert!(c.is_initial_kex_done());
    assert_eq!(
        c.send_message(&[msg::IGNORE]).unwrap().seqno(),
        Some(u32::MAX)
    );
    assert_eq!(c.send_message(&[msg::IGNORE]).unwrap().seqno(), Some(0));
}

#[test]
fn finding_09_the_sealer_keeps_its_first_fatal_error() {
    let mut s = Sealer::new();
    s.set_seqno(u32::MAX);
    let mut out = Vec::new();
    assert!(matches!(
        s.seal(&[2], &mut out),
        Err(Error::SequenceWrapped)
    ));
    s.set_seqno(0);
    let later = s.seal(&[2], &mut out).unwrap_err();
    assert!(matches!(later, Error::Failed(_)), "{later:?}");
    assert!(matches!(later.cause(), Error::SequenceWrapped));
    assert!(out.is_empty());
}

#[test]
fn finding_10_short_identification_lines_are_refused_without_a_panic() {
    for line in [&b"SSH"[..], b"SSH-", b"S", b""] {
        // As a server reads them: the first line must be a good identification.
        let now = Instant::now();
        let mut server = Connection::new(Config::server(), now);
        let mut input = InputBuffer::new();
        server.feed(&mut input, &[line, b"\r\n"].concat(), now);
        assert!(
            matches!(
                server.poll_identification(&mut input),
                Err(Error::BadIdentification { .. })
            ),
            "{line:?}"
        );
    }
}

#[test]
fn finding_11_feeding_pushes_back_at_one_maximum_packet_plus_a_read() {
    let o = Opener::new();
    let mut o_in = InputBuffer::new();
    let chunk = vec![0u8; 64 * 1024];
    let mut taken = 0;
    for _ in 0..1024 {
        taken += o.feed(&mut o_in, &chunk);
    }
    assert_eq!(taken, o.input_limit());
    assert!(taken < 400 * 1024, "{taken}");
}

#[test]
fn finding_12_a_fatal_error_is_the_cause_on_every_later_call_and_the_peer_hears_it() {
    let (a, mut peer) = pipe();
    let mut p = Packetizer::new(a);
    let k = keys_for(C::Aes128Gcm, M::None, 3);
    p.set_inbound_cipher(k.clone()).unwrap();
    let mut sealer = Sealer::new();
    sealer.set_keys(k).unwrap();
    let mut wire = Vec::new();
    sealer
        .seal(&[msg::CHANNEL_DATA, 1, 2, 3], &mut wire)
        .unwrap();
    let last = wire.len() - 1;
    wire[last] ^= 0x01;
    peer.write_all(&wire).unwrap();
    assert!(matches!(
        p.read_message(),
        Err(Error::MacMismatch { seqno: 0 })
    ));
    let later = p.send_message(&[msg::CHANNEL_DATA]).unwrap_err();
    assert!(
        matches!(later.cause(), Error::MacMismatch { .. }),
        "{later:?}"
    );
    assert!(later.to_string().contains("MAC"), "{later}");
    // As OpenSSH's "Corrupted MAC on input": a DISCONNECT, reason MAC error.
    let mut got = vec![0u8; 4096];
    let n = peer.read(&mut got).unwrap();
    let mut opener = Opener::new();
    let mut opener_in = InputBuffer::new();
    opener.feed(&mut opener_in, &got[..n]);
    match opener.next_packet(&mut opener_in).unwrap() {
        Opened::Packet(p) => {
            assert_eq!(p.msg_type(), msg::DISCONNECT);
            assert_eq!(p.payload()[1..5], msg::reason::MAC_ERROR.to_be_bytes());
        }
        other => panic!("{other:?}"),
    }
}

/// A read loop over the public API that returns the packet it waited for
/// (E0499 if it returned the borrowing result from inside the loop: the
/// input buffer keeps the packet for after it).
fn next_packet_from<'a>(
    opener: &mut Opener,
    input: &'a mut InputBuffer,
    wire: &mut &[u8],
) -> io::Result<Packet<'a>> {
    loop {
        match opener.next_packet(input).map_err(io::Error::other)? {
            Opened::Packet(_) => break,
            Opened::NeedMore(_) if !wire.is_empty() => {
                let n = opener.feed(input, wire);
                *wire = &wire[n..];
            }
            other => return Err(io::Error::other(format!("{other:?}"))),
        }
    }
    Ok(input.packet().expect("ready"))
}

#[test]
fn finding_13_a_read_loop_over_the_public_api_returns_its_packet() {
    let wire = clear_stream(&[&[msg::IGNORE, 1], &[msg::DEBUG, 2]]);
    let mut rest = &wire[..];
    let mut opener = Opener::new();
    let mut opener_in = InputBuffer::new();
    assert_eq!(
        next_packet_from(&mut opener, &mut opener_in, &mut rest)
            .unwrap()
            .payload(),
        [2, 1]
    );
    assert_eq!(
        next_packet_from(&mut opener, &mut opener_in, &mut rest)
            .unwrap()
            .payload(),
        [4, 2]
    );
}

#[test]
fn a_write_that_makes_no_progress_fails_after_the_write_timeout() {
    let mut s = Scripted::new(vec![]);
    s.write_error = Some(io::ErrorKind::WouldBlock);
    s.write_tick = Duration::from_millis(400);
    let mut p = s.packetizer();
    p.set_write_timeout(Some(2 * SEC));
    let err = p.send_message(&[msg::IGNORE]).unwrap_err();
    assert!(
        matches!(err, Error::WriteStalled { waited } if waited >= 2 * SEC),
        "{err:?}"
    );
    let later = p.send_message(&[msg::IGNORE]).unwrap_err();
    assert!(
        matches!(later.cause(), Error::WriteStalled { .. }),
        "{later:?}"
    );
}

/// Reads return `WouldBlock` at once for 100 ms of wall time, then EOF.
struct NonBlocking {
    until: Instant,
    reads: Arc<AtomicUsize>,
}

impl Read for NonBlocking {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        if Instant::now() < self.until {
            Err(io::ErrorKind::WouldBlock.into())
        } else {
            Ok(0)
        }
    }
}

impl Write for NonBlocking {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_non_blocking_stream_is_polled_not_spun_on() {
    let reads = Arc::new(AtomicUsize::new(0));
    let stream = NonBlocking {
        until: Instant::now() + Duration::from_millis(100),
        reads: reads.clone(),
    };
    let mut p = Packetizer::new(stream);
    assert!(matches!(p.read_message(), Err(Error::Closed)));
    // A back-off of 5 ms gives about 20 reads; a spin, hundreds of thousands.
    let n = reads.load(Ordering::SeqCst);
    assert!(n < 1_000, "{n} reads in 100 ms");
}

#[test]
fn a_tcp_write_into_a_peer_that_never_reads_fails_after_the_write_timeout() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let stream = std::net::TcpStream::connect(addr).unwrap();
    let _peer = listener.accept().unwrap(); // accepted, never read
    let mut p = Packetizer::tcp(stream).unwrap();
    p.set_write_timeout(Some(Duration::from_millis(300)));
    let chunk = vec![msg::CHANNEL_DATA; 200_000];
    let err = loop {
        if let Err(e) = p.send_message(&chunk) {
            break e;
        }
    };
    assert!(matches!(err, Error::WriteStalled { .. }), "{err:?}");
    assert!(matches!(
        p.send_message(&[2]).unwrap_err().cause(),
        Error::WriteStalled { .. }
    ));
}

#[test]
fn filled_without_a_fresh_offer_counts_nothing() {
    // A large packet, taken out (its buffer shrinks once empty), then a
    // `filled` with no `unfilled` before it: nothing is counted, no panic.
    let mut sealer = Sealer::new();
    let mut wire = Vec::new();
    sealer
        .seal(&vec![msg::CHANNEL_DATA; 200_000], &mut wire)
        .unwrap();
    let mut o = Opener::new();
    let mut o_in = InputBuffer::new();
    let mut at = 0;
    while at < wire.len() {
        let room = o.unfilled(&mut o_in);
        let n = room.len().min(wire.len() - at);
        room[..n].copy_from_slice(&wire[at..at + n]);
        o.filled(&mut o_in, n);
        at += n;
        if let Opened::Packet(p) = o.next_packet(&mut o_in).unwrap() {
            assert_eq!(p.payload().len(), 200_000);
        }
    }
    assert!(matches!(
        o.next_packet(&mut o_in).unwrap(),
        Opened::NeedMore(_)
    ));
    o.filled(&mut o_in, 16);
    o.filled(&mut o_in, 16);
    assert_eq!(o_in.buffered(), 0);
    assert!(matches!(
        o.next_packet(&mut o_in).unwrap(),
        Opened::NeedMore(_)
    ));
}
