//! Algorithm negotiation (RFC 4253 §7.1): the cipher, MAC and compression
//! each direction uses, from the two sides' KEXINIT name-lists.
//!
//! The rule is the RFC's: for each list, the first algorithm on the
//! client's list that is also on the server's. Names this crate does not
//! implement are skipped, so a list may carry them; `none` is never chosen
//! as a cipher or MAC, however both lists name it; and so are the legacy
//! ones (CBC, 3DES, MD5, the -96 MACs) in a build without the `legacy`
//! feature; with it they are chosen only when a list names them, for the
//! default lists never do. Under an AEAD cipher
//! (its tag authenticates) the MAC is `none` and the MAC lists are not
//! consulted at all: they may be empty or share nothing, as OpenSSH allows
//! (asyncssh#799, paramiko#2491 met peers that rely on it).
//!
//! ```
//! use ssh_packetizer::negotiate::{negotiate, AlgorithmLists};
//! use ssh_packetizer::{CipherAlgorithm, MacAlgorithm};
//!
//! let client = AlgorithmLists::both_ways(
//!     "chacha20-poly1305@openssh.com,aes128-ctr",
//!     "hmac-sha2-256-etm@openssh.com",
//!     "none",
//! );
//! let server = AlgorithmLists::both_ways("aes128-ctr,chacha20-poly1305@openssh.com", "", "none");
//! let chosen = negotiate(&client, &server)?;
//! // The client's order wins, and the AEAD cipher needs no common MAC.
//! assert_eq!(chosen.client_to_server.cipher, CipherAlgorithm::ChaCha20Poly1305);
//! assert_eq!(chosen.client_to_server.mac, MacAlgorithm::None);
//! # Ok::<(), ssh_packetizer::Error>(())
//! ```

use std::fmt::Display;

use crate::algorithm::{CipherAlgorithm, CompressionAlgorithm, MacAlgorithm, Mode, Named};
use crate::crypto::CryptoProvider;
use crate::error::Error;

/// Our preference for ciphers, best first: the AEAD ciphers, then AES-CTR.
/// The legacy ciphers are never in it, with or without their feature; ask
/// for them by name.
pub const DEFAULT_CIPHERS: &[CipherAlgorithm] = &[
    CipherAlgorithm::ChaCha20Poly1305,
    CipherAlgorithm::Aes128Gcm,
    CipherAlgorithm::Aes256Gcm,
    CipherAlgorithm::Aes128Ctr,
    CipherAlgorithm::Aes192Ctr,
    CipherAlgorithm::Aes256Ctr,
];

/// Our preference for MACs (used with AES-CTR), best first, in OpenSSH's
/// order: encrypt-then-MAC, then the plain forms; UMAC, the fastest, first
/// in each.
pub const DEFAULT_MACS: &[MacAlgorithm] = &[
    MacAlgorithm::Umac64Etm,
    MacAlgorithm::Umac128Etm,
    MacAlgorithm::HmacSha256Etm,
    MacAlgorithm::HmacSha512Etm,
    MacAlgorithm::HmacSha1Etm,
    MacAlgorithm::Umac64,
    MacAlgorithm::Umac128,
    MacAlgorithm::HmacSha256,
    MacAlgorithm::HmacSha512,
    MacAlgorithm::HmacSha1,
];

/// Our preference for compression: none, then delayed zlib (which OpenSSH's
/// server offers by default).
pub const DEFAULT_COMPRESSION: &[CompressionAlgorithm] = &[
    CompressionAlgorithm::None,
    CompressionAlgorithm::ZlibOpenSsh,
];

/// Algorithms as a KEXINIT name-list: names joined by commas.
pub fn name_list<T: Display>(algorithms: &[T]) -> String {
    let names: Vec<String> = algorithms.iter().map(ToString::to_string).collect();
    names.join(",")
}

/// One side's cipher, MAC and compression name-lists, as its KEXINIT
/// carries them (comma-separated, best first).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AlgorithmLists<'a> {
    /// `encryption_algorithms_client_to_server`
    pub ciphers_client_to_server: &'a str,
    /// `encryption_algorithms_server_to_client`
    pub ciphers_server_to_client: &'a str,
    /// `mac_algorithms_client_to_server`
    pub macs_client_to_server: &'a str,
    /// `mac_algorithms_server_to_client`
    pub macs_server_to_client: &'a str,
    /// `compression_algorithms_client_to_server`
    pub compression_client_to_server: &'a str,
    /// `compression_algorithms_server_to_client`
    pub compression_server_to_client: &'a str,
}

impl<'a> AlgorithmLists<'a> {
    /// The same lists for both directions, as most implementations send.
    pub fn both_ways(ciphers: &'a str, macs: &'a str, compression: &'a str) -> AlgorithmLists<'a> {
        AlgorithmLists {
            ciphers_client_to_server: ciphers,
            ciphers_server_to_client: ciphers,
            macs_client_to_server: macs,
            macs_server_to_client: macs,
            compression_client_to_server: compression,
            compression_server_to_client: compression,
        }
    }
}

/// What one direction uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DirectionAlgorithms {
    /// The cipher.
    pub cipher: CipherAlgorithm,
    /// The MAC (`none` under an AEAD cipher).
    pub mac: MacAlgorithm,
    /// The compression.
    pub compression: CompressionAlgorithm,
}

/// The outcome of a negotiation, per direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Negotiated {
    /// What the client sends with (and the server reads with).
    pub client_to_server: DirectionAlgorithms,
    /// What the server sends with (and the client reads with).
    pub server_to_client: DirectionAlgorithms,
}

/// Chooses each direction's cipher, MAC and compression from the client's
/// and the server's lists, by RFC 4253 §7.1's first-match rule (see the
/// module docs). [`Error::NoCommonAlgorithm`] names the list and both
/// sides' offers when one has no match.
pub fn negotiate(
    client: &AlgorithmLists<'_>,
    server: &AlgorithmLists<'_>,
) -> Result<Negotiated, Error> {
    negotiate_with(CryptoProvider::get_default(), client, server)
}

/// [`negotiate`] for a connection on `provider`: the choice is made on the
/// lists as sent (both sides must come to the same one), and a cipher or
/// MAC the provider refuses (a FIPS provider refuses what is not approved)
/// is then [`Error::NotApproved`]. Leave such algorithms out of our own
/// lists ([`CryptoProvider::allows_cipher`], [`CryptoProvider::allows_mac`])
/// and the peer can never choose them.
pub fn negotiate_with(
    provider: &'static CryptoProvider,
    client: &AlgorithmLists<'_>,
    server: &AlgorithmLists<'_>,
) -> Result<Negotiated, Error> {
    let direction = |way: &'static str,
                     ciphers: (&str, &str),
                     macs: (&str, &str),
                     compression: (&str, &str)|
     -> Result<DirectionAlgorithms, Error> {
        // `none` is never negotiated as a cipher or MAC: it would be a
        // session in the clear, whatever both lists say.
        let cipher: CipherAlgorithm = first_match(kind(way, 0), ciphers.0, ciphers.1, |c| {
            c != CipherAlgorithm::None
        })?;
        provider.cipher_supplier(cipher)?;
        let mac = if cipher.is_aead() {
            MacAlgorithm::None
        } else {
            first_match(kind(way, 1), macs.0, macs.1, |m| {
                Mode::of(cipher, m).is_ok_and(|mode| mode != Mode::Clear)
            })?
        };
        provider.mac_supplier(mac)?;
        Ok(DirectionAlgorithms {
            cipher,
            mac,
            compression: first_match(kind(way, 2), compression.0, compression.1, |_| true)?,
        })
    };
    Ok(Negotiated {
        client_to_server: direction(
            "client to server",
            (
                client.ciphers_client_to_server,
                server.ciphers_client_to_server,
            ),
            (client.macs_client_to_server, server.macs_client_to_server),
            (
                client.compression_client_to_server,
                server.compression_client_to_server,
            ),
        )?,
        server_to_client: direction(
            "server to client",
            (
                client.ciphers_server_to_client,
                server.ciphers_server_to_client,
            ),
            (client.macs_server_to_client, server.macs_server_to_client),
            (
                client.compression_server_to_client,
                server.compression_server_to_client,
            ),
        )?,
    })
}

/// The name of list `which` (cipher, MAC, compression) for direction `way`.
fn kind(way: &'static str, which: usize) -> &'static str {
    match (way, which) {
        ("client to server", 0) => "cipher (client to server)",
        ("client to server", 1) => "MAC (client to server)",
        ("client to server", _) => "compression (client to server)",
        (_, 0) => "cipher (server to client)",
        (_, 1) => "MAC (server to client)",
        _ => "compression (server to client)",
    }
}

/// The first name on `client` that is on `server`, that this build runs (a
/// legacy algorithm needs the `legacy` feature) and that `usable` accepts.
fn first_match<T: Named>(
    kind: &'static str,
    client: &str,
    server: &str,
    usable: impl Fn(T) -> bool,
) -> Result<T, Error> {
    let offered = |list: &str, name: &str| list.split(',').any(|n| n == name);
    client
        .split(',')
        .filter(|name| !name.is_empty() && offered(server, name))
        .filter_map(|name| name.parse::<T>().ok())
        .find(|&algorithm| algorithm.is_available() && usable(algorithm))
        .ok_or_else(|| Error::NoCommonAlgorithm {
            kind,
            client: client.to_owned(),
            server: server.to_owned(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use CipherAlgorithm as C;
    use CompressionAlgorithm as Z;
    use MacAlgorithm as M;

    fn lists(ciphers: &'static str, macs: &'static str) -> AlgorithmLists<'static> {
        AlgorithmLists::both_ways(ciphers, macs, "none")
    }

    #[test]
    fn the_clients_order_wins() {
        let client = lists("aes256-ctr,aes128-ctr", "hmac-sha1,hmac-sha2-256");
        let server = lists("aes128-ctr,aes256-ctr", "hmac-sha2-256,hmac-sha1");
        let n = negotiate(&client, &server).unwrap();
        assert_eq!(n.client_to_server.cipher, C::Aes256Ctr);
        assert_eq!(n.client_to_server.mac, M::HmacSha1);
        assert_eq!(n.server_to_client, n.client_to_server);
        // The other way round, the other choice.
        let n = negotiate(&server, &client).unwrap();
        assert_eq!(n.client_to_server.cipher, C::Aes128Ctr);
        assert_eq!(n.client_to_server.mac, M::HmacSha256);
    }

    #[test]
    fn each_direction_is_chosen_by_itself() {
        let client = AlgorithmLists {
            ciphers_client_to_server: "aes128-gcm@openssh.com,aes128-ctr",
            ciphers_server_to_client: "aes128-ctr",
            macs_client_to_server: "hmac-sha2-512",
            macs_server_to_client: "hmac-sha2-512-etm@openssh.com",
            compression_client_to_server: "zlib@openssh.com,none",
            compression_server_to_client: "none",
        };
        let server = AlgorithmLists::both_ways(
            "aes128-ctr,aes128-gcm@openssh.com",
            "hmac-sha2-512-etm@openssh.com,hmac-sha2-512",
            "none,zlib@openssh.com",
        );
        let n = negotiate(&client, &server).unwrap();
        assert_eq!(
            n.client_to_server,
            DirectionAlgorithms {
                cipher: C::Aes128Gcm,
                mac: M::None,
                compression: Z::ZlibOpenSsh
            }
        );
        assert_eq!(
            n.server_to_client,
            DirectionAlgorithms {
                cipher: C::Aes128Ctr,
                mac: M::HmacSha512Etm,
                compression: Z::None
            }
        );
    }

    #[test]
    fn an_aead_cipher_needs_no_common_mac() {
        for server_macs in ["", "hmac-md5", "umac-64@openssh.com"] {
            let client = lists("aes256-gcm@openssh.com", "hmac-sha2-256");
            let server = lists("aes256-gcm@openssh.com", server_macs);
            let n = negotiate(&client, &server).unwrap();
            assert_eq!(n.server_to_client.mac, M::None, "{server_macs:?}");
        }
        // Without AEAD, no common MAC is an error naming both lists.
        let err = negotiate(
            &lists("aes128-ctr", "hmac-sha2-256"),
            &lists("aes128-ctr", "hmac-sha1"),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "no common MAC (client to server) algorithm: the client offers hmac-sha2-256, the server offers hmac-sha1"
        );
    }

    #[test]
    fn names_this_crate_does_not_implement_are_skipped() {
        let client = lists(
            "aes512-xts,twofish-cbc,aes128-ctr",
            "hmac-whirlpool,hmac-sha1",
        );
        let server = lists(
            "twofish-cbc,aes512-xts,aes128-ctr",
            "hmac-sha1,hmac-whirlpool",
        );
        let n = negotiate(&client, &server).unwrap();
        assert_eq!(n.client_to_server.cipher, C::Aes128Ctr);
        assert_eq!(n.client_to_server.mac, M::HmacSha1);
    }

    #[test]
    fn legacy_macs_are_chosen_by_name_and_only_with_their_feature() {
        let client = lists("aes128-ctr", "hmac-md5-96,hmac-sha1");
        let server = lists("aes128-ctr", "hmac-sha1,hmac-md5-96");
        let n = negotiate(&client, &server).unwrap();
        let expected = if cfg!(feature = "legacy") {
            M::HmacMd5_96
        } else {
            M::HmacSha1
        };
        assert_eq!(n.client_to_server.mac, expected);
        for m in DEFAULT_MACS {
            assert!(!m.is_legacy(), "{m}: never in the default list");
        }
    }

    #[test]
    fn none_is_never_chosen_as_a_cipher_or_mac() {
        let both = lists("none,aes128-ctr", "none,hmac-sha1");
        let n = negotiate(&both, &both).unwrap();
        assert_eq!(
            (n.client_to_server.cipher, n.client_to_server.mac),
            (C::Aes128Ctr, M::HmacSha1)
        );
        assert!(negotiate(&lists("none", "none"), &lists("none", "none")).is_err());
        assert!(negotiate(&lists("aes128-ctr", "none"), &lists("aes128-ctr", "none")).is_err());
    }

    #[test]
    fn a_fips_provider_refuses_what_both_lists_would_choose() {
        static STRICT: CryptoProvider =
            CryptoProvider::new("strict", true, &crate::crypto::rustcrypto::RustCrypto);
        let ours = lists(
            "chacha20-poly1305@openssh.com,aes128-ctr",
            "umac-64-etm@openssh.com,hmac-sha2-256-etm@openssh.com",
        );
        // The peer, on the same lists, chooses ChaCha20: skipping it here
        // would leave the two sides on different ciphers.
        let refused = negotiate_with(&STRICT, &ours, &ours).unwrap_err();
        assert!(matches!(refused, Error::NotApproved { .. }), "{refused:?}");
        let mac_refused = lists(
            "aes128-ctr",
            "umac-64-etm@openssh.com,hmac-sha2-256-etm@openssh.com",
        );
        assert!(negotiate_with(&STRICT, &mac_refused, &mac_refused).is_err());
        // Lists that offer only what it allows negotiate.
        let approved = lists("aes128-ctr", "hmac-sha2-256-etm@openssh.com");
        let chosen = negotiate_with(&STRICT, &approved, &approved).unwrap();
        assert_eq!(chosen.client_to_server.cipher, C::Aes128Ctr);
        assert_eq!(chosen.client_to_server.mac, M::HmacSha256Etm);
        // RustCrypto runs both.
        let chosen = negotiate_with(CryptoProvider::rust_crypto(), &ours, &ours).unwrap();
        assert_eq!(chosen.server_to_client.cipher, C::ChaCha20Poly1305);
    }

    #[test]
    fn nothing_in_common_names_the_list_and_both_offers() {
        let err = negotiate(
            &lists("chacha20-poly1305@openssh.com", ""),
            &lists("aes128-ctr,aes256-ctr", "hmac-sha1"),
        )
        .unwrap_err();
        match err {
            Error::NoCommonAlgorithm {
                kind,
                client,
                server,
            } => {
                assert_eq!(kind, "cipher (client to server)");
                assert_eq!(client, "chacha20-poly1305@openssh.com");
                assert_eq!(server, "aes128-ctr,aes256-ctr");
            }
            other => panic!("{other:?}"),
        }
        // An empty list, or names with empty items, match nothing.
        assert!(negotiate(&lists("", ""), &lists("", "")).is_err());
        assert!(negotiate(&lists(",", "x"), &lists(",", "x")).is_err());
    }

    #[test]
    fn the_default_lists_are_modern_first_and_negotiate_with_themselves() {
        let ciphers = name_list(DEFAULT_CIPHERS);
        let macs = name_list(DEFAULT_MACS);
        let compression = name_list(DEFAULT_COMPRESSION);
        assert!(ciphers.starts_with("chacha20-poly1305@openssh.com,aes128-gcm@openssh.com"));
        assert!(macs.starts_with(
            "umac-64-etm@openssh.com,umac-128-etm@openssh.com,hmac-sha2-256-etm@openssh.com"
        ));
        assert_eq!(compression, "none,zlib@openssh.com");
        for c in DEFAULT_CIPHERS {
            assert!(!c.name().contains("cbc"), "no legacy cipher by default");
        }
        let ours = AlgorithmLists::both_ways(&ciphers, &macs, &compression);
        let n = negotiate_with(CryptoProvider::rust_crypto(), &ours, &ours).unwrap();
        assert_eq!(n.client_to_server.cipher, C::ChaCha20Poly1305);
        assert_eq!(n.client_to_server.compression, Z::None);
        // The build's default provider: FIPS mode refuses ChaCha20, which
        // both sides' default lists choose.
        let n = negotiate(&ours, &ours);
        if cfg!(feature = "fips") {
            assert!(matches!(n, Err(Error::NotApproved { .. })), "{n:?}");
        } else {
            assert_eq!(n.unwrap().client_to_server.cipher, C::ChaCha20Poly1305);
        }
    }
}
