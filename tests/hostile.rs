//! Hostile peers over 127.0.0.1 TCP. Each scenario must end with its
//! documented error, without a panic, within a watchdog's limit (a hang
//! detector, not a speed test) and within a bound on the memory the client
//! allocates, measured by a counting allocator.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use common::{clear_stream, keys_for};
use ssh_packetizer::{
    CipherAlgorithm as C, CompressionAlgorithm as Z, Config, Error, Keys, MacAlgorithm as M,
    Packetizer, RekeyLimits, Sealer,
};

/// Counts live heap bytes and their peak.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        unsafe { System.dealloc(p, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `client` against a peer that writes `script` (ignoring write errors:
/// the client may hang up first) and returns the client's result and the
/// most heap the process held above where it started.
fn against<T: Send + 'static>(
    script: impl FnOnce(TcpStream) + Send + 'static,
    client: impl FnOnce(Packetizer<TcpStream>) -> T + Send + 'static,
) -> (T, usize) {
    against_with(Config::client(), script, client)
}

/// As [`against`], the client configured with `config`.
fn against_with<T: Send + 'static>(
    config: Config,
    script: impl FnOnce(TcpStream) + Send + 'static,
    client: impl FnOnce(Packetizer<TcpStream>) -> T + Send + 'static,
) -> (T, usize) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let peer = thread::spawn(move || script(listener.accept().unwrap().0));
    let (done, result) = mpsc::channel();
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    thread::spawn(move || {
        let p = Packetizer::tcp_with_config(TcpStream::connect(addr).unwrap(), config).unwrap();
        let _ = done.send(client(p));
    });
    let out = result
        .recv_timeout(Duration::from_secs(60))
        .expect("the client hung on a hostile peer");
    let peak = PEAK.load(Ordering::Relaxed).saturating_sub(base);
    peer.join().unwrap();
    (out, peak)
}

const MIB: usize = 1 << 20;

/// Reads messages until one fails; returns the error.
fn read_until_error(p: &mut Packetizer<TcpStream>) -> Error {
    loop {
        if let Err(e) = p.read_message() {
            return e;
        }
    }
}

// The scenarios run one after another in one test, so the allocator's
// figures belong to one scenario at a time.
#[test]
fn hostile_peers() {
    lengths_out_of_bounds();
    a_drip_cannot_hold_the_handshake();
    an_endless_identification_line();
    thousands_of_pre_banner_lines();
    a_thousand_long_lines_before_the_identification();
    a_zlib_bomb();
    a_flood_past_the_rekey_grace();
    a_stream_cut_at_every_offset();
}

fn lengths_out_of_bounds() {
    for len in [u32::MAX, 300_000] {
        let (err, peak) = against(
            move |mut s| {
                let _ = s.write_all(&len.to_be_bytes());
                thread::sleep(Duration::from_millis(200));
            },
            |mut p| read_until_error(&mut p),
        );
        assert!(
            matches!(err, Error::BadPacketLength { len: l, max: 262_144 } if l == len),
            "{err:?}"
        );
        assert!(peak < MIB, "{len}: {peak} bytes");
    }
}

fn a_drip_cannot_hold_the_handshake() {
    let (err, _) = against(
        |mut s| {
            // A packet announcing 200 KB, then a byte every 2 ms.
            let _ = s.write_all(&200_004u32.to_be_bytes());
            for _ in 0..2000 {
                if s.write_all(&[0]).is_err() {
                    return;
                }
                thread::sleep(Duration::from_millis(2));
            }
        },
        |mut p| {
            p.start_handshake(Duration::from_millis(300));
            read_until_error(&mut p)
        },
    );
    assert!(matches!(err, Error::HandshakeTimeout), "{err:?}");
}

fn an_endless_identification_line() {
    let (err, peak) = against(
        |mut s| {
            let chunk = [b'a'; 64 * 1024];
            for _ in 0..64 {
                if s.write_all(&chunk).is_err() {
                    return; // the client hung up: good
                }
            }
        },
        |mut p| p.read_identification().map(|_| ()).unwrap_err(),
    );
    assert!(matches!(err, Error::LineTooLong { max: 8192 }), "{err:?}");
    assert!(peak < MIB, "{peak} bytes");
}

fn thousands_of_pre_banner_lines() {
    let (err, peak) = against(
        |mut s| {
            for _ in 0..5000 {
                if s.write_all(b"please wait, loading the motd\r\n").is_err() {
                    return;
                }
            }
        },
        |mut p| p.read_identification().map(|_| ()).unwrap_err(),
    );
    assert!(matches!(err, Error::BadIdentification { .. }), "{err:?}");
    // 1024 short lines are kept until the error; never the other 4000.
    assert!(peak < 2 * MIB, "{peak} bytes");
}

fn a_thousand_long_lines_before_the_identification() {
    // 1023 lines of 8 KiB (8 MiB in all), then a good identification: the
    // client keeps 64 KiB of them and a flag, not all 8 MiB.
    let (id, peak) = against(
        |mut s| {
            let mut line = vec![b'm'; 8190];
            line.extend_from_slice(b"\r\n");
            for _ in 0..1023 {
                if s.write_all(&line).is_err() {
                    return;
                }
            }
            let _ = s.write_all(b"SSH-2.0-x\r\n");
        },
        |mut p| p.read_identification().unwrap(),
    );
    assert!(id.pre_banner_truncated);
    assert!(id.pre_banner.iter().map(Vec::len).sum::<usize>() <= 64 * 1024);
    assert!(peak < 2 * MIB, "{peak} bytes");
}

fn zlib_keys() -> Keys {
    keys_for(C::Aes128Ctr, M::HmacSha256Etm, 1).with_compression(Z::Zlib)
}

fn a_zlib_bomb() {
    // 3 MiB of zeros compressed into a few KB, sealed before measuring.
    let mut bomb = Vec::new();
    let mut sealer = Sealer::new();
    sealer.set_max_packet_len(4 * MIB).unwrap();
    sealer.set_keys(zlib_keys()).unwrap();
    sealer.seal(&vec![94u8; 3 * MIB], &mut bomb).unwrap();
    assert!(bomb.len() < 10_000);
    let (err, peak) = against(
        move |mut s| {
            let _ = s.write_all(&bomb);
            thread::sleep(Duration::from_millis(200));
        },
        |mut p| {
            p.set_inbound_cipher(zlib_keys()).unwrap();
            read_until_error(&mut p)
        },
    );
    assert!(matches!(err, Error::Decompress { .. }), "{err:?}");
    assert!(peak < 2 * MIB, "{peak} bytes");
}

fn a_flood_past_the_rekey_grace() {
    let keys = || keys_for(C::ChaCha20Poly1305, M::None, 5);
    let mut flood = Vec::new();
    let mut sealer = Sealer::new();
    sealer.set_keys(keys()).unwrap();
    for _ in 0..10_000 {
        sealer.seal(&[94, 0, 0, 0, 0, 0, 0, 0], &mut flood).unwrap();
    }
    let limits = RekeyLimits {
        max_bytes: Some(1),
        grace_packets: 100,
        ..RekeyLimits::default()
    };
    let (outcome, peak) = against_with(
        Config::client().rekey_limits(limits),
        move |mut s| {
            let _ = s.write_all(&flood);
            thread::sleep(Duration::from_millis(200));
        },
        move |mut p| {
            p.set_inbound_cipher(keys()).unwrap();
            p.send_newkeys(keys()).unwrap();
            p.send_message(&[20]).unwrap(); // our KEXINIT: a rekey is wanted now
            let mut read = 0;
            let err = loop {
                match p.read_message() {
                    Ok(_) => read += 1,
                    // Once, for the request: not fatal.
                    Err(Error::NeedRekey) => {}
                    Err(e) => break e,
                }
            };
            (read, err)
        },
    );
    let (read, err) = outcome;
    assert!(matches!(err, Error::RekeyIgnored), "{err:?}");
    assert_eq!(
        read, 100,
        "the request came before the first packet: 100 are allowed"
    );
    assert!(peak < MIB, "{peak} bytes");
}

fn a_stream_cut_at_every_offset() {
    let wire = clear_stream(&[&[20; 40], &[94; 3], &[94; 100]]);
    let ends = [56usize, 72, 184];
    assert_eq!(wire.len(), 184);
    for cut in 0..=wire.len() {
        let prefix = wire[..cut].to_vec();
        let (err, _) = against(
            move |mut s| {
                let _ = s.write_all(&prefix);
            },
            |mut p| read_until_error(&mut p),
        );
        let start = ends
            .iter()
            .copied()
            .filter(|&e| e <= cut)
            .max()
            .unwrap_or(0);
        if start == cut {
            assert!(matches!(err, Error::Closed), "cut {cut}: {err:?}");
        } else {
            assert!(
                matches!(err, Error::Eof { got, .. } if got == cut - start),
                "cut {cut}: {err:?}"
            );
        }
    }
}
