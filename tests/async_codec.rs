//! The tokio-util codec (feature `tokio`): `Framed` in every suite, the
//! NEWKEYS-and-next-packet-in-one-read case, rekeys surfaced without
//! blocking the encoder, holds during our kex, faults, and the hand-over
//! from a Packetizer.

mod common;

use std::time::Duration;

use common::{keys_for, payload, supported_suites};
use futures_util::{SinkExt, StreamExt};
use ssh_packetizer::tokio::{PacketCodec, Packetizer, BACKPRESSURE_BOUNDARY};
use ssh_packetizer::{
    msg, CipherAlgorithm as C, Config, Error, Event, MacAlgorithm as M, RekeyLimits, Sealer,
};
use tokio::io::{AsyncWriteExt, DuplexStream};
use tokio_util::codec::Framed;

type Pipe = Framed<DuplexStream, PacketCodec>;

fn message(i: usize, len: usize) -> Vec<u8> {
    let mut m = payload(len, i as u64 + 3);
    m[0] = msg::CHANNEL_DATA;
    m
}

fn size_of(i: usize) -> usize {
    match i % 7 {
        0 => 32 * 1024,
        1 => 1,
        _ => (i * 7919) % 5000 + 1,
    }
}

fn framed_pair() -> (Pipe, Pipe) {
    framed_pair_with(Config::client())
}

/// As [`framed_pair`], the first codec configured with `config`.
fn framed_pair_with(config: Config) -> (Pipe, Pipe) {
    let (a, b) = tokio::io::duplex(64 * 1024);
    let mut a = Framed::new(a, PacketCodec::new(config));
    a.set_backpressure_boundary(BACKPRESSURE_BOUNDARY);
    (a, Framed::new(b, PacketCodec::new(Config::server())))
}

/// `tx` sends NEWKEYS (by sending the keys); `rx` takes it and installs
/// them before polling again.
async fn switch(tx: &mut Pipe, rx: &mut Pipe, c: C, m: M, seed: u8) {
    tx.send(keys_for(c, m, seed)).await.unwrap();
    let newkeys = rx.next().await.unwrap().unwrap();
    assert_eq!(newkeys.msg_type(), msg::NEWKEYS);
    rx.codec_mut()
        .set_inbound_keys(keys_for(c, m, seed))
        .unwrap();
}

#[tokio::test]
async fn every_suite_through_framed_with_a_rekey_in_the_middle() {
    for (c, m) in supported_suites() {
        let (mut a, mut b) = framed_pair();
        switch(&mut a, &mut b, c, m, 1).await;
        switch(&mut b, &mut a, c, m, 2).await;
        for i in 0..60 {
            if i == 30 {
                switch(&mut a, &mut b, c, m, 3).await;
                switch(&mut b, &mut a, c, m, 4).await;
            }
            let sent = message(i, size_of(i));
            a.send(&sent[..]).await.unwrap();
            let got = b.next().await.unwrap().unwrap();
            assert_eq!(got.payload(), &sent[..], "{c}+{m}: {i}");
            b.send(got.into_payload()).await.unwrap();
            let echo = b_echo(&mut a).await;
            assert_eq!(echo, sent, "{c}+{m}: echo {i}");
        }
    }
}

async fn b_echo(a: &mut Pipe) -> Vec<u8> {
    a.next().await.unwrap().unwrap().payload().to_vec()
}

#[tokio::test]
async fn newkeys_and_the_next_packet_in_one_read() {
    let (c, m) = (C::Aes128Gcm, M::None);
    let (ours, mut theirs) = tokio::io::duplex(64 * 1024);
    let mut framed = Framed::new(ours, PacketCodec::new(Config::client()));
    // NEWKEYS and the first packet under the new keys, in one write: the
    // codec's first read takes both.
    let mut sealer = Sealer::new();
    let mut wire = Vec::new();
    sealer.seal_newkeys(keys_for(c, m, 7), &mut wire).unwrap();
    sealer.seal(&message(0, 300), &mut wire).unwrap();
    theirs.write_all(&wire).await.unwrap();
    let newkeys = framed.next().await.unwrap().unwrap();
    assert_eq!(newkeys.msg_type(), msg::NEWKEYS);
    // Both packets arrived in that read: the second waits in the codec.
    assert!(framed.codec().input().buffered() > 0);
    framed
        .codec_mut()
        .set_inbound_keys(keys_for(c, m, 7))
        .unwrap();
    // Keys installed before the next poll: the buffered packet comes out
    // without another byte from the peer.
    let next = tokio::time::timeout(Duration::from_secs(10), framed.next())
        .await
        .expect("decoded from the buffer, no read needed")
        .unwrap()
        .unwrap();
    assert_eq!(next.payload(), &message(0, 300)[..]);
    assert_eq!(next.seqno(), 1);
}

#[tokio::test]
async fn polling_before_the_keys_are_in_decodes_nothing() {
    let (c, m) = (C::ChaCha20Poly1305, M::None);
    let (ours, mut theirs) = tokio::io::duplex(64 * 1024);
    let mut framed = Framed::new(ours, PacketCodec::new(Config::client()));
    let mut sealer = Sealer::new();
    let mut wire = Vec::new();
    sealer.seal_newkeys(keys_for(c, m, 7), &mut wire).unwrap();
    sealer.seal(&message(0, 300), &mut wire).unwrap();
    theirs.write_all(&wire).await.unwrap();
    assert_eq!(
        framed.next().await.unwrap().unwrap().msg_type(),
        msg::NEWKEYS
    );
    // The documented mistake: Framed then waits for the peer, and the
    // packet under the new keys is not decoded with the old ones.
    let waited = tokio::time::timeout(Duration::from_millis(50), framed.next()).await;
    assert!(waited.is_err(), "nothing is decoded without the keys");
    assert!(framed.codec().connection().is_awaiting_keys());
}

#[tokio::test]
async fn a_spent_budget_asks_for_a_rekey_without_failing_a_send() {
    let (c, m) = (C::Aes128Ctr, M::HmacSha256Etm);
    let (mut a, mut b) = framed_pair_with(Config::client().rekey_limits(RekeyLimits {
        max_bytes: Some(64 * 1024),
        ..RekeyLimits::default()
    }));
    switch(&mut a, &mut b, c, m, 1).await;
    switch(&mut b, &mut a, c, m, 2).await;
    let mut wanted_at = None;
    for i in 0..20 {
        a.send(&message(i, 10_000)[..]).await.unwrap();
        if a.codec_mut().connection_mut().poll_event() == Some(Event::RekeyWanted) {
            wanted_at.get_or_insert(i);
        }
        assert_eq!(b.next().await.unwrap().unwrap().payload().len(), 10_000);
    }
    // 64 KiB of 10 KB messages: asked for on the seventh, once.
    assert_eq!(wanted_at, Some(6));
    assert!(a.codec_mut().connection_mut().need_rekey());
}

#[tokio::test]
async fn messages_sent_during_our_kex_are_held_and_follow_newkeys() {
    let (c, m) = (C::Aes256Gcm, M::None);
    let (mut a, mut b) = framed_pair();
    a.send(&[msg::KEXINIT, 1, 2, 3][..]).await.unwrap();
    a.send(&message(1, 100)[..]).await.unwrap();
    assert_eq!(a.codec().connection().held_bytes(), 100);
    assert_eq!(b.next().await.unwrap().unwrap().msg_type(), msg::KEXINIT);
    // NEWKEYS, then the held message under the new keys.
    a.send(keys_for(c, m, 1)).await.unwrap();
    assert_eq!(b.next().await.unwrap().unwrap().msg_type(), msg::NEWKEYS);
    b.codec_mut().set_inbound_keys(keys_for(c, m, 1)).unwrap();
    let held = b.next().await.unwrap().unwrap();
    assert_eq!((held.payload(), held.seqno()), (&message(1, 100)[..], 2));
}

#[tokio::test]
async fn eof_inside_a_packet_is_an_error_and_at_a_boundary_the_end() {
    let (ours, mut theirs) = tokio::io::duplex(64 * 1024);
    let mut framed = Framed::new(ours, PacketCodec::new(Config::client()));
    let mut wire = Vec::new();
    Sealer::new().seal(&message(0, 200), &mut wire).unwrap();
    theirs.write_all(&wire[..wire.len() - 1]).await.unwrap();
    drop(theirs);
    match framed.next().await {
        Some(Err(Error::Eof { needed, got })) => {
            assert_eq!((needed, got), (wire.len(), wire.len() - 1))
        }
        other => panic!("{other:?}"),
    }
    let (ours, mut theirs) = tokio::io::duplex(64 * 1024);
    let mut framed = Framed::new(ours, PacketCodec::new(Config::client()));
    theirs.write_all(&wire).await.unwrap();
    drop(theirs);
    assert_eq!(framed.next().await.unwrap().unwrap().payload().len(), 200);
    assert!(framed.next().await.is_none(), "a clean end");
}

#[tokio::test]
async fn a_tampered_packet_ends_the_stream_with_the_error() {
    let (c, m) = (C::Aes128Ctr, M::HmacSha1);
    let (ours, mut theirs) = tokio::io::duplex(64 * 1024);
    let mut framed = Framed::new(ours, PacketCodec::new(Config::client()));
    let mut sealer = Sealer::new();
    let mut wire = Vec::new();
    sealer.seal_newkeys(keys_for(c, m, 1), &mut wire).unwrap();
    sealer.seal(&message(0, 200), &mut wire).unwrap();
    let at = wire.len() - 30;
    wire[at] ^= 0x40;
    theirs.write_all(&wire).await.unwrap();
    assert_eq!(
        framed.next().await.unwrap().unwrap().msg_type(),
        msg::NEWKEYS
    );
    framed
        .codec_mut()
        .set_inbound_keys(keys_for(c, m, 1))
        .unwrap();
    match framed.next().await {
        Some(Err(Error::MacMismatch { .. })) => {}
        other => panic!("{other:?}"),
    }
    // The codec keeps the first error: a send says so too.
    match framed.send(&message(1, 10)[..]).await {
        Err(Error::Failed(first)) => assert!(matches!(*first, Error::MacMismatch { .. })),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_packetizer_hands_its_buffered_bytes_to_framed() {
    let (ours, mut theirs) = tokio::io::duplex(64 * 1024);
    let mut p = Packetizer::new(ours);
    // The identification and two packets in one write.
    let mut wire = b"SSH-2.0-peer\r\n".to_vec();
    let mut sealer = Sealer::new();
    sealer.seal(&message(0, 100), &mut wire).unwrap();
    sealer.seal(&message(1, 200), &mut wire).unwrap();
    theirs.write_all(&wire).await.unwrap();
    assert_eq!(
        p.read_identification().await.unwrap().software_version(),
        "peer"
    );
    p.send_identification("SSH-2.0-us").await.unwrap();
    let mut framed = p.into_framed();
    assert_eq!(
        framed.next().await.unwrap().unwrap().payload(),
        &message(0, 100)[..]
    );
    let second = framed.next().await.unwrap().unwrap();
    assert_eq!(
        (second.payload(), second.seqno()),
        (&message(1, 200)[..], 1)
    );
}

#[tokio::test]
async fn bytes_piling_up_while_the_keys_are_not_in_are_bounded() {
    let (ours, mut theirs) = tokio::io::duplex(4 << 20);
    let mut framed = Framed::new(ours, PacketCodec::new(Config::client()));
    let limit = framed.codec().connection().input_limit();
    let mut wire = Vec::new();
    Sealer::new()
        .seal_newkeys(keys_for(C::Aes128Gcm, M::None, 1), &mut wire)
        .unwrap();
    wire.resize(wire.len() + 4 * limit, 0x5a);
    let writer = tokio::spawn(async move { theirs.write_all(&wire).await.map(|_| theirs) });
    assert_eq!(
        framed.next().await.unwrap().unwrap().msg_type(),
        msg::NEWKEYS
    );
    // Polled without the keys: Framed reads on, and the codec stops it at
    // the input bound rather than buffer everything the peer sends.
    let next = tokio::time::timeout(Duration::from_secs(20), framed.next())
        .await
        .expect("the codec stopped the pile-up");
    match next {
        Some(Err(Error::InputOverflow { buffered, limit: l })) => {
            assert!(buffered > limit && l == limit, "{buffered} {l}")
        }
        other => panic!("{other:?}"),
    }
    // Framed's buffer grows by doubling, so one read may take it up to
    // twice the bound; not to the 4x the peer sent. What it held is
    // dropped (wiped) with the failure.
    let held = framed.read_buffer().capacity();
    assert!(
        held > limit && held <= 2 * limit + 64 * 1024,
        "{held} against {limit}"
    );
    assert!(framed.read_buffer().is_empty());
    // The connection failed: a caller that polls on gets no more bytes in
    // (the codec refuses at once), and a send reports the first error.
    for _ in 0..3 {
        match tokio::time::timeout(Duration::from_secs(5), framed.next()).await {
            Ok(None) => {}
            Ok(Some(Err(e))) => assert!(matches!(e.cause(), Error::InputOverflow { .. }), "{e:?}"),
            other => panic!("{:?}", other.map(|o| o.map(|r| r.map(|p| p.msg_type())))),
        }
    }
    assert_eq!(framed.read_buffer().capacity(), held);
    let sent = framed.send(&message(1, 10)[..]).await.unwrap_err();
    assert!(matches!(sent, Error::Failed(_)), "{sent:?}");
    assert!(
        matches!(sent.cause(), Error::InputOverflow { .. }),
        "{sent:?}"
    );
    drop(framed);
    let _ = writer.await;
}
