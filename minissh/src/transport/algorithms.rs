//! The algorithm negotiation: our preferences, our KEXINIT, and what the
//! peer's KEXINIT and ours agree on (RFC 4253 §7.1), the client's lists
//! winning. Ciphers, MACs and compression are the crate's
//! [`mod@negotiate`] rule; the kex method and host key type are ours.

use ssh_packetizer::negotiate::{self, AlgorithmLists};
use ssh_packetizer::{CipherAlgorithm, CompressionAlgorithm, CryptoProvider, MacAlgorithm, Role};

use crate::error::{Error, Result};
use crate::msg;
use crate::wire::{Msg, Reader};

/// The kex methods we offer, best first.
const KEX_METHODS: [&str; 2] = ["curve25519-sha256", "curve25519-sha256@libssh.org"];
/// Strict kex markers (OpenSSH's answer to the Terrapin attack).
pub const STRICT_CLIENT: &str = "kex-strict-c-v00@openssh.com";
/// The server's strict kex marker.
pub const STRICT_SERVER: &str = "kex-strict-s-v00@openssh.com";
pub(super) const HOST_KEY_ALG: &str = "ssh-ed25519";

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

/// Our strict kex marker, as `role`.
fn strict_marker(role: Role) -> &'static str {
    match role {
        Role::Server => STRICT_SERVER,
        _ => STRICT_CLIENT,
    }
}

/// The peer's strict kex marker, when we are `role`.
fn peer_strict_marker(role: Role) -> &'static str {
    match role {
        Role::Server => STRICT_CLIENT,
        _ => STRICT_SERVER,
    }
}

/// Our KEXINIT payload. `initial` adds the strict kex marker, which only
/// the first key exchange of a connection carries.
pub fn kexinit(role: Role, prefs: &Preferences, initial: bool) -> Result<Vec<u8>> {
    let mut cookie = [0u8; 16];
    getrandom::fill(&mut cookie)
        .map_err(|e| Error::Protocol(format!("no randomness for the cookie: {e}")))?;
    let mut kex = KEX_METHODS.join(",");
    if initial && prefs.strict_kex {
        kex.push(',');
        kex.push_str(strict_marker(role));
    }
    // The lists negotiation uses: what the provider refuses is not offered.
    let [ciphers_c2s, ciphers_s2c, macs_c2s, macs_s2c, comp_c2s, comp_s2c] = our_lists(prefs);
    Ok(Msg::new(msg::KEXINIT)
        .raw(&cookie)
        .string(kex)
        .string(HOST_KEY_ALG)
        .string(ciphers_c2s)
        .string(ciphers_s2c)
        .string(macs_c2s)
        .string(macs_s2c)
        .string(comp_c2s)
        .string(comp_s2c)
        .string("")
        .string("")
        .bool(false)
        .u32(0)
        .finish())
}

/// The algorithms both sides agreed on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Agreed {
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
pub fn negotiate(role: Role, prefs: &Preferences, peer_kexinit: &[u8]) -> Result<Agreed> {
    let peer = parse_kexinit(peer_kexinit)?;
    let ours_all = our_lists(prefs);
    let our_kex: Vec<&str> = KEX_METHODS.to_vec();
    let our_host_key = [HOST_KEY_ALG];
    let server = role == Role::Server;
    let ((client_kex, server_kex), (client_hk, server_hk)) = if server {
        (
            (&peer.kex[..], &our_kex[..]),
            (&peer.host_key[..], &our_host_key[..]),
        )
    } else {
        (
            (&our_kex[..], &peer.kex[..]),
            (&our_host_key[..], &peer.host_key[..]),
        )
    };
    let kex_method = pick("key exchange", client_kex, server_kex)?;
    let kex_method = KEX_METHODS
        .into_iter()
        .find(|m| *m == kex_method)
        .unwrap_or(KEX_METHODS[0]);
    pick("host key", client_hk, server_hk)?;
    // Ciphers, MACs and compression: the crate's RFC 4253 §7.1 rule.
    let (ours, theirs) = (algorithm_lists(&ours_all), algorithm_lists(&peer.lists));
    let chosen = if server {
        negotiate::negotiate_with(prefs.provider, &theirs, &ours)?
    } else {
        negotiate::negotiate_with(prefs.provider, &ours, &theirs)?
    };
    // RFC 4253 §7: a guess is right only if both sides list the same kex
    // method first, and the same host key type first.
    let guessed_right =
        client_kex.first() == server_kex.first() && client_hk.first() == server_hk.first();
    let (c2s, s2c) = (chosen.client_to_server, chosen.server_to_client);
    Ok(Agreed {
        kex: kex_method,
        cipher_c2s: c2s.cipher,
        cipher_s2c: s2c.cipher,
        mac_c2s: c2s.mac,
        mac_s2c: s2c.mac,
        comp_c2s: c2s.compression,
        comp_s2c: s2c.compression,
        peer_strict: peer.kex.contains(&peer_strict_marker(role)),
        ignore_guess: peer.first_kex_follows && !guessed_right,
        provider: prefs.provider,
    })
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
        let n = negotiate(Role::Client, &Preferences::default(), &theirs).unwrap();
        assert_eq!(n.kex, "curve25519-sha256@libssh.org");
        assert_eq!(n.cipher_c2s, CipherAlgorithm::Aes128Gcm);
        assert_eq!(n.mac_c2s, MacAlgorithm::None);
        assert!(n.peer_strict);
    }

    #[test]
    fn nothing_in_common_names_the_list() {
        let theirs = server_kexinit("curve25519-sha256", "aes128-cbc", "hmac-sha1");
        let err = negotiate(Role::Client, &Preferences::default(), &theirs).unwrap_err();
        assert!(err.to_string().contains("no common cipher"), "{err}");
        assert!(err.to_string().contains("aes128-cbc"), "{err}");
    }

    #[test]
    fn the_strict_marker_goes_only_into_the_first_kexinit() {
        let prefs = Preferences::default();
        let has_marker = |initial| {
            let ours = kexinit(Role::Client, &prefs, initial).unwrap();
            let mut r = Reader::body(&ours);
            r.fixed(16).unwrap();
            r.name_list().unwrap().contains(&STRICT_CLIENT)
        };
        assert!(has_marker(true));
        assert!(!has_marker(false));
    }
}
