//! curve25519-sha256 (RFC 8731) with an ssh-ed25519 host key: our half of
//! the exchange, the exchange hash, the host's signature over it, and the
//! keys derived from it (RFC 4253 §7.2). Pure functions: the transport
//! feeds in the peer's message and sends what comes back.

use ed25519_dalek::{Signature, VerifyingKey};
use sha2::{Digest, Sha256};
use ssh_packetizer::{Direction, KdfHash, KeyDerivation, Keys};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

use super::algorithms::{Agreed, HOST_KEY_ALG};
use crate::error::{Error, Result};
use crate::hostkey::HostKey;
use crate::identity::Identity;
use crate::msg;
use crate::wire::{Msg, Reader};

/// Our half of a curve25519 exchange.
pub struct Ephemeral {
    secret: StaticSecret,
    public: PublicKey,
}

impl std::fmt::Debug for Ephemeral {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ephemeral(..)")
    }
}

impl Ephemeral {
    /// A fresh key pair.
    pub fn generate() -> Result<Ephemeral> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        getrandom::fill(&mut bytes[..])
            .map_err(|e| Error::Protocol(format!("no randomness for the kex: {e}")))?;
        let secret = StaticSecret::from(*bytes);
        let public = PublicKey::from(&secret);
        Ok(Ephemeral { secret, public })
    }

    /// SSH_MSG_KEX_ECDH_INIT with Q_C.
    pub fn init_message(&self) -> Vec<u8> {
        Msg::new(msg::KEX_ECDH_INIT)
            .string(self.public.as_bytes())
            .finish()
    }

    /// The shared secret K with the peer's public key, encoded as an
    /// mpint. RFC 8731 §3: an all-zero secret means a low-order point, and
    /// the exchange is aborted.
    fn agree(&self, peer_public: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let peer_public: [u8; 32] = peer_public
            .try_into()
            .map_err(|_| Error::Protocol("the peer's curve25519 key is not 32 bytes".into()))?;
        let shared = Zeroizing::new(
            self.secret
                .diffie_hellman(&PublicKey::from(peer_public))
                .to_bytes(),
        );
        if shared.iter().all(|&b| b == 0) {
            return Err(Error::Protocol(
                "curve25519 shared secret is all zero".into(),
            ));
        }
        Ok(ssh_packetizer::KeyDerivation::encode_mpint(&shared[..]))
    }
}

/// Everything the exchange hash covers besides the kex messages' fields.
#[derive(Debug)]
pub struct Transcript<'a> {
    /// The client's identification line (V_C).
    pub client_id: &'a [u8],
    /// The server's identification line (V_S).
    pub server_id: &'a [u8],
    /// The client's KEXINIT payload (I_C).
    pub client_kexinit: &'a [u8],
    /// The server's KEXINIT payload (I_S).
    pub server_kexinit: &'a [u8],
}

impl Transcript<'_> {
    /// H (RFC 8731 §3.1): SHA-256 over the transcript, the host key blob,
    /// both public keys and K.
    fn exchange_hash(
        &self,
        host_key_blob: &[u8],
        client_public: &[u8],
        server_public: &[u8],
        encoded_k: &[u8],
    ) -> Vec<u8> {
        let mut h = Sha256::new();
        for field in [
            self.client_id,
            self.server_id,
            self.client_kexinit,
            self.server_kexinit,
            host_key_blob,
            client_public,
            server_public,
        ] {
            h.update((field.len() as u32).to_be_bytes());
            h.update(field);
        }
        h.update(encoded_k);
        h.finalize().to_vec()
    }
}

/// The result of a completed exchange: both directions' keys.
#[derive(Debug)]
pub struct Outcome {
    /// The exchange hash H (the session id, for the first exchange).
    pub exchange_hash: Vec<u8>,
    /// The server's host key.
    pub host_key: HostKey,
    /// Keys for what the client sends.
    pub client_to_server: Keys,
    /// Keys for what the server sends.
    pub server_to_client: Keys,
}

/// Both directions' keys from K and H (RFC 4253 §7.2).
fn derive_keys(
    encoded_k: &[u8],
    exchange_hash: &[u8],
    session_id: &[u8],
    agreed: &Agreed,
) -> Result<(Keys, Keys)> {
    let kdf =
        KeyDerivation::from_encoded_secret(KdfHash::Sha256, encoded_k, exchange_hash, session_id)
            .with_crypto_provider(agreed.provider);
    let n = agreed;
    let way = |direction, cipher, mac, compression| -> Result<Keys> {
        Ok(kdf
            .keys(direction, cipher, mac)?
            .with_compression(compression))
    };
    Ok((
        way(
            Direction::ClientToServer,
            n.cipher_c2s,
            n.mac_c2s,
            n.comp_c2s,
        )?,
        way(
            Direction::ServerToClient,
            n.cipher_s2c,
            n.mac_s2c,
            n.comp_s2c,
        )?,
    ))
}

/// The client's step: handles SSH_MSG_KEX_ECDH_REPLY, computes K and H,
/// verifies the host's signature over H, and derives the keys.
/// `session_id` is `None` for the first exchange (H becomes the session
/// id).
pub fn finish(
    ours: Ephemeral,
    reply: &[u8],
    transcript: &Transcript<'_>,
    agreed: &Agreed,
    session_id: Option<&[u8]>,
) -> Result<Outcome> {
    let mut r = Reader::body(reply);
    let host_key_blob = r.string()?;
    let server_public = r.string()?;
    let signature_blob = r.string()?;

    let host_key = HostKey::from_blob(host_key_blob)?;
    let encoded_k = ours.agree(server_public)?;
    let exchange_hash = transcript.exchange_hash(
        host_key_blob,
        ours.public.as_bytes(),
        server_public,
        &encoded_k,
    );
    verify_signature(&host_key, signature_blob, &exchange_hash)?;

    let session_id = session_id.unwrap_or(&exchange_hash);
    let (client_to_server, server_to_client) =
        derive_keys(&encoded_k, &exchange_hash, session_id, agreed)?;
    Ok(Outcome {
        exchange_hash,
        host_key,
        client_to_server,
        server_to_client,
    })
}

/// The server's step: answers the client's SSH_MSG_KEX_ECDH_INIT with a
/// fresh key pair, signs H with the host key, and derives the keys.
/// Returns SSH_MSG_KEX_ECDH_REPLY and the outcome.
pub fn answer(
    host: &Identity,
    init: &[u8],
    transcript: &Transcript<'_>,
    agreed: &Agreed,
    session_id: Option<&[u8]>,
) -> Result<(Vec<u8>, Outcome)> {
    let mut r = Reader::body(init);
    let client_public = r.string()?;
    let ours = Ephemeral::generate()?;
    let encoded_k = ours.agree(client_public)?;
    let host_key_blob = host.public_blob();
    let exchange_hash = transcript.exchange_hash(
        &host_key_blob,
        client_public,
        ours.public.as_bytes(),
        &encoded_k,
    );
    let reply = Msg::new(msg::KEX_ECDH_REPLY)
        .string(&host_key_blob)
        .string(ours.public.as_bytes())
        .string(host.sign(&exchange_hash))
        .finish();
    let session_id = session_id.unwrap_or(&exchange_hash);
    let (client_to_server, server_to_client) =
        derive_keys(&encoded_k, &exchange_hash, session_id, agreed)?;
    let outcome = Outcome {
        exchange_hash,
        host_key: HostKey::from_blob(&host_key_blob)?,
        client_to_server,
        server_to_client,
    };
    Ok((reply, outcome))
}

/// Verifies an ssh-ed25519 signature blob over `data` with `key`.
pub fn verify_ed25519(key: &[u8; 32], blob: &[u8], data: &[u8]) -> bool {
    let mut r = Reader::new(blob);
    if !matches!(r.string(), Ok(alg) if alg == HOST_KEY_ALG.as_bytes()) {
        return false;
    }
    let Some(sig) = r.string().ok().and_then(|s| <[u8; 64]>::try_from(s).ok()) else {
        return false;
    };
    let Ok(key) = VerifyingKey::from_bytes(key) else {
        return false;
    };
    key.verify_strict(data, &Signature::from_bytes(&sig))
        .is_ok()
}

fn verify_signature(host_key: &HostKey, blob: &[u8], exchange_hash: &[u8]) -> Result<()> {
    if verify_ed25519(host_key.ed25519(), blob, exchange_hash) {
        Ok(())
    } else {
        Err(Error::BadHostSignature)
    }
}
