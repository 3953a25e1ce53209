//! The core's sans-IO split halves ([`Connection::split`]) against a
//! hostile peer: whatever bytes arrive, in whatever pieces, between sends,
//! key switches, partial writes, a broken write and clock jumps.
//!
//! Nothing panics; the input bound holds; once the connection failed,
//! every call through either half reports that first error.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ssh_packetizer::{
    CipherAlgorithm as C, Config, Connection, Error, InputBuffer, MacAlgorithm as M, Opened,
    SplitDriver,
};

struct Clock(Mutex<Instant>);

impl SplitDriver for Clock {
    fn now(&self) -> Instant {
        *self.0.lock().unwrap()
    }

    fn wake(&self) {}
}

const SUITES: [(C, M); 3] = [
    (C::Aes128Ctr, M::HmacSha256Etm),
    (C::Aes256Gcm, M::None),
    (C::ChaCha20Poly1305, M::None),
];

/// Runs the split halves over `data`: pairs of (operation, argument), the
/// hostile bytes taken from what follows a feed.
pub fn hostile_split(data: &[u8]) {
    let start = Instant::now();
    let clock = Arc::new(Clock(Mutex::new(start)));
    let core = Connection::new(Config::client(), start);
    let (mut inbound, mut outbound) = core.split(InputBuffer::new(), clock.clone());
    let limit = inbound.connection().with(|core| core.input_limit());
    let mut first_error: Option<String> = None;
    let mut epoch = 0u8;
    let mut rest = data;
    while let [op, arg, tail @ ..] = rest {
        rest = tail;
        let now = *clock.0.lock().unwrap();
        let outcome: Result<(), Error> = match op % 8 {
            // Hostile bytes into the reader's room, `arg` of them at most.
            0 | 1 => {
                let take = usize::from(*arg).min(rest.len());
                let room = inbound.recv_buf();
                let k = room.len().min(take);
                room[..k].copy_from_slice(&rest[..k]);
                rest = &rest[k..];
                inbound.with(|core, input| core.recv_filled(input, k, now));
                Ok(())
            }
            // Read what the bytes make.
            2 => inbound.with(|core, input| match core.poll_packet(input) {
                Ok(Opened::AwaitingKeys) => {
                    let (c, m) = SUITES[usize::from(*arg) % SUITES.len()];
                    core.set_inbound_keys(crate::patterned_keys(c, m, *arg), now)
                }
                Ok(_) => Ok(()),
                Err(e) => Err(e),
            }),
            // A send of `arg` + 1 bytes (a message type that is not NEWKEYS).
            3 => {
                let payload = vec![94; usize::from(*arg) + 1];
                outbound
                    .connection()
                    .with(|core| core.send_message(&payload))
                    .map(|_| ())
            }
            // Our NEWKEYS and a switch to the next keys.
            4 => {
                epoch = epoch.wrapping_add(1);
                let (c, m) = SUITES[usize::from(*arg) % SUITES.len()];
                outbound
                    .connection()
                    .with_now(|core, now| {
                        core.send_newkeys(crate::patterned_keys(c, m, epoch), now)
                    })
                    .map(|_| ())
            }
            // The writer takes output and writes `arg` bytes of it.
            5 => match outbound.to_write() {
                Ok(bytes) => {
                    let n = bytes.len().min(usize::from(*arg));
                    outbound.wrote(n);
                    Ok(())
                }
                Err(e) => Err(e),
            },
            // The write breaks.
            6 if *arg == 0 => Err(outbound.broke(Error::Io(std::io::ErrorKind::BrokenPipe.into()))),
            // Time passes (up to about 4 minutes): the timers run.
            _ => {
                *clock.0.lock().unwrap() += Duration::from_secs(u64::from(*arg));
                outbound.connection().with_now(|core, _| core.check())
            }
        };
        assert!(inbound.input().buffered() <= limit, "the input bound broke");
        // The first error is the latch's, whichever call set it (a read,
        // a send, or the timers inside a call that itself returns nothing).
        let latched = inbound.connection().with(|core| core.check()).err();
        match (&first_error, latched) {
            (None, Some(e)) => first_error = Some(format!("{}", e.cause())),
            (Some(first), Some(e)) => {
                // Every later call reports the same first error (as the
                // cause of `Failed`).
                assert_eq!(format!("{}", e.cause()), *first, "the first error was lost");
                if let Err(e) = &outcome {
                    assert_eq!(format!("{}", e.cause()), *first, "a call saw another error");
                }
                assert!(
                    outcome.is_err() || *op % 8 < 2 || *op % 8 == 5,
                    "a call succeeded after {first}"
                );
            }
            (Some(first), None) => panic!("the connection reopened after {first}"),
            (None, None) => {}
        }
    }
}
