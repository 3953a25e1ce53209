//! The server's host key, its fingerprint, and the check against what the
//! user expects.

use std::path::Path;

use ssh_key::{HashAlg, PublicKey};

use crate::error::{Error, Result};
use crate::wire::Reader;

/// An ssh-ed25519 host key as the server sent it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostKey {
    blob: Vec<u8>,
    key: [u8; 32],
}

impl HostKey {
    /// Parses the key blob (`string "ssh-ed25519"`, `string key`).
    pub fn from_blob(blob: &[u8]) -> Result<HostKey> {
        let mut r = Reader::new(blob);
        let alg = r.string()?;
        if alg != b"ssh-ed25519" {
            return Err(Error::Protocol(format!(
                "host key type {} was not negotiated",
                String::from_utf8_lossy(alg)
            )));
        }
        let key = r
            .string()?
            .try_into()
            .map_err(|_| Error::Protocol("ed25519 host key is not 32 bytes".into()))?;
        Ok(HostKey {
            blob: blob.to_vec(),
            key,
        })
    }

    /// The raw public key.
    pub fn ed25519(&self) -> &[u8; 32] {
        &self.key
    }

    /// `SHA256:` and the unpadded base64 of the blob's hash, as
    /// `ssh-keygen -lf` prints it.
    pub fn fingerprint(&self) -> String {
        match PublicKey::from_bytes(&self.blob) {
            Ok(key) => key.fingerprint(HashAlg::Sha256).to_string(),
            Err(_) => "SHA256:?".into(),
        }
    }
}

/// Which host key the user accepts.
#[derive(Clone, Debug, Default)]
pub enum HostKeyCheck {
    /// Any key; its fingerprint is shown so the user can compare it.
    #[default]
    AcceptAny,
    /// Only the key with this `SHA256:` fingerprint.
    Fingerprint(String),
}

impl HostKeyCheck {
    /// From the `-H` argument: a `SHA256:...` fingerprint or the path of a
    /// public key file (`ssh_host_ed25519_key.pub`).
    pub fn parse(arg: &str) -> Result<HostKeyCheck> {
        if arg.starts_with("SHA256:") {
            return Ok(HostKeyCheck::Fingerprint(arg.to_owned()));
        }
        let text = std::fs::read_to_string(Path::new(arg))
            .map_err(|e| Error::Key(format!("cannot read host key {arg}: {e}")))?;
        let key = PublicKey::from_openssh(text.trim())
            .map_err(|e| Error::Key(format!("{arg} is not an OpenSSH public key: {e}")))?;
        Ok(HostKeyCheck::Fingerprint(
            key.fingerprint(HashAlg::Sha256).to_string(),
        ))
    }

    /// Whether `key` passes.
    pub fn check(&self, key: &HostKey) -> Result<()> {
        match self {
            HostKeyCheck::AcceptAny => Ok(()),
            HostKeyCheck::Fingerprint(expected) if *expected == key.fingerprint() => Ok(()),
            HostKeyCheck::Fingerprint(expected) => Err(Error::HostKeyMismatch {
                expected: expected.clone(),
                got: key.fingerprint(),
            }),
        }
    }
}
