//! Arbitrary bytes into an Opener: a typed error or a bounded wait, never a
//! panic, and never a payload from an authenticated mode's garbage.

mod common;

use common::{keys_for, supported_suites};
use proptest::prelude::*;
use ssh_packetizer::{CipherAlgorithm, Error, InputBuffer, Opened, Opener};

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn garbage_never_panics_or_overreaches(
        suite in any::<prop::sample::Index>(),
        bytes in prop::collection::vec(any::<u8>(), 0..600),
        chunk in 1usize..64,
    ) {
        let (c, m) = *suite.get(&supported_suites());
        let authenticated = c != CipherAlgorithm::None;

        let mut opener = Opener::new();
        let mut opener_in = InputBuffer::new();
        opener.set_keys(keys_for(c, m, 1)).unwrap();
        let mut outcome: Option<Error> = None;
        'feed: for piece in bytes.chunks(chunk) {
            opener.feed(&mut opener_in, piece);
            loop {
                match opener.next_packet(&mut opener_in) {
                    Ok(Opened::Packet(p)) => {
                        // A forged MAC (or tag) passing is a 2^-160 event at best.
                        prop_assert!(!authenticated, "{c}+{m} accepted garbage {:?}", p.payload());
                    }
                    Ok(Opened::NeedMore(n)) => {
                        prop_assert!(n >= 1 && n <= opener.max_wire_len());
                        break;
                    }
                    // Garbage in the clear may spell NEWKEYS: the Opener stops.
                    Ok(_) => break 'feed,
                    Err(e) => {
                        outcome = Some(e);
                        break 'feed;
                    }
                }
            }
        }
        if let Some(e) = outcome {
            prop_assert!(e.is_peer_fault() || matches!(e, Error::SequenceWrapped), "{e:?}");
            // Every later call names the first error as its cause.
            let later = opener.next_packet(&mut opener_in).map(|_| ()).unwrap_err();
            prop_assert!(matches!(later, Error::Failed(_)), "{later:?}");
            prop_assert_eq!(later.cause().to_string(), e.to_string());
        }

        // The same bytes read straight into the offered room (a socket
        // reader's way, all at once) behave alike.
        let mut direct = Opener::new();
        let mut direct_in = InputBuffer::new();
        direct.set_keys(keys_for(c, m, 1)).unwrap();
        let room = direct.unfilled(&mut direct_in);
        let n = room.len().min(bytes.len());
        room[..n].copy_from_slice(&bytes[..n]);
        direct.filled(&mut direct_in, n);
        loop {
            match direct.next_packet(&mut direct_in) {
                Ok(Opened::Packet(_)) => prop_assert!(!authenticated),
                Ok(Opened::NeedMore(n)) => {
                    prop_assert!(n <= direct.max_wire_len());
                    break;
                }
                Ok(_) => break,
                Err(e) => {
                    prop_assert!(e.is_peer_fault(), "{e:?}");
                    break;
                }
            }
        }
    }
}
