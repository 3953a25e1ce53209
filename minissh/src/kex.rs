//! Key exchange: KEXINIT negotiation, curve25519-sha256 (RFC 8731), the
//! ssh-ed25519 host key signature, and the keys it yields.
//!
//! Nothing here does I/O: the transport feeds in the peer's messages and
//! sends what comes back.

use ed25519_dalek::{Signature, VerifyingKey};
use sha2::{Digest, Sha256};
use ssh_packetizer::negotiate::{self, AlgorithmLists};
use ssh_packetizer::{
    CipherAlgorithm, CompressionAlgorithm, CryptoProvider, Direction, KdfHash, KeyDerivation, Keys,
    MacAlgorithm,
};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::hostkey::HostKey;
use crate::identity::Identity;
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
    /// Whose primitives the packet layer and the key derivation run on;
    /// the lists offer only what it allows (a FIPS provider refuses some).
    pub provider: &'static CryptoProvider,
}

impl Default for Preferences {
    /// The crate's default lists, and no compression unless asked for.
    fn default() -> Self {
        Preferences {
            ciphers: negotiate::DEFAULT_CIPHERS.to_vec(),
            macs: negotiate::DEFAULT_MACS.to_vec(),
            compression: vec![CompressionAlgorithm::None],
            strict_kex: true,
            provider: CryptoProvider::get_default(),
        }
    }
}

fn names<T: Copy>(items: &[T], name: impl Fn(T) -> &'static str) -> String {
    items.iter().map(|&i| name(i)).collect::<Vec<_>>().join(",")
}

/// Which end of the connection we are: it decides the strict kex marker we
/// send and whose lists win the negotiation (the client's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// We connected.
    Client,
    /// We accepted.
    Server,
}

impl Side {
    /// Our strict kex marker.
    fn strict_marker(self) -> &'static str {
        match self {
            Side::Client => STRICT_CLIENT,
            Side::Server => STRICT_SERVER,
        }
    }

    /// The peer's strict kex marker.
    fn peer_strict_marker(self) -> &'static str {
        match self {
            Side::Client => STRICT_SERVER,
            Side::Server => STRICT_CLIENT,
        }
    }
}

/// Our KEXINIT payload. `initial` adds the strict kex marker, which only
/// the first key exchange of a connection carries.
pub fn kexinit(side: Side, prefs: &Preferences, initial: bool) -> Result<Vec<u8>> {
    let mut cookie = [0u8; 16];
    getrandom::fill(&mut cookie)
        .map_err(|e| Error::Protocol(format!("no randomness for the cookie: {e}")))?;
    let mut kex = KEX_METHODS.join(",");
    if initial && prefs.strict_kex {
        kex.push(',');
        kex.push_str(side.strict_marker());
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
    /// Whether the peer announced strict kex.
    pub peer_strict: bool,
    /// Whether the peer sent a guessed kex packet after its KEXINIT that
    /// guessed wrong and must be ignored (RFC 4253 §7).
    pub ignore_guess: bool,
    /// The provider the keys are derived with (ours).
    pub provider: &'static CryptoProvider,
}

/// RFC 4253 §7.1: the first of the client's names the server also knows.
fn pick<'a>(what: &'static str, client: &[&'a str], server: &[&'a str]) -> Result<&'a str> {
    client
        .iter()
        .copied()
        .find(|c| server.contains(c))
        .ok_or_else(|| Error::NoCommonAlgorithm {
            what,
            ours: client.join(","),
            theirs: server.join(","),
        })
}

/// The lists of a KEXINIT payload.
struct KexinitLists<'a> {
    kex: Vec<&'a str>,
    host_key: Vec<&'a str>,
    /// Ciphers, MACs and compression, each client to server then server to
    /// client, joined back as sent.
    lists: [String; 6],
    first_kex_follows: bool,
}

fn parse_kexinit(payload: &[u8]) -> Result<KexinitLists<'_>> {
    let mut r = Reader::body(payload);
    r.fixed(16)?;
    let kex = r.name_list()?;
    let host_key = r.name_list()?;
    let mut lists: [String; 6] = Default::default();
    for list in &mut lists {
        *list = r.text()?.to_owned();
    }
    r.name_list()?;
    r.name_list()?;
    let first_kex_follows = r.bool()?;
    Ok(KexinitLists {
        kex,
        host_key,
        lists,
        first_kex_follows,
    })
}

fn our_lists(prefs: &Preferences) -> [String; 6] {
    // Both sides must choose alike: what our provider refuses is not
    // offered at all.
    let provider = prefs.provider;
    let ciphers: Vec<_> = prefs
        .ciphers
        .iter()
        .filter(|&&c| provider.allows_cipher(c))
        .collect();
    let macs: Vec<_> = prefs
        .macs
        .iter()
        .filter(|&&m| provider.allows_mac(m))
        .collect();
    let ciphers = negotiate::name_list(&ciphers);
    let macs = negotiate::name_list(&macs);
    let comp = negotiate::name_list(&prefs.compression);
    [
        ciphers.clone(),
        ciphers,
        macs.clone(),
        macs,
        comp.clone(),
        comp,
    ]
}

fn algorithm_lists(l: &[String; 6]) -> AlgorithmLists<'_> {
    AlgorithmLists {
        ciphers_client_to_server: &l[0],
        ciphers_server_to_client: &l[1],
        macs_client_to_server: &l[2],
        macs_server_to_client: &l[3],
        compression_client_to_server: &l[4],
        compression_server_to_client: &l[5],
    }
}

/// Negotiates our `prefs` against the peer's KEXINIT payload, the client's
/// lists winning (RFC 4253 §7.1).
pub fn negotiate(side: Side, prefs: &Preferences, peer_kexinit: &[u8]) -> Result<Negotiated> {
    let peer = parse_kexinit(peer_kexinit)?;
    let ours_all = our_lists(prefs);
    let our_kex: Vec<&str> = KEX_METHODS.to_vec();
    let our_host_key = [HOST_KEY_ALG];
    let ((client_kex, server_kex), (client_hk, server_hk)) = match side {
        Side::Client => (
            (&our_kex[..], &peer.kex[..]),
            (&our_host_key[..], &peer.host_key[..]),
        ),
        Side::Server => (
            (&peer.kex[..], &our_kex[..]),
            (&peer.host_key[..], &our_host_key[..]),
        ),
    };
    let kex_method = pick("key exchange", client_kex, server_kex)?;
    let kex_method = KEX_METHODS
        .into_iter()
        .find(|m| *m == kex_method)
        .unwrap_or(KEX_METHODS[0]);
    pick("host key", client_hk, server_hk)?;
    // Ciphers, MACs and compression: the crate's RFC 4253 §7.1 rule.
    let (ours, theirs) = (algorithm_lists(&ours_all), algorithm_lists(&peer.lists));
    let chosen = match side {
        Side::Client => negotiate::negotiate_with(prefs.provider, &ours, &theirs)?,
        Side::Server => negotiate::negotiate_with(prefs.provider, &theirs, &ours)?,
    };
    // RFC 4253 §7: a guess is right only if both sides list the same kex
    // method first, and the same host key type first.
    let guessed_right =
        client_kex.first() == server_kex.first() && client_hk.first() == server_hk.first();
    let (c2s, s2c) = (chosen.client_to_server, chosen.server_to_client);
    Ok(Negotiated {
        kex: kex_method,
        cipher_c2s: c2s.cipher,
        cipher_s2c: s2c.cipher,
        mac_c2s: c2s.mac,
        mac_s2c: s2c.mac,
        comp_c2s: c2s.compression,
        comp_s2c: s2c.compression,
        peer_strict: peer.kex.contains(&side.peer_strict_marker()),
        ignore_guess: peer.first_kex_follows && !guessed_right,
        provider: prefs.provider,
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
    negotiated: &Negotiated,
) -> Result<(Keys, Keys)> {
    let kdf =
        KeyDerivation::from_encoded_secret(KdfHash::Sha256, encoded_k, exchange_hash, session_id)
            .with_crypto_provider(negotiated.provider);
    let n = negotiated;
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
    negotiated: &Negotiated,
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
        derive_keys(&encoded_k, &exchange_hash, session_id, negotiated)?;
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
    negotiated: &Negotiated,
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
        derive_keys(&encoded_k, &exchange_hash, session_id, negotiated)?;
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

/// RFC 4253 §7.1 for the initial exchange: the peer's first packet is
/// KEXINIT. (Strict kex's order, nothing but kex messages until NEWKEYS,
/// is the packet layer's: `Connection::set_strict_kex`.)
pub fn check_first_packet(msg_type: u8, seqno: u32) -> Result<()> {
    if seqno == 0 && msg_type != msg::KEXINIT {
        return Err(Error::Protocol(format!(
            "the peer's first packet is message {msg_type}, not KEXINIT"
        )));
    }
    Ok(())
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
        let n = negotiate(Side::Client, &Preferences::default(), &theirs).unwrap();
        assert_eq!(n.kex, "curve25519-sha256@libssh.org");
        assert_eq!(n.cipher_c2s, CipherAlgorithm::Aes128Gcm);
        assert_eq!(n.mac_c2s, MacAlgorithm::None);
        assert!(n.peer_strict);
    }

    #[test]
    fn nothing_in_common_names_the_list() {
        let theirs = server_kexinit("curve25519-sha256", "aes128-cbc", "hmac-sha1");
        let err = negotiate(Side::Client, &Preferences::default(), &theirs).unwrap_err();
        assert!(err.to_string().contains("no common cipher"), "{err}");
        assert!(err.to_string().contains("aes128-cbc"), "{err}");
    }

    #[test]
    fn the_strict_marker_goes_only_into_the_first_kexinit() {
        let prefs = Preferences::default();
        let has_marker = |initial| {
            let ours = kexinit(Side::Client, &prefs, initial).unwrap();
            let mut r = Reader::body(&ours);
            r.fixed(16).unwrap();
            r.name_list().unwrap().contains(&STRICT_CLIENT)
        };
        assert!(has_marker(true));
        assert!(!has_marker(false));
    }
}
