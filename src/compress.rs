//! zlib compression of payloads, as SSH's `zlib` and `zlib@openssh.com` use
//! it: one deflate stream per direction for the life of a key set, each
//! packet flushed so the peer can inflate it whole (a sync flush; OpenSSH's
//! partial flush and paramiko's full flush inflate the same way).
//!
//! The streams run on [`crate::zlib`], whose memory (the windows, which
//! hold plaintext) is wiped as it is freed.

use crate::error::Error;
use crate::zlib::{Status, Stream};

/// OpenSSH's compression level.
const LEVEL: std::ffi::c_int = 6;
/// How much output room to add per round.
const STEP: usize = 16 * 1024;

/// The outbound deflate stream.
pub(crate) struct Deflater {
    stream: Stream,
}

impl Deflater {
    pub(crate) fn new() -> Deflater {
        Deflater {
            stream: Stream::deflate(LEVEL),
        }
    }

    /// The most a payload of `len` bytes can grow by when compressed: stored
    /// blocks, the zlib header and the flush marker.
    pub(crate) fn max_growth(len: usize) -> usize {
        len / 1024 + 64
    }

    /// Appends `payload` compressed and flushed to `out`.
    pub(crate) fn compress(&mut self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
        let mut consumed = 0;
        loop {
            crate::wipe::reserve_wiped(out, payload.len() - consumed + STEP);
            let before_out = out.len();
            let (taken, _) =
                self.stream
                    .run(&payload[consumed..], out)
                    .map_err(|_| Error::Compress {
                        reason: "the deflate stream failed",
                    })?;
            consumed += taken;
            let produced = out.len() - before_out;
            if taken == 0 && produced == 0 {
                return Err(Error::Compress {
                    reason: "the deflate stream made no progress",
                });
            }
            // Done once all input is in and the flush fitted in the room left.
            if consumed == payload.len() && out.len() < out.capacity() && produced > 0 {
                return Ok(());
            }
        }
    }
}

/// The inbound inflate stream.
pub(crate) struct Inflater {
    stream: Stream,
}

impl Inflater {
    pub(crate) fn new() -> Inflater {
        Inflater {
            stream: Stream::inflate(),
        }
    }

    /// Replaces `out` with `compressed` inflated; refuses to produce more
    /// than `max` bytes, so a small packet cannot inflate into a large
    /// allocation.
    pub(crate) fn decompress(
        &mut self,
        compressed: &[u8],
        out: &mut Vec<u8>,
        max: usize,
    ) -> Result<(), Error> {
        out.clear();
        let mut consumed = 0;
        loop {
            // Room for one byte past the cap, to tell "exactly max" from more.
            let room = (max + 1 - out.len()).min(STEP.max(compressed.len() * 4));
            crate::wipe::reserve_exact_wiped(out, room);
            let out_before = out.len();
            let (taken, status) =
                self.stream
                    .run(&compressed[consumed..], out)
                    .map_err(|_| Error::Decompress {
                        reason: "corrupt compressed data",
                    })?;
            consumed += taken;
            if out.len() > max {
                return Err(Error::Decompress {
                    reason: "inflated past the maximum packet length",
                });
            }
            if status == Status::StreamEnd {
                return Err(Error::Decompress {
                    reason: "the peer ended its compression stream",
                });
            }
            let all_in = consumed == compressed.len();
            let progressed = taken != 0 || out.len() != out_before;
            if !progressed {
                // Nothing moved with room offered: finished if all input is
                // in (the last round filled the room exactly), stuck if not.
                if all_in {
                    break;
                }
                return Err(Error::Decompress {
                    reason: "truncated compressed data",
                });
            }
            if all_in && out.len() < out.capacity() {
                break;
            }
        }
        if out.is_empty() {
            return Err(Error::Decompress {
                reason: "a packet inflated to nothing",
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_of_packets_round_trips() {
        let (mut d, mut i) = (Deflater::new(), Inflater::new());
        let mut out = Vec::new();
        for n in [1usize, 10, 1000, 100_000, 3] {
            let payload: Vec<u8> = (0..n).map(|k| (k % 251) as u8).collect();
            let mut packed = Vec::new();
            d.compress(&payload, &mut packed).unwrap();
            i.decompress(&packed, &mut out, 262_144).unwrap();
            assert_eq!(out, payload);
        }
    }

    #[test]
    fn output_that_exactly_fills_the_room_offered_is_complete() {
        let (mut d, mut i) = (Deflater::new(), Inflater::new());
        let mut out = Vec::new();
        for n in [STEP - 1, STEP, STEP + 1, 2 * STEP, 4 * STEP] {
            let payload = vec![0x5e; n];
            let mut packed = Vec::new();
            d.compress(&payload, &mut packed).unwrap();
            i.decompress(&packed, &mut out, 262_144).unwrap();
            assert_eq!(out.len(), n);
        }
    }

    #[test]
    fn the_cap_holds_against_a_bomb() {
        let mut d = Deflater::new();
        let mut packed = Vec::new();
        d.compress(&vec![0u8; 1 << 20], &mut packed).unwrap();
        assert!(packed.len() < 2000, "{}", packed.len());
        let mut out = Vec::new();
        let err = Inflater::new()
            .decompress(&packed, &mut out, 262_144)
            .unwrap_err();
        assert!(matches!(err, Error::Decompress { .. }));
        assert!(out.capacity() <= 262_144 + 1 + STEP, "{}", out.capacity());
    }

    #[test]
    fn garbage_is_an_error() {
        let mut out = Vec::new();
        let err = Inflater::new()
            .decompress(b"\x78\x9c\xff\xff\xff\xff", &mut out, 1000)
            .unwrap_err();
        assert!(matches!(err, Error::Decompress { .. }));
    }

    #[test]
    fn max_growth_covers_incompressible_data() {
        let mut d = Deflater::new();
        let mut x = 0x1234_5678u32;
        let noise: Vec<u8> = (0..200_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        let mut packed = Vec::new();
        d.compress(&noise, &mut packed).unwrap();
        assert!(packed.len() <= noise.len() + Deflater::max_growth(noise.len()));
    }
}
