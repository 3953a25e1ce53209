//! The split halves and when the shared core wakes its waiters.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::*;
use crate::codec::{InputBuffer, Opened};

/// A driver on a hand-moved clock that counts its wake-ups.
struct Counting {
    now: Mutex<Instant>,
    wakes: AtomicUsize,
}

impl SplitDriver for Counting {
    fn now(&self) -> Instant {
        *self.now.lock().unwrap()
    }

    fn wake(&self) {
        self.wakes.fetch_add(1, Ordering::SeqCst);
    }
}

fn split(config: Config) -> (Inbound, Outbound, Arc<Counting>) {
    let now = Instant::now();
    let driver = Arc::new(Counting {
        now: Mutex::new(now),
        wakes: AtomicUsize::new(0),
    });
    let (inbound, outbound) =
        Connection::new(config, now).split(InputBuffer::new(), driver.clone());
    (inbound, outbound, driver)
}

fn wakes(driver: &Counting) -> usize {
    driver.wakes.load(Ordering::SeqCst)
}

fn keys(seed: u8) -> crate::keys::Keys {
    crate::keys::Keys::new(
        crate::algorithm::CipherAlgorithm::Aes128Gcm,
        crate::algorithm::MacAlgorithm::None,
        crate::keys::KeyMaterial {
            key: &[seed; 16],
            iv: &[seed ^ 0x55; 12],
            mac_key: &[],
        },
    )
    .unwrap()
}

/// Moves what `out` has pending into `to`'s input, the halves' way.
fn carry(out: &mut Outbound, to: &mut Inbound) {
    let bytes = out.to_write().unwrap().to_vec();
    out.wrote(bytes.len());
    let room = to.recv_buf();
    room[..bytes.len()].copy_from_slice(&bytes);
    let now = to.connection().now();
    to.with(|c, input| c.recv_filled(input, bytes.len(), now));
}

/// Reads until the peer's NEWKEYS and installs `keys` after it.
fn take_newkeys(inbound: &mut Inbound, keys: crate::keys::Keys) {
    loop {
        match inbound.with(|c, input| match c.poll_packet(input).unwrap() {
            Opened::Packet(_) => None,
            Opened::AwaitingKeys => Some(true),
            _ => Some(false),
        }) {
            Some(true) => break,
            Some(false) => panic!("no NEWKEYS"),
            None => {}
        }
    }
    let now = inbound.connection().now();
    inbound.with(|c, _| c.set_inbound_keys(keys, now)).unwrap();
}

#[test]
fn outbound_writes_what_it_took_first_and_nothing_after_a_broken_write() {
    let (_, mut out, driver) = split(Config::client());
    let shared = out.connection().clone();
    shared.with(|c| c.send_message(&[msg::IGNORE, 1])).unwrap();
    let first = out.to_write().unwrap().to_vec();
    out.wrote(10);
    // Sealed after the take: it waits until the rest of the first is out.
    shared.with(|c| c.send_message(&[msg::IGNORE, 2])).unwrap();
    assert_eq!(out.to_write().unwrap(), &first[10..]);
    out.wrote(first.len());
    assert_eq!(out.in_flight(), 0);
    let second = out.to_write().unwrap().to_vec();
    assert_eq!(second.len(), first.len(), "the second message, whole");
    assert_eq!(wakes(&driver), 0, "sealing and writing wake nobody");
    // A failed write: the connection fails with it, waiters wake, nothing
    // more goes.
    let broken = std::io::Error::from(std::io::ErrorKind::BrokenPipe);
    let e = out.broke(Error::Io(broken));
    assert!(matches!(e, Error::Io(_)), "{e:?}");
    assert_eq!(wakes(&driver), 1);
    shared
        .with(|c| c.send_message(&[msg::IGNORE, 3]))
        .unwrap_err();
    let later = out.to_write().unwrap_err();
    assert!(matches!(later.cause(), Error::Io(_)), "{later:?}");
    assert_eq!(out.in_flight(), 0);
    let held = out.allocated();
    assert_eq!(out.release_idle(), held);
    assert_eq!(out.allocated(), 0);
}

#[test]
fn packets_cross_from_outbound_to_inbound_without_the_lock() {
    let (_, mut out, _) = split(Config::client());
    let (mut inbound, _, driver) = split(Config::server());
    for i in 0..3u8 {
        out.connection()
            .with(|c| c.send_message(&[msg::IGNORE, i]))
            .unwrap();
    }
    let bytes = out.to_write().unwrap().to_vec();
    out.wrote(bytes.len());
    // Read in two pieces, as a socket might give them.
    let mut fed = 0;
    while fed < bytes.len() {
        let room = inbound.recv_buf();
        let n = room.len().min(bytes.len() - fed).min(7);
        room[..n].copy_from_slice(&bytes[fed..fed + n]);
        fed += n;
        let now = inbound.connection().now();
        inbound.with(|c, input| c.recv_filled(input, n, now));
    }
    for i in 0..3u8 {
        let found = inbound.with(|c, input| matches!(c.poll_packet(input), Ok(Opened::Packet(_))));
        assert!(found);
        assert_eq!(
            inbound.input().packet().unwrap().payload(),
            [msg::IGNORE, i]
        );
    }
    assert_eq!(wakes(&driver), 0, "the reader's reads wake nobody");
}

#[test]
fn a_read_that_ends_the_connection_wakes_the_waiters() {
    let (mut inbound, _, driver) = split(Config::server());
    // A packet length no peer may send.
    let garbage = [0xff; 64];
    let now = inbound.connection().now();
    inbound.with(|c, input| c.feed(input, &garbage, now));
    assert!(inbound.with(|c, input| c.poll_packet(input).is_err()));
    assert_eq!(wakes(&driver), 1);
    // Later reads of the failed core change nothing: no more wake-ups.
    assert!(inbound.with(|c, input| c.poll_packet(input).is_err()));
    assert_eq!(wakes(&driver), 1);
}

#[test]
fn controls_wake_only_for_what_a_waiter_waits_for() {
    let (_, out, driver) = split(Config::client());
    let shared = out.connection();
    // A nearer deadline: the reader must re-arm its timer.
    shared.start_handshake(Duration::from_secs(10));
    assert_eq!(wakes(&driver), 1);
    // A deadline moved away or removed: the reader's timer fires early and
    // re-arms by itself.
    shared.complete_handshake();
    assert_eq!(wakes(&driver), 1);
    // Inspection changes nothing.
    assert_eq!(shared.with(|c| c.seqno_out()), 0);
    assert!(!shared.need_rekey());
    assert_eq!(wakes(&driver), 1);
    // Closing: every waiter must see it.
    shared.close();
    assert_eq!(wakes(&driver), 2);
}

#[test]
fn a_wanted_rekey_wakes_the_reader_that_reports_it() {
    let (mut client_in, mut client_out, client) = split(Config::client());
    let (mut server_in, mut server_out, _) = split(Config::server());
    // The initial kex: before it, a rekey request is a no-op.
    for (out, seed) in [(&mut client_out, 1), (&mut server_out, 2)] {
        let now = out.connection().now();
        out.connection().with(|c| {
            c.send_message(&[msg::KEXINIT]).unwrap();
            c.send_newkeys(keys(seed), now).unwrap();
        });
    }
    carry(&mut client_out, &mut server_in);
    carry(&mut server_out, &mut client_in);
    take_newkeys(&mut server_in, keys(1));
    take_newkeys(&mut client_in, keys(2));
    assert!(client_out.connection().with(|c| c.is_initial_kex_done()));
    let before = wakes(&client);
    client_out.connection().with(|c| c.request_rekey());
    assert_eq!(wakes(&client), before + 1);
    // Asked again while wanted: nothing new to report.
    client_out.connection().with(|c| c.request_rekey());
    assert_eq!(wakes(&client), before + 1);
}

#[test]
fn the_hold_emptying_wakes_the_senders_waiting_for_it() {
    let (_, out, driver) = split(Config::client());
    let shared = out.connection();
    let now = shared.now();
    shared.with(|c| {
        c.send_message(&[msg::KEXINIT]).unwrap();
        assert_eq!(c.send_message(&[msg::CHANNEL_DATA, 1]).unwrap(), Sent::Held);
    });
    let before = wakes(&driver);
    shared.with(|c| c.send_newkeys(keys(1), now)).unwrap();
    assert!(wakes(&driver) > before, "the held message went out");
    assert_eq!(shared.with(|c| c.held_bytes()), 0);
}

#[test]
fn a_deadline_that_passes_while_output_is_taken_wakes_the_reader() {
    let (_, mut out, driver) = split(Config::client());
    out.connection().start_handshake(Duration::from_secs(1));
    out.connection()
        .with(|c| c.send_message(&[msg::IGNORE]))
        .unwrap();
    let woken = wakes(&driver);
    *driver.now.lock().unwrap() += Duration::from_secs(2);
    // Taking the output counts as traffic at the driver's time, which runs
    // the timers: the connection fails there, not in the reader's loop.
    let _ = out.to_write();
    assert!(out.connection().with(|c| c.is_closed()));
    assert_eq!(wakes(&driver), woken + 1, "the waiting reader must see it");
}
