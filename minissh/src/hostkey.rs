//! The server's host key and its fingerprint (which key the client
//! accepts is the client's: `client::host_check`).

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

    /// The key blob as the server sent it.
    pub fn blob(&self) -> &[u8] {
        &self.blob
    }

    /// The key in OpenSSH's one-line form (`ssh-ed25519 AAAA...`).
    pub fn openssh_line(&self) -> String {
        PublicKey::from_bytes(&self.blob)
            .and_then(|key| key.to_openssh())
            .unwrap_or_default()
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
