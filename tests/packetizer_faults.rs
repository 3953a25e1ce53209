//! Faults through the Packetizer: EOF at every offset, one-byte reads, read
//! timeouts mid-packet, broken pipes, and what it does after a fatal error.

mod common;

use std::io::ErrorKind;
use std::time::Duration;

use common::{clear_stream, keys_for, Scripted, Step};
use ssh_packetizer::{CipherAlgorithm as C, Error, MacAlgorithm as M, Packetizer, Sealer};

const TICK: Duration = Duration::from_millis(100);

fn payloads() -> Vec<Vec<u8>> {
    vec![
        vec![20; 30],
        vec![94; 1],
        vec![94, 1, 2, 3, 4, 5],
        vec![90; 300],
    ]
}

/// `payloads()` sealed under aes128-ctr + hmac-sha2-256 (encrypt-and-MAC,
/// so the length is only known after a whole block), with packet ranges.
fn ctr_stream() -> (Vec<u8>, Vec<std::ops::Range<usize>>) {
    let mut sealer = Sealer::new();
    sealer
        .set_keys(keys_for(C::Aes128Ctr, M::HmacSha256, 1))
        .unwrap();
    let (mut wire, mut ranges) = (Vec::new(), Vec::new());
    for p in payloads() {
        let start = wire.len();
        sealer.seal(&p, &mut wire).unwrap();
        ranges.push(start..wire.len());
    }
    (wire, ranges)
}

fn ctr_packetizer(steps: Vec<Step>) -> Packetizer<Scripted> {
    let mut p = Scripted::new(steps).packetizer();
    p.set_inbound_cipher(keys_for(C::Aes128Ctr, M::HmacSha256, 1))
        .unwrap();
    p
}

#[test]
fn eof_at_every_offset_reports_exactly_what_arrived() {
    let (wire, ranges) = ctr_stream();
    for cut in 0..=wire.len() {
        let mut p = ctr_packetizer(vec![Step::Data(wire[..cut].to_vec())]);
        let mut read = 0;
        let err = loop {
            match p.read_message() {
                Ok(m) => {
                    assert_eq!(m.payload(), payloads()[read]);
                    read += 1;
                }
                Err(e) => break e,
            }
        };
        // Every whole packet before the cut came out.
        let whole = ranges.iter().filter(|r| r.end <= cut).count();
        assert_eq!(read, whole, "cut at {cut}");
        match ranges.iter().find(|r| r.start < cut && cut < r.end) {
            None => assert!(matches!(err, Error::Closed), "cut at {cut}: {err:?}"),
            Some(r) => {
                let got = cut - r.start;
                // Encrypt-and-MAC: the length is known after one AES block.
                let needed = if got < 16 { 16 } else { r.len() };
                assert!(
                    matches!(err, Error::Eof { needed: n, got: g } if n == needed && g == got),
                    "cut at {cut}: {err:?}, wanted needed {needed} got {got}"
                );
            }
        }
        assert!(p.connection().is_closed());
        // Later calls report the same end: Closed again after a clean one,
        // the Eof as the cause after a cut packet.
        for later in [
            p.read_message().map(|_| ()).unwrap_err(),
            p.send_message(b"\x02").map(|_| ()).unwrap_err(),
        ] {
            match &err {
                Error::Closed => assert!(matches!(later, Error::Closed), "{later:?}"),
                first => {
                    assert!(matches!(later, Error::Failed(_)), "{later:?}");
                    assert_eq!(later.cause().to_string(), first.to_string());
                }
            }
        }
    }
}

#[test]
fn one_byte_per_read_loses_nothing() {
    let (wire, _) = ctr_stream();
    let mut s = Scripted::new(vec![Step::Data(wire)]);
    s.max_read = 1;
    let mut p = s.packetizer();
    p.set_inbound_cipher(keys_for(C::Aes128Ctr, M::HmacSha256, 1))
        .unwrap();
    for expected in payloads() {
        assert_eq!(p.read_message().unwrap().payload(), expected);
    }
    assert!(matches!(p.read_message(), Err(Error::Closed)));
}

#[test]
fn read_timeouts_mid_packet_lose_nothing() {
    let (wire, ranges) = ctr_stream();
    // Timeouts between every few bytes, inside and between packets.
    let mut steps = Vec::new();
    for chunk in wire.chunks(7) {
        steps.push(Step::Data(chunk.to_vec()));
        steps.push(Step::Tick(TICK));
        steps.push(Step::Fail(ErrorKind::Interrupted));
    }
    let mut p = ctr_packetizer(steps);
    let mut read = 0;
    while read < ranges.len() {
        assert_eq!(p.read_message().unwrap().payload(), payloads()[read]);
        read += 1;
    }
}

#[test]
fn identification_then_first_packet_in_the_same_segment() {
    let mut bytes =
        b"welcome to the server\r\nsecond line\nSSH-2.0-OpenSSH_9.6 Debian\r\n".to_vec();
    bytes.extend(clear_stream(&[&[20, 1, 2, 3], &[21]]));
    let mut p = Scripted::new(vec![Step::Data(bytes)]).packetizer();
    let id = p.read_identification().unwrap();
    assert_eq!(id.as_str(), "SSH-2.0-OpenSSH_9.6 Debian");
    assert_eq!(id.software_version(), "OpenSSH_9.6");
    assert_eq!(
        id.pre_banner,
        vec![b"welcome to the server".to_vec(), b"second line".to_vec()]
    );
    assert_eq!(p.read_message().unwrap().payload(), [20, 1, 2, 3]);
    assert_eq!(p.read_message().unwrap().msg_type(), 21);
}

#[test]
fn identification_line_with_a_bare_lf() {
    let mut p = Scripted::new(vec![Step::Data(b"SSH-2.0-old\nrest".to_vec())]).packetizer();
    assert_eq!(p.read_identification().unwrap().line, b"SSH-2.0-old");
    assert_eq!(p.read_all(4, false).unwrap(), b"rest");
}

#[test]
fn identification_lines_up_to_8192_bytes_are_taken_as_openssh_takes_them() {
    // Changed in 0.2.0: lines of 256 to 8192 bytes were refused; OpenSSH
    // 9.2 takes them, and so do we (we still send at most 255).
    let mut line = b"SSH-2.0-".to_vec();
    line.resize(8192, b'x');
    let mut wire = line.clone();
    wire.extend_from_slice(b"\r\n");
    let mut p = Scripted::new(vec![Step::Data(wire.clone())]).packetizer();
    assert_eq!(p.read_identification().unwrap().line, line);
    // One byte more is refused.
    wire.insert(10, b'x');
    let mut p = Scripted::new(vec![Step::Data(wire)]).packetizer();
    assert!(matches!(
        p.read_identification(),
        Err(Error::LineTooLong { max: 8192 })
    ));
    assert!(p.connection().is_closed());
}

#[test]
fn identification_comments_with_tabs_or_utf8_and_cr_cr_lf_endings_are_taken() {
    for (wire, line) in [
        (
            &b"SSH-2.0-x_1 a\tcomment\r\n"[..],
            &b"SSH-2.0-x_1 a\tcomment"[..],
        ),
        (b"SSH-2.0-x_1 caf\xc3\xa9\r\n", b"SSH-2.0-x_1 caf\xc3\xa9"),
        (b"SSH-2.0-x_1\r\r\n", b"SSH-2.0-x_1"),
    ] {
        let mut bytes = wire.to_vec();
        bytes.extend(clear_stream(&[&[20, 1]]));
        let mut p = Scripted::new(vec![Step::Data(bytes)]).packetizer();
        let id = p.read_identification().unwrap();
        assert_eq!(id.line, line, "{wire:?}");
        assert_eq!(id.software_version(), "x_1");
        assert_eq!(p.read_message().unwrap().payload(), [20, 1]);
    }
}

#[test]
fn a_cr_not_followed_by_lf_is_refused_in_any_line() {
    for bad in [&b"SSH-2.0-a\rb\r\n"[..], b"motd\rx\nSSH-2.0-a\r\n"] {
        let mut p = Scripted::new(vec![Step::Data(bad.to_vec())]).packetizer();
        assert!(
            matches!(
                p.read_identification(),
                Err(Error::BadIdentification { .. })
            ),
            "{bad:?}"
        );
        assert!(p.connection().is_closed());
    }
}

#[test]
fn a_line_without_end_is_refused_at_its_bound_not_buffered_forever() {
    let mut p = Scripted::new(vec![Step::Data(vec![b'a'; 100_000])]).packetizer();
    assert!(matches!(
        p.read_line(),
        Err(Error::LineTooLong { max: 8192 })
    ));
    let mut p = Scripted::new(vec![Step::Data(vec![b'a'; 100_000])]).packetizer();
    assert!(matches!(
        p.read_identification(),
        Err(Error::LineTooLong { max: 8192 })
    ));
}

#[test]
fn too_many_pre_banner_lines_are_refused() {
    // As OpenSSH 9.2: the identification must come within the first 1024
    // lines, so at most 1023 before it (changed in 0.2.0: 1024 were taken).
    let mut bytes = b"hello\r\n".repeat(1024);
    bytes.extend_from_slice(b"SSH-2.0-x\r\n");
    let mut p = Scripted::new(vec![Step::Data(bytes)]).packetizer();
    assert!(matches!(
        p.read_identification(),
        Err(Error::BadIdentification { .. })
    ));
    let mut bytes = b"hello\r\n".repeat(1023);
    bytes.extend_from_slice(b"SSH-2.0-x\r\n");
    let mut p = Scripted::new(vec![Step::Data(bytes)]).packetizer();
    let id = p.read_identification().unwrap();
    assert_eq!(
        (id.pre_banner.len(), id.pre_banner_truncated),
        (1023, false)
    );
    // A bare "SSH-" is just another line, as OpenSSH takes it.
    let wire = b"SSH-\r\nSSH-2.0-y\r\n".to_vec();
    let mut p = Scripted::new(vec![Step::Data(wire)]).packetizer();
    let id = p.read_identification().unwrap();
    assert_eq!(id.as_str(), "SSH-2.0-y");
    assert_eq!(id.pre_banner, vec![b"SSH-".to_vec()]);
}

#[test]
fn long_pre_banner_lines_are_kept_up_to_64_kib_then_dropped_with_a_flag() {
    // Changed in 0.2.0: all 1024 lines were kept (8.1 MiB from a hostile
    // server); now whole lines up to 64 KiB, and a flag, never an error.
    let mut line = vec![b'm'; 8000];
    line.extend_from_slice(b"\r\n");
    let mut steps: Vec<Step> = (0..1023).map(|_| Step::Data(line.clone())).collect();
    steps.push(Step::Data(b"SSH-2.0-x\r\n".to_vec()));
    let mut p = Scripted::new(steps).packetizer();
    let id = p.read_identification().unwrap();
    let kept: usize = id.pre_banner.iter().map(Vec::len).sum();
    assert!(
        kept <= ssh_packetizer::Identification::MAX_PRE_BANNER_KEPT,
        "{kept}"
    );
    assert_eq!(id.pre_banner.len(), 8);
    assert!(id.pre_banner_truncated);
    assert_eq!(id.line, b"SSH-2.0-x");
}

#[test]
fn identification_with_nul_or_wrong_version_is_refused() {
    for bad in [&b"SSH-2.0-a\0b\r\n"[..], b"SSH-1.5-old\r\n"] {
        let mut p = Scripted::new(vec![Step::Data(bad.to_vec())]).packetizer();
        assert!(
            matches!(
                p.read_identification(),
                Err(Error::BadIdentification { .. })
            ),
            "{bad:?}"
        );
    }
}

#[test]
fn read_line_survives_invalid_utf8() {
    let mut p = Scripted::new(vec![Step::Data(b"caf\xe9\r\nnext\n".to_vec())]).packetizer();
    assert_eq!(p.read_line().unwrap(), "caf\u{fffd}");
    assert_eq!(p.read_line().unwrap(), "next");
}

#[test]
fn eof_in_the_middle_of_a_line_or_read_all() {
    let mut p = Scripted::new(vec![Step::Data(b"SSH-2.0-par".to_vec())]).packetizer();
    assert!(matches!(
        p.read_identification(),
        Err(Error::Eof { got: 11, .. })
    ));
    let mut p = Scripted::new(vec![Step::Data(b"abc".to_vec())]).packetizer();
    assert!(matches!(
        p.read_all(10, false),
        Err(Error::Eof { needed: 10, got: 3 })
    ));
    let mut p = Scripted::new(vec![]).packetizer();
    assert!(matches!(
        p.read_all(10, false),
        Err(Error::Eof { needed: 10, got: 0 })
    ));
}

#[test]
fn a_failed_write_keeps_its_kind_and_closes() {
    let mut s = Scripted::new(vec![]);
    s.write_error = Some(ErrorKind::BrokenPipe);
    let mut p = s.packetizer();
    let err = p.send_message(b"\x02").unwrap_err();
    assert_eq!(err.io_kind(), Some(ErrorKind::BrokenPipe));
    assert!(p.connection().is_closed());
    for later in [
        p.send_message(b"\x02").map(|_| ()).unwrap_err(),
        p.read_message().map(|_| ()).unwrap_err(),
    ] {
        assert!(matches!(later, Error::Failed(_)), "{later:?}");
        assert_eq!(later.io_kind(), Some(ErrorKind::BrokenPipe));
    }
}

#[test]
fn a_disconnect_given_up_on_a_stalled_peer_is_never_written_again() {
    // A packet length no peer may send: the read fails and a DISCONNECT is
    // queued; the peer has stopped reading after 10 bytes of it.
    let mut s = Scripted::new(vec![Step::Data(vec![0xff; 64])]);
    s.write_limit = Some(10);
    s.write_tick = Duration::from_millis(30);
    let written = s.written.clone();
    let mut p = s.packetizer();
    let first = p.read_message().map(|_| ()).unwrap_err();
    assert!(first.disconnect_reason().is_some(), "{first:?}");
    assert_eq!(
        written.lock().unwrap().len(),
        10,
        "the start of the DISCONNECT"
    );
    // The peer reads again; later calls answer the first error and write
    // nothing: the rest of a half-written packet, or the whole of it again,
    // would be garbage on the wire.
    p.get_mut().write_limit = None;
    for _ in 0..2 {
        let later = p.read_message().map(|_| ()).unwrap_err();
        assert!(matches!(later, Error::Failed(_)), "{later:?}");
    }
    assert_eq!(written.lock().unwrap().len(), 10);
}

#[test]
fn local_misuse_does_not_close() {
    let mut p = Scripted::new(vec![]).packetizer();
    assert!(matches!(p.send_message(b""), Err(Error::EmptyPayload)));
    assert!(matches!(
        p.send_message(&vec![1; 300_000]),
        Err(Error::PayloadTooLarge { .. })
    ));
    assert!(!p.connection().is_closed());
    p.send_message(b"\x02").unwrap();
}

#[test]
fn a_read_error_keeps_its_kind_and_closes() {
    let mut p = Scripted::new(vec![Step::Fail(ErrorKind::ConnectionReset)]).packetizer();
    let err = p.read_message().unwrap_err();
    assert_eq!(err.io_kind(), Some(ErrorKind::ConnectionReset));
    assert!(p.connection().is_closed());
}

#[test]
fn close_makes_every_call_closed() {
    let mut p = Scripted::new(vec![Step::Data(clear_stream(&[&[2]]))]).packetizer();
    p.close();
    assert!(matches!(p.read_message(), Err(Error::Closed)));
    assert!(matches!(p.send_message(b"\x02"), Err(Error::Closed)));
    assert!(matches!(p.write_all(b"x"), Err(Error::Closed)));
    assert!(matches!(p.read_all(1, false), Err(Error::Closed)));
    assert!(matches!(
        p.send_newkeys(keys_for(C::Aes128Ctr, M::HmacSha1, 0)),
        Err(Error::Closed)
    ));
}
