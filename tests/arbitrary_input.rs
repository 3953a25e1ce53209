//! Arbitrary bytes into an Opener: a typed error or a bounded wait, never a
//! panic, and never a payload from an authenticated mode's garbage.

mod common;

use common::{keys_for, supported_suites};
use proptest::prelude::*;
use ssh_packetizer::{CipherAlgorithm, Error, Frame, Opened, Opener};

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
        opener.set_keys(keys_for(c, m, 1)).unwrap();
        let mut outcome: Option<Error> = None;
        'feed: for piece in bytes.chunks(chunk) {
            opener.feed(piece);
            loop {
                match opener.next_packet() {
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
            let later = opener.next_packet().map(|_| ()).unwrap_err();
            prop_assert!(matches!(later, Error::Failed(_)), "{later:?}");
            prop_assert_eq!(later.cause().to_string(), e.to_string());
        }

        // The same bytes through the in-place form behave alike.
        let mut in_place = Opener::new();
        in_place.set_keys(keys_for(c, m, 1)).unwrap();
        let mut buf = bytes.clone();
        loop {
            match in_place.open_in_place(&mut buf) {
                Ok(Frame::Packet { wire_len, .. }) => {
                    prop_assert!(!authenticated);
                    buf.drain(..wire_len);
                }
                Ok(Frame::NeedMore(n)) => {
                    prop_assert!(n <= in_place.max_wire_len());
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
