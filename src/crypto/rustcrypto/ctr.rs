//! AES-CTR (RustCrypto's `aes` and `ctr`); the MAC is added by `with_mac`.
//!
//! The CTR keystream runs on across the packets of a direction; only a key
//! switch, which builds a new engine, starts it again.

use aes::{Aes128, Aes192, Aes256};
use ctr::cipher::{KeyIvInit, StreamCipher};
use ctr::Ctr128BE;

use crate::algorithm::CipherAlgorithm;
use crate::crypto::Transform;
use crate::error::Error;
use crate::keys::Keys;

/// One AES key size's CTR keystream.
///
/// Each key size is its own boxed type rather than a variant of one enum:
/// a box of an enum is as large as its largest variant, and moving a
/// smaller variant into it copies whatever the stack held past that
/// variant (an earlier key schedule, say) into a tail that the variant's
/// own wipe on drop never reaches. Boxed whole, every byte of the block
/// belongs to the engine that wipes it.
pub(crate) struct AesCtr<S>(S);

/// The engine for `keys`, built straight into its own box.
pub(crate) fn engine(keys: &Keys) -> Result<Box<dyn Transform>, Error> {
    Ok(match keys.cipher() {
        CipherAlgorithm::Aes128Ctr => Box::new(AesCtr(keystream::<Ctr128BE<Aes128>>(keys)?)),
        CipherAlgorithm::Aes192Ctr => Box::new(AesCtr(keystream::<Ctr128BE<Aes192>>(keys)?)),
        CipherAlgorithm::Aes256Ctr => Box::new(AesCtr(keystream::<Ctr128BE<Aes256>>(keys)?)),
        other => {
            return Err(Error::Unsupported {
                algorithm: other.name(),
            })
        }
    })
}

fn keystream<C: KeyIvInit>(keys: &Keys) -> Result<C, Error> {
    C::new_from_slices(keys.key(), keys.iv()).map_err(|_| Error::BadKeyLength {
        what: "key",
        expected: keys.cipher().spec().key_len(),
        got: keys.key().len(),
    })
}

impl<S: StreamCipher + Send> Transform for AesCtr<S> {
    fn encrypt(&mut self, data: &mut [u8]) {
        self.0.apply_keystream(data);
    }

    fn decrypt(&mut self, data: &mut [u8]) {
        self.0.apply_keystream(data);
    }
}
