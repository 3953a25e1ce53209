//! Where padding bytes come from.
//!
//! OpenSSH pads with random bytes whenever a cipher is on; that is the
//! default here. Tests and known-answer vectors need reproducible padding, so
//! the source is a trait the [`Sealer`](crate::Sealer) can be given. The clear
//! mode always pads with zeros, whatever the source.

use aes::Aes128;
use ctr::cipher::{KeyIvInit, StreamCipher};
use ctr::Ctr128BE;

use crate::error::Error;

/// A source of padding bytes.
pub trait PaddingSource: Send {
    /// Overwrites all of `padding`.
    fn fill(&mut self, padding: &mut [u8]) -> Result<(), Error>;
}

/// Zero bytes, as paramiko pads CTR packets. Valid on the wire but gives an
/// observer known plaintext; use it for tests and vectors.
#[derive(Clone, Copy, Debug, Default)]
pub struct ZeroPadding;

impl PaddingSource for ZeroPadding {
    fn fill(&mut self, padding: &mut [u8]) -> Result<(), Error> {
        padding.fill(0);
        Ok(())
    }
}

/// Keystream drawn at once, so AES runs on many blocks in parallel and each
/// packet's few padding bytes are a copy from the pool.
const POOL: usize = 512;

/// Cryptographically random bytes: an AES-128-CTR keystream keyed once from
/// the operating system's random source. One system call per Sealer rather
/// than one per packet.
pub struct RandomPadding {
    /// Boxed on its own when first seeded: an `Option` of the engine kept
    /// inline would be copied whole into the `RandomPadding`'s box while
    /// still `None`, with whatever the stack held in the engine's place,
    /// and a `None` wipes nothing when dropped.
    keystream: Option<Box<Ctr128BE<Aes128>>>,
    pool: zeroize::Zeroizing<[u8; POOL]>,
    /// Bytes of `pool` already handed out.
    used: usize,
}

impl Default for RandomPadding {
    fn default() -> Self {
        RandomPadding {
            keystream: None,
            pool: zeroize::Zeroizing::new([0; POOL]),
            used: POOL,
        }
    }
}

impl RandomPadding {
    /// A source that draws its seed on first use.
    pub fn new() -> RandomPadding {
        RandomPadding::default()
    }

    fn refill(&mut self) -> Result<(), Error> {
        let keystream = match &mut self.keystream {
            Some(keystream) => keystream,
            None => {
                let mut seed = zeroize::Zeroizing::new([0u8; 32]);
                getrandom::fill(&mut seed[..]).map_err(|e| Error::Random {
                    detail: e.to_string(),
                })?;
                let (key, iv) = seed.split_at(16);
                // Expanded in frames that are scrubbed after, as the
                // engines' keys are.
                let keystream = crate::wipe::scrubbed(|| {
                    Ctr128BE::<Aes128>::new_from_slices(key, iv).map(Box::new)
                })
                .map_err(|_| Error::Random {
                    detail: "seed of the wrong length".into(),
                })?;
                self.keystream.insert(keystream)
            }
        };
        keystream.write_keystream(&mut self.pool[..]);
        self.used = 0;
        Ok(())
    }
}

impl std::fmt::Debug for RandomPadding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RandomPadding")
            .field("seeded", &self.keystream.is_some())
            .finish()
    }
}

impl PaddingSource for RandomPadding {
    fn fill(&mut self, padding: &mut [u8]) -> Result<(), Error> {
        let mut filled = 0;
        while filled < padding.len() {
            if self.used == POOL {
                self.refill()?;
            }
            let n = (padding.len() - filled).min(POOL - self.used);
            padding[filled..filled + n].copy_from_slice(&self.pool[self.used..self.used + n]);
            self.used += n;
            filled += n;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_padding_differs_between_calls_and_sources() {
        let mut a = RandomPadding::new();
        let mut b = RandomPadding::new();
        let (mut x, mut y, mut z) = ([0u8; 32], [0u8; 32], [0u8; 32]);
        a.fill(&mut x).unwrap();
        a.fill(&mut y).unwrap();
        b.fill(&mut z).unwrap();
        assert_ne!(x, y);
        assert_ne!(x, z);
        assert_ne!(x, [0u8; 32]);
    }

    #[test]
    fn random_padding_spans_pool_refills() {
        let mut source = RandomPadding::new();
        let mut big = vec![0u8; 3 * POOL + 5];
        source.fill(&mut big).unwrap();
        // Consecutive pool-sized windows never repeat.
        assert_ne!(big[..POOL], big[POOL..2 * POOL]);
        assert!(big[3 * POOL..].iter().any(|&b| b != 0));
    }

    #[test]
    fn zero_padding_overwrites() {
        let mut buf = [0xFFu8; 7];
        ZeroPadding.fill(&mut buf).unwrap();
        assert_eq!(buf, [0; 7]);
    }
}
