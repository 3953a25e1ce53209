//! The user's ed25519 key, from an unencrypted OpenSSH private key file.

use std::path::Path;

use ed25519_dalek::{Signer, SigningKey};
use ssh_key::PrivateKey;

use crate::error::{Error, Result};
use crate::wire::put_string;

/// A key pair for publickey authentication.
pub struct Identity {
    signing: SigningKey,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity").finish_non_exhaustive()
    }
}

impl Identity {
    /// Reads an `-----BEGIN OPENSSH PRIVATE KEY-----` file.
    pub fn load(path: &Path) -> Result<Identity> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Key(format!("cannot read {}: {e}", path.display())))?;
        let key = PrivateKey::from_openssh(&text).map_err(|e| {
            Error::Key(format!(
                "{} is not an OpenSSH private key: {e}",
                path.display()
            ))
        })?;
        if key.is_encrypted() {
            return Err(Error::Key(format!(
                "{} is encrypted; minissh takes only unencrypted keys",
                path.display()
            )));
        }
        let pair = key
            .key_data()
            .ed25519()
            .ok_or_else(|| Error::Key(format!("{} is not an ed25519 key", path.display())))?;
        Ok(Identity {
            signing: SigningKey::from_bytes(&pair.private.to_bytes()),
        })
    }

    /// The public key blob (`string "ssh-ed25519"`, `string key`).
    pub fn public_blob(&self) -> Vec<u8> {
        let mut blob = Vec::with_capacity(51);
        put_string(&mut blob, b"ssh-ed25519");
        put_string(&mut blob, self.signing.verifying_key().as_bytes());
        blob
    }

    /// A signature blob (`string "ssh-ed25519"`, `string sig`) over `data`.
    pub fn sign(&self, data: &[u8]) -> Vec<u8> {
        let mut blob = Vec::with_capacity(83);
        put_string(&mut blob, b"ssh-ed25519");
        put_string(&mut blob, &self.signing.sign(data).to_bytes());
        blob
    }
}
