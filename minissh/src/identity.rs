//! An ed25519 key pair from an unencrypted OpenSSH private key file: the
//! user's key on the client, the host key on the server.

use std::path::Path;

use ed25519_dalek::{Signer, SigningKey};
use ssh_key::private::{Ed25519Keypair, KeypairData};
use ssh_key::{LineEnding, PrivateKey};
use zeroize::Zeroizing;

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

    /// Loads the key at `path`, or, if there is no file there, generates a
    /// new one and writes it (owner-only) with its `.pub` beside it, as
    /// `ssh-keygen -t ed25519` would.
    pub fn load_or_generate(path: &Path) -> Result<Identity> {
        if path.exists() {
            return Identity::load(path);
        }
        let identity = Identity::generate()?;
        let signing = &identity.signing;
        let seed = Zeroizing::new(signing.to_bytes());
        let mut both = Zeroizing::new([0u8; 64]);
        both[..32].copy_from_slice(&seed[..]);
        both[32..].copy_from_slice(signing.verifying_key().as_bytes());
        let pair = Ed25519Keypair::from_bytes(&both)
            .map_err(|e| Error::Key(format!("cannot build a key: {e}")))?;
        let key = PrivateKey::new(KeypairData::Ed25519(pair), "minissh host key")
            .map_err(|e| Error::Key(format!("cannot build a key: {e}")))?;
        let text = key
            .to_openssh(LineEnding::LF)
            .map_err(|e| Error::Key(format!("cannot encode a key: {e}")))?;
        let public = key
            .public_key()
            .to_openssh()
            .map_err(|e| Error::Key(format!("cannot encode a key: {e}")))?;
        let fail = |e: std::io::Error| Error::Key(format!("cannot write {}: {e}", path.display()));
        write_private(path, text.as_bytes()).map_err(fail)?;
        let mut pub_path = path.as_os_str().to_owned();
        pub_path.push(".pub");
        std::fs::write(&pub_path, format!("{public}\n")).map_err(fail)?;
        Ok(identity)
    }

    /// A new key pair, in memory only (tests, throwaway host keys).
    pub fn generate() -> Result<Identity> {
        let mut seed = Zeroizing::new([0u8; 32]);
        getrandom::fill(&mut seed[..])
            .map_err(|e| Error::Key(format!("no randomness for a new key: {e}")))?;
        Ok(Identity {
            signing: SigningKey::from_bytes(&seed),
        })
    }

    /// The public key in OpenSSH's one-line form (`ssh-ed25519 AAAA...`).
    pub fn public_line(&self) -> String {
        let blob = self.public_blob();
        ssh_key::PublicKey::from_bytes(&blob)
            .and_then(|k| k.to_openssh())
            .unwrap_or_default()
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

/// Creates `path` readable by its owner only, and writes `bytes`.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?.write_all(bytes)
}
