//! Key exchange: KEXINIT negotiation, curve25519-sha256 (RFC 8731), the
//! ssh-ed25519 host key signature, and the keys it yields.
//!
//! Nothing here does I/O: the transport feeds in the peer's messages and
//! sends what comes back.

use ed25519_dalek::{Signature, VerifyingKey};
use sha2::{Digest, Sha256};
use ssh_packetizer::negotiate::{self, AlgorithmLists};
use ssh_packetizer::{
    CipherAlgorithm, CompressionAlgorithm, Direction, KdfHash, KeyDerivation, Keys, MacAlgorithm,
};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::hostkey::HostKey;
use crate::msg;
use crate::wire::{Msg, Reader};

/// The kex methods we offer, best first.
const KEX_METHODS: [&str; 2] = ["curve25519-sha256", "curve25519-sha256@libssh.org"];
/// Strict kex markers (OpenSSH's answer to the Terrapin attack).
pub const STRICT_CLIENT: &str = "kex-strict-c-v00@openssh.com";
/// The server's strict kex marker.
pub const STRICT_SERVER: &str = "kex-strict-s-v00@openssh.com";
const HOST_KEY_ALG: &str = "ssh-ed25519";

/// What the client is willing to use.
#[derive(Clone, Debug)]
pub struct Preferences {
    /// Ciphers, best first.
    pub ciphers: Vec<CipherAlgorithm>,
    /// MACs, best first (used only with non-AEAD ciphers).
    pub macs: Vec<MacAlgorithm>,
    /// Compression methods, best first.
    pub compression: Vec<CompressionAlgorithm>,
    /// Whether to offer strict kex in the first KEXINIT.
    pub strict_kex: bool,
}

impl Default for Preferences {
    /// The crate's default lists, and no compression unless asked for.
    fn default() -> Self {
        Preferences {
            ciphers: negotiate::DEFAULT_CIPHERS.to_vec(),
            macs: negotiate::DEFAULT_MACS.to_vec(),
            compression: vec![CompressionAlgorithm::None],
            strict_kex: true,
        }
    }
}

fn names<T: Copy>(items: &[T], name: impl Fn(T) -> &'static str) -> String {
    items.iter().map(|&i| name(i)).collect::<Vec<_>>().join(",")
}

/// Our KEXINIT payload. `initial` adds the strict kex marker, which only
/// the first key exchange of a connection carries.
pub fn client_kexinit(prefs: &Preferences, initial: bool) -> Result<Vec<u8>> {
    let mut cookie = [0u8; 16];
    getrandom::fill(&mut cookie)
        .map_err(|e| Error::Protocol(format!("no randomness for the cookie: {e}")))?;
    let mut kex = KEX_METHODS.join(",");
    if initial && prefs.strict_kex {
        kex.push(',');
        kex.push_str(STRICT_CLIENT);
    }
    let ciphers = names(&prefs.ciphers, CipherAlgorithm::name);
    let macs = names(&prefs.macs, MacAlgorithm::name);
    let comp = names(&prefs.compression, CompressionAlgorithm::name);
    Ok(Msg::new(msg::KEXINIT)
        .raw(&cookie)
        .string(kex)
        .string(HOST_KEY_ALG)
        .string(&ciphers)
        .string(&ciphers)
        .string(&macs)
        .string(&macs)
        .string(&comp)
        .string(&comp)
        .string("")
        .string("")
        .bool(false)
        .u32(0)
        .finish())
}

/// The algorithms both sides agreed on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Negotiated {
    /// `curve25519-sha256` or its @libssh.org twin (the same method).
    pub kex: &'static str,
    /// Cipher, client to server.
    pub cipher_c2s: CipherAlgorithm,
    /// Cipher, server to client.
    pub cipher_s2c: CipherAlgorithm,
    /// MAC, client to server (`none` under an AEAD cipher).
    pub mac_c2s: MacAlgorithm,
    /// MAC, server to client.
    pub mac_s2c: MacAlgorithm,
    /// Compression, client to server.
    pub comp_c2s: CompressionAlgorithm,
    /// Compression, server to client.
    pub comp_s2c: CompressionAlgorithm,
    /// Whether the server announced strict kex.
    pub server_strict: bool,
}

/// RFC 4253 §7.1: the first of the client's names the server also knows.
fn pick<T: Copy>(
    what: &'static str,
    ours: &[T],
    name: impl Fn(T) -> &'static str,
    theirs: &[&str],
) -> Result<T> {
    ours.iter()
        .copied()
        .find(|&o| theirs.contains(&name(o)))
        .ok_or_else(|| Error::NoCommonAlgorithm {
            what,
            ours: names(ours, &name),
            theirs: theirs.join(","),
        })
}

/// Negotiates against the server's KEXINIT payload.
pub fn negotiate(prefs: &Preferences, server_kexinit: &[u8]) -> Result<Negotiated> {
    let mut r = Reader::body(server_kexinit);
    r.fixed(16)?;
    let kex = r.name_list()?;
    let host_key = r.name_list()?;
    let lists: Vec<Vec<&str>> = (0..6).map(|_| r.name_list()).collect::<Result<_>>()?;
    r.name_list()?;
    r.name_list()?;
    // first_kex_packet_follows needs no handling here: under ECDH the
    // server's only kex packet answers our ECDH_INIT, so it cannot guess.

    let kex_method = pick("key exchange", &KEX_METHODS, |m| m, &kex)?;
    pick("host key", &[HOST_KEY_ALG], |m| m, &host_key)?;
    // Ciphers, MACs and compression: the crate's RFC 4253 §7.1 rule.
    let (ciphers, macs, compression) = (
        negotiate::name_list(&prefs.ciphers),
        negotiate::name_list(&prefs.macs),
        negotiate::name_list(&prefs.compression),
    );
    let ours = AlgorithmLists::both_ways(&ciphers, &macs, &compression);
    let theirs: Vec<String> = lists.iter().map(|list| list.join(",")).collect();
    let theirs = AlgorithmLists {
        ciphers_client_to_server: &theirs[0],
        ciphers_server_to_client: &theirs[1],
        macs_client_to_server: &theirs[2],
        macs_server_to_client: &theirs[3],
        compression_client_to_server: &theirs[4],
        compression_server_to_client: &theirs[5],
    };
    let chosen = negotiate::negotiate(&ours, &theirs)?;
    let (c2s, s2c) = (chosen.client_to_server, chosen.server_to_client);
    Ok(Negotiated {
        kex: kex_method,
        cipher_c2s: c2s.cipher,
        cipher_s2c: s2c.cipher,
        mac_c2s: c2s.mac,
        mac_s2c: s2c.mac,
        comp_c2s: c2s.compression,
        comp_s2c: s2c.compression,
        server_strict: kex.contains(&STRICT_SERVER),
    })
}

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
}

/// Everything the exchange hash covers besides the reply itself.
#[derive(Debug)]
pub struct Transcript<'a> {
    /// Our identification line (V_C).
    pub client_id: &'a [u8],
    /// The server's identification line (V_S).
    pub server_id: &'a [u8],
    /// Our KEXINIT payload (I_C).
    pub client_kexinit: &'a [u8],
    /// The server's KEXINIT payload (I_S).
    pub server_kexinit: &'a [u8],
}

/// The result of a completed exchange: both directions' keys.
#[derive(Debug)]
pub struct Outcome {
    /// The exchange hash H (the session id, for the first exchange).
    pub exchange_hash: Vec<u8>,
    /// The server's host key.
    pub host_key: HostKey,
    /// Keys for what we send.
    pub client_to_server: Keys,
    /// Keys for what we receive.
    pub server_to_client: Keys,
}

/// Handles SSH_MSG_KEX_ECDH_REPLY: computes K and H, verifies the host's
/// signature over H, and derives the keys. `session_id` is `None` for the
/// first exchange (H becomes the session id).
pub fn finish(
    ours: Ephemeral,
    reply: &[u8],
    transcript: &Transcript<'_>,
    negotiated: &Negotiated,
    session_id: Option<&[u8]>,
) -> Result<Outcome> {
    let mut r = Reader::body(reply);
    let host_key_blob = r.string()?;
    let server_public = r.string()?;
    let signature_blob = r.string()?;

    let host_key = HostKey::from_blob(host_key_blob)?;
    let server_public: [u8; 32] = server_public
        .try_into()
        .map_err(|_| Error::Protocol("the server's curve25519 key is not 32 bytes".into()))?;
    let shared = Zeroizing::new(
        ours.secret
            .diffie_hellman(&PublicKey::from(server_public))
            .to_bytes(),
    );
    // RFC 8731 §3: an all-zero secret means a low-order point; abort.
    if shared.iter().all(|&b| b == 0) {
        return Err(Error::Protocol(
            "curve25519 shared secret is all zero".into(),
        ));
    }
    let encoded_k = ssh_packetizer::encode_mpint(&shared[..]);

    let mut h = Sha256::new();
    for field in [
        transcript.client_id,
        transcript.server_id,
        transcript.client_kexinit,
        transcript.server_kexinit,
        host_key_blob,
        ours.public.as_bytes(),
        &server_public,
    ] {
        h.update((field.len() as u32).to_be_bytes());
        h.update(field);
    }
    h.update(&encoded_k[..]);
    let exchange_hash = h.finalize().to_vec();

    verify_signature(&host_key, signature_blob, &exchange_hash)?;

    let session_id = session_id.unwrap_or(&exchange_hash);
    let kdf =
        KeyDerivation::from_encoded_secret(KdfHash::Sha256, &encoded_k, &exchange_hash, session_id);
    let client_to_server = kdf
        .keys(
            Direction::ClientToServer,
            negotiated.cipher_c2s,
            negotiated.mac_c2s,
        )?
        .with_compression(negotiated.comp_c2s);
    let server_to_client = kdf
        .keys(
            Direction::ServerToClient,
            negotiated.cipher_s2c,
            negotiated.mac_s2c,
        )?
        .with_compression(negotiated.comp_s2c);
    Ok(Outcome {
        exchange_hash,
        host_key,
        client_to_server,
        server_to_client,
    })
}

fn verify_signature(host_key: &HostKey, blob: &[u8], exchange_hash: &[u8]) -> Result<()> {
    let mut r = Reader::new(blob);
    if r.string()? != HOST_KEY_ALG.as_bytes() {
        return Err(Error::BadHostSignature);
    }
    let sig: [u8; 64] = r
        .string()?
        .try_into()
        .map_err(|_| Error::BadHostSignature)?;
    let key = VerifyingKey::from_bytes(host_key.ed25519()).map_err(|_| Error::BadHostSignature)?;
    key.verify_strict(exchange_hash, &Signature::from_bytes(&sig))
        .map_err(|_| Error::BadHostSignature)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server_kexinit(kex: &str, ciphers: &str, macs: &str) -> Vec<u8> {
        Msg::new(msg::KEXINIT)
            .raw(&[0; 16])
            .string(kex)
            .string("rsa-sha2-512,ssh-ed25519")
            .string(ciphers)
            .string(ciphers)
            .string(macs)
            .string(macs)
            .string("none,zlib@openssh.com")
            .string("none,zlib@openssh.com")
            .string("")
            .string("")
            .bool(false)
            .u32(0)
            .finish()
    }

    #[test]
    fn the_clients_order_wins_and_aead_takes_no_mac() {
        let theirs = server_kexinit(
            &format!("curve25519-sha256@libssh.org,{STRICT_SERVER}"),
            "aes256-ctr,aes128-gcm@openssh.com",
            "hmac-sha1",
        );
        let n = negotiate(&Preferences::default(), &theirs).unwrap();
        assert_eq!(n.kex, "curve25519-sha256@libssh.org");
        assert_eq!(n.cipher_c2s, CipherAlgorithm::Aes128Gcm);
        assert_eq!(n.mac_c2s, MacAlgorithm::None);
        assert!(n.server_strict);
    }

    #[test]
    fn nothing_in_common_names_the_list() {
        let theirs = server_kexinit("curve25519-sha256", "aes128-cbc", "hmac-sha1");
        let err = negotiate(&Preferences::default(), &theirs).unwrap_err();
        assert!(err.to_string().contains("no common cipher"), "{err}");
        assert!(err.to_string().contains("aes128-cbc"), "{err}");
    }

    #[test]
    fn the_strict_marker_goes_only_into_the_first_kexinit() {
        let prefs = Preferences::default();
        let has_marker = |initial| {
            let ours = client_kexinit(&prefs, initial).unwrap();
            let mut r = Reader::body(&ours);
            r.fixed(16).unwrap();
            r.name_list().unwrap().contains(&STRICT_CLIENT)
        };
        assert!(has_marker(true));
        assert!(!has_marker(false));
    }
}
