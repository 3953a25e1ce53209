//! SSH message numbers: the packet layer's, and the key exchange method's
//! own (curve25519-sha256 reuses the ECDH numbers of RFC 5656).

pub use ssh_packetizer::msg::*;

/// SSH_MSG_KEX_ECDH_INIT (RFC 5656 §7.1)
pub const KEX_ECDH_INIT: u8 = 30;
/// SSH_MSG_KEX_ECDH_REPLY (RFC 5656 §7.1)
pub const KEX_ECDH_REPLY: u8 = 31;

/// Whether a message belongs to the key exchange (RFC 4253 §7: 20-49).
pub fn is_kex(msg_type: u8) -> bool {
    (KEXINIT..=49).contains(&msg_type)
}

/// SSH_MSG_USERAUTH_PK_OK (RFC 4252 §7): the key would do; sign with it.
pub const USERAUTH_PK_OK: u8 = 60;
