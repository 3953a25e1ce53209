//! Both roles' transports against each other over the crate's in-memory
//! pipe, on one thread: the driving loop below is what a real driver does
//! with a packetizer.

use std::sync::{Arc, Mutex};

use ssh_packetizer::pipe::{pipe_with_capacity, PipeEnd};
use ssh_packetizer::{Config, Packetizer};

use super::*;
use crate::wire::Msg;

type Side = (Transport, Packetizer<PipeEnd>);

/// Sends what `t` has to send and makes its inbound changes.
fn apply((t, p): &mut Side) {
    while let Some(transmit) = t.poll_transmit() {
        match transmit {
            Transmit::Message(m) => p.send_message(&m).map(|_| ()).unwrap(),
            Transmit::NewKeys(keys) => p.send_newkeys(keys).map(|_| ()).unwrap(),
        }
    }
    while let Some(change) = t.poll_inbound() {
        match change {
            InboundChange::StrictKex(on) => p.connection_mut().set_strict_kex(on),
            InboundChange::Keys(keys) => p.set_inbound_cipher(keys).unwrap(),
        }
    }
}

/// Reads one message on `side` and hands it to its transport; the
/// connection layer's messages come back.
fn step(side: &mut Side) -> Result<Option<Vec<u8>>> {
    let packet = side.1.read_message().map_err(Error::Packet)?;
    let (payload, seqno) = (packet.payload().to_vec(), packet.seqno());
    let handled = side.0.handle(&payload, seqno)?;
    apply(side);
    Ok((handled == Handled::Connection).then_some(payload))
}

/// A client and a server transport over a pipe, and the host keys the
/// client's verifier saw.
fn pair() -> (Side, Side, Arc<Mutex<Vec<HostKey>>>) {
    let (a, b) = pipe_with_capacity(1 << 20);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let verifier_seen = seen.clone();
    let client = Transport::new(
        HostKeys::Verify(Box::new(move |key| {
            verifier_seen.lock().unwrap().push(key.clone());
            Ok(())
        })),
        Preferences::default(),
        b"SSH-2.0-client".to_vec(),
        b"SSH-2.0-server".to_vec(),
    );
    let server = Transport::new(
        HostKeys::Sign(Arc::new(Identity::generate().unwrap())),
        Preferences::default(),
        b"SSH-2.0-client".to_vec(),
        b"SSH-2.0-server".to_vec(),
    );
    let client = (client, Packetizer::with_config(a, Config::client()));
    let server = (server, Packetizer::with_config(b, Config::server()));
    (client, server, seen)
}

/// Runs a key exchange to its end, each side on a thread of its own
/// reading until it has completed `count` exchanges (a side cannot know on
/// its own whether the other has sent anything yet).
fn finish_kex(client: &mut Side, server: &mut Side, count: u32) {
    std::thread::scope(|s| {
        for side in [client, server] {
            s.spawn(move || {
                while side.0.stats().kex_count < count {
                    assert_eq!(step(side).unwrap(), None);
                }
            });
        }
    });
}

/// Both sides past the first exchange.
fn keyed() -> (Side, Side, Arc<Mutex<Vec<HostKey>>>) {
    let (mut client, mut server, seen) = pair();
    for side in [&mut client, &mut server] {
        assert!(side.0.start_kex().unwrap());
        apply(side);
    }
    finish_kex(&mut client, &mut server, 1);
    (client, server, seen)
}

/// A connection message goes from `from` to `to` under the current keys.
fn connection_message_passes(from: &mut Side, to: &mut Side, salt: u8) {
    let message = [msg::CHANNEL_DATA, salt, 1, 2, 3];
    from.1.send_message(&message).unwrap();
    assert_eq!(step(to).unwrap().as_deref(), Some(&message[..]));
}

#[test]
fn both_roles_finish_the_first_exchange_alike() {
    let (mut client, mut server, seen) = keyed();
    for side in [&client, &server] {
        assert!(side.0.is_initial_kex_done());
        assert!(side.0.is_strict_kex(), "both offer strict kex");
        assert!(side.1.connection().is_strict_kex());
        assert!(side.1.connection().is_initial_kex_done());
        assert_eq!(side.0.stats().kex_count, 1);
    }
    assert_eq!(client.0.session_id(), server.0.session_id());
    assert_eq!(client.0.agreed(), server.0.agreed());
    // The verifier saw the server's key once, and it is the one it signs
    // with.
    let seen = seen.lock().unwrap();
    let HostKeys::Sign(host) = &server.0.host_keys else {
        unreachable!()
    };
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].blob(), &host.public_blob()[..]);
    assert_eq!(client.0.host_key(), Some(&seen[0]));
    drop(seen);
    // The keys work both ways.
    connection_message_passes(&mut client, &mut server, 1);
    connection_message_passes(&mut server, &mut client, 2);
}

#[test]
fn a_rekey_started_by_either_side_is_counted_by_both() {
    let (mut client, mut server, seen) = keyed();
    assert!(client.0.start_kex().unwrap());
    assert!(!client.0.start_kex().unwrap(), "one exchange at a time");
    apply(&mut client);
    // What the client sends meanwhile waits in the core's hold and goes
    // out right after its NEWKEYS.
    client.1.send_message(&[msg::CHANNEL_DATA, 9]).unwrap();
    finish_kex(&mut client, &mut server, 2);
    assert_eq!(step(&mut server).unwrap(), Some(vec![msg::CHANNEL_DATA, 9]));
    assert_eq!(client.0.stats().rekeys_by_us, 1);
    assert_eq!(server.0.stats().rekeys_by_peer, 1);

    assert!(server.0.start_kex().unwrap());
    apply(&mut server);
    finish_kex(&mut client, &mut server, 3);
    for side in [&client, &server] {
        assert_eq!(side.0.stats().kex_count, 3);
    }
    assert_eq!(client.0.stats().rekeys_by_peer, 1);
    assert_eq!(server.0.stats().rekeys_by_us, 1);
    // The session id is the first exchange's; the host key was checked
    // once and then compared.
    assert_eq!(client.0.session_id(), server.0.session_id());
    assert_eq!(seen.lock().unwrap().len(), 1);
    connection_message_passes(&mut client, &mut server, 3);
    connection_message_passes(&mut server, &mut client, 4);
}

#[test]
fn rekeys_started_by_both_at_once_make_one_exchange() {
    let (mut client, mut server, _) = keyed();
    for side in [&mut client, &mut server] {
        assert!(side.0.start_kex().unwrap());
        apply(side);
    }
    finish_kex(&mut client, &mut server, 2);
    for side in [&client, &server] {
        assert_eq!(side.0.stats().kex_count, 2);
        assert_eq!(side.0.stats().rekeys_by_us, 1);
    }
    connection_message_passes(&mut client, &mut server, 5);
}

#[test]
fn a_refused_host_key_stops_the_exchange_before_newkeys() {
    let (mut client, mut server, _) = pair();
    client.0.host_keys = HostKeys::Verify(Box::new(|key| {
        Err(Error::HostKeyMismatch {
            expected: "SHA256:expected".into(),
            got: key.fingerprint(),
        })
    }));
    for side in [&mut client, &mut server] {
        side.0.start_kex().unwrap();
        apply(side);
    }
    assert_eq!(step(&mut server).unwrap(), None); // the client's KEXINIT
    assert_eq!(step(&mut client).unwrap(), None); // the server's
    assert_eq!(step(&mut server).unwrap(), None); // ECDH_INIT
    let err = step(&mut client).unwrap_err(); // ECDH_REPLY
    assert!(matches!(err, Error::HostKeyMismatch { .. }), "{err:?}");
    assert!(client.0.poll_transmit().is_none(), "no NEWKEYS");
    assert_eq!(client.0.session_id(), None);
}

#[test]
fn the_first_packet_must_be_kexinit() {
    let (_, mut server, _) = pair();
    let err = server.0.handle(&[msg::IGNORE, 0, 0, 0, 0], 0).unwrap_err();
    assert!(err.to_string().contains("not KEXINIT"), "{err}");
}

#[test]
fn connection_messages_wait_for_the_first_exchange() {
    let (mut client, _server, _) = pair();
    client.0.start_kex().unwrap();
    let theirs = algorithms::kexinit(Role::Server, &Preferences::default(), true).unwrap();
    client.0.handle(&theirs, 0).unwrap();
    let err = client.0.handle(&[msg::CHANNEL_DATA, 0], 1).unwrap_err();
    assert!(
        err.to_string().contains("before the first key exchange"),
        "{err}"
    );
}

#[test]
fn a_wrongly_guessed_kex_packet_is_dropped() {
    let (_, mut server, _) = pair();
    server.0.start_kex().unwrap();
    let _ = server.0.poll_transmit();
    // A client that lists another method first and sends its guess.
    let kexinit = Msg::new(msg::KEXINIT)
        .raw(&[0; 16])
        .string("ecdh-sha2-nistp256,curve25519-sha256")
        .string("ssh-ed25519")
        .string("aes128-ctr")
        .string("aes128-ctr")
        .string("hmac-sha2-256")
        .string("hmac-sha2-256")
        .string("none")
        .string("none")
        .string("")
        .string("")
        .bool(true)
        .u32(0)
        .finish();
    assert_eq!(server.0.handle(&kexinit, 0).unwrap(), Handled::Transport);
    // The guess (an ECDH_INIT for the other curve) is dropped unanswered.
    let guess = Msg::new(msg::KEX_ECDH_INIT).string([4u8; 65]).finish();
    assert_eq!(server.0.handle(&guess, 1).unwrap(), Handled::Transport);
    assert!(server.0.poll_transmit().is_none());
    // The real one is answered: ECDH_REPLY, then NEWKEYS.
    let ours = Ephemeral::generate().unwrap();
    server.0.handle(&ours.init_message(), 2).unwrap();
    assert!(
        matches!(server.0.poll_transmit(), Some(Transmit::Message(m)) if m[0] == msg::KEX_ECDH_REPLY)
    );
    assert!(matches!(
        server.0.poll_transmit(),
        Some(Transmit::NewKeys(_))
    ));
}

#[test]
fn a_kex_message_out_of_order_is_refused() {
    let (mut client, _, _) = pair();
    client.0.start_kex().unwrap();
    let err = client.0.handle(&[msg::NEWKEYS], 3).unwrap_err();
    assert!(err.to_string().contains("out of order"), "{err}");
}
