//! SSH message numbers (RFC 4250 §4.1) and DISCONNECT reason codes
//! (RFC 4253 §11.1), for transports built on this layer.
//!
//! ```
//! use ssh_packetizer::msg;
//! let ignore = [msg::IGNORE, 0, 0, 0, 0]; // an IGNORE with an empty string
//! assert_eq!(ignore[0], 2);
//! assert_eq!((msg::KEXINIT, msg::NEWKEYS, msg::reason::PROTOCOL_ERROR), (20, 21, 2));
//! ```

/// SSH_MSG_DISCONNECT
pub const DISCONNECT: u8 = 1;
/// SSH_MSG_IGNORE
pub const IGNORE: u8 = 2;
/// SSH_MSG_UNIMPLEMENTED
pub const UNIMPLEMENTED: u8 = 3;
/// SSH_MSG_DEBUG
pub const DEBUG: u8 = 4;
/// SSH_MSG_SERVICE_REQUEST
pub const SERVICE_REQUEST: u8 = 5;
/// SSH_MSG_SERVICE_ACCEPT
pub const SERVICE_ACCEPT: u8 = 6;
/// SSH_MSG_EXT_INFO (RFC 8308)
pub const EXT_INFO: u8 = 7;
/// SSH_MSG_KEXINIT
pub const KEXINIT: u8 = 20;
/// SSH_MSG_NEWKEYS
pub const NEWKEYS: u8 = 21;
/// SSH_MSG_USERAUTH_REQUEST
pub const USERAUTH_REQUEST: u8 = 50;
/// SSH_MSG_USERAUTH_FAILURE
pub const USERAUTH_FAILURE: u8 = 51;
/// SSH_MSG_USERAUTH_SUCCESS
pub const USERAUTH_SUCCESS: u8 = 52;
/// SSH_MSG_USERAUTH_BANNER
pub const USERAUTH_BANNER: u8 = 53;
/// SSH_MSG_USERAUTH_INFO_RESPONSE (RFC 4256)
pub const USERAUTH_INFO_RESPONSE: u8 = 61;
/// SSH_MSG_GLOBAL_REQUEST
pub const GLOBAL_REQUEST: u8 = 80;
/// SSH_MSG_REQUEST_SUCCESS
pub const REQUEST_SUCCESS: u8 = 81;
/// SSH_MSG_REQUEST_FAILURE
pub const REQUEST_FAILURE: u8 = 82;
/// SSH_MSG_CHANNEL_OPEN
pub const CHANNEL_OPEN: u8 = 90;
/// SSH_MSG_CHANNEL_OPEN_CONFIRMATION
pub const CHANNEL_OPEN_CONFIRMATION: u8 = 91;
/// SSH_MSG_CHANNEL_OPEN_FAILURE
pub const CHANNEL_OPEN_FAILURE: u8 = 92;
/// SSH_MSG_CHANNEL_WINDOW_ADJUST
pub const CHANNEL_WINDOW_ADJUST: u8 = 93;
/// SSH_MSG_CHANNEL_DATA
pub const CHANNEL_DATA: u8 = 94;
/// SSH_MSG_CHANNEL_EXTENDED_DATA
pub const CHANNEL_EXTENDED_DATA: u8 = 95;
/// SSH_MSG_CHANNEL_EOF
pub const CHANNEL_EOF: u8 = 96;
/// SSH_MSG_CHANNEL_CLOSE
pub const CHANNEL_CLOSE: u8 = 97;
/// SSH_MSG_CHANNEL_REQUEST
pub const CHANNEL_REQUEST: u8 = 98;
/// SSH_MSG_CHANNEL_SUCCESS
pub const CHANNEL_SUCCESS: u8 = 99;
/// SSH_MSG_CHANNEL_FAILURE
pub const CHANNEL_FAILURE: u8 = 100;

/// Whether `msg_type` is one of the transport layer's own (1 to 49: the
/// generic transport messages, algorithm negotiation and key exchange).
pub(crate) fn is_transport(msg_type: u8) -> bool {
    (1..=49).contains(&msg_type)
}

/// Whether a message belongs to the key exchange itself (KEXINIT,
/// NEWKEYS, the method's 30 to 49): all strict kex lets the peer send
/// before its first NEWKEYS.
pub(crate) fn is_kex(msg_type: u8) -> bool {
    matches!(msg_type, KEXINIT | NEWKEYS | 30..=49)
}

/// Whether a message may be sent while our key exchange is under way
/// (between our KEXINIT and our NEWKEYS). As OpenSSH's packet layer: the
/// transport's own messages, except the service request and accept and
/// EXT_INFO, which belong after the exchange.
pub(crate) fn allowed_during_kex(msg_type: u8) -> bool {
    is_transport(msg_type) && !matches!(msg_type, SERVICE_REQUEST | SERVICE_ACCEPT | EXT_INFO)
}

/// Whether a message carries authentication secrets (a password, a
/// keyboard-interactive answer), so that hexdump never shows its body.
pub(crate) fn is_secret(msg_type: u8) -> bool {
    matches!(msg_type, USERAUTH_REQUEST | USERAUTH_INFO_RESPONSE)
}

/// DISCONNECT reason codes (RFC 4253 §11.1).
pub mod reason {
    /// SSH_DISCONNECT_HOST_NOT_ALLOWED_TO_CONNECT
    pub const HOST_NOT_ALLOWED_TO_CONNECT: u32 = 1;
    /// SSH_DISCONNECT_PROTOCOL_ERROR
    pub const PROTOCOL_ERROR: u32 = 2;
    /// SSH_DISCONNECT_KEY_EXCHANGE_FAILED
    pub const KEY_EXCHANGE_FAILED: u32 = 3;
    /// SSH_DISCONNECT_MAC_ERROR
    pub const MAC_ERROR: u32 = 5;
    /// SSH_DISCONNECT_COMPRESSION_ERROR
    pub const COMPRESSION_ERROR: u32 = 6;
    /// SSH_DISCONNECT_SERVICE_NOT_AVAILABLE
    pub const SERVICE_NOT_AVAILABLE: u32 = 7;
    /// SSH_DISCONNECT_PROTOCOL_VERSION_NOT_SUPPORTED
    pub const PROTOCOL_VERSION_NOT_SUPPORTED: u32 = 8;
    /// SSH_DISCONNECT_HOST_KEY_NOT_VERIFIABLE
    pub const HOST_KEY_NOT_VERIFIABLE: u32 = 9;
    /// SSH_DISCONNECT_CONNECTION_LOST
    pub const CONNECTION_LOST: u32 = 10;
    /// SSH_DISCONNECT_BY_APPLICATION
    pub const BY_APPLICATION: u32 = 11;
    /// SSH_DISCONNECT_TOO_MANY_CONNECTIONS
    pub const TOO_MANY_CONNECTIONS: u32 = 12;
    /// SSH_DISCONNECT_AUTH_CANCELLED_BY_USER
    pub const AUTH_CANCELLED_BY_USER: u32 = 13;
    /// SSH_DISCONNECT_NO_MORE_AUTH_METHODS_AVAILABLE
    pub const NO_MORE_AUTH_METHODS_AVAILABLE: u32 = 14;
    /// SSH_DISCONNECT_ILLEGAL_USER_NAME
    pub const ILLEGAL_USER_NAME: u32 = 15;
}

/// The longest DISCONNECT description kept, in bytes.
const MAX_DESCRIPTION: usize = 1024;

/// A DISCONNECT payload: reason, description, empty language tag.
pub(crate) fn disconnect_payload(reason: u32, description: &str) -> Vec<u8> {
    let mut end = description.len().min(MAX_DESCRIPTION);
    while !description.is_char_boundary(end) {
        end -= 1;
    }
    let description = &description.as_bytes()[..end];
    let mut payload = Vec::with_capacity(13 + description.len());
    payload.push(DISCONNECT);
    payload.extend_from_slice(&reason.to_be_bytes());
    payload.extend_from_slice(&(description.len() as u32).to_be_bytes());
    payload.extend_from_slice(description);
    payload.extend_from_slice(&0u32.to_be_bytes());
    payload
}

/// Reads a DISCONNECT payload (type byte first) as the error it reports.
/// Whatever part is missing or malformed reads as 0 or empty: the peer is
/// gone either way, and what it said is worth keeping.
pub(crate) fn parse_disconnect(payload: &[u8]) -> crate::Error {
    let body = payload.get(1..).unwrap_or_default();
    let reason = body
        .get(..4)
        .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
    let text = body.get(4..8).and_then(|len| {
        let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
        let text = body.get(8..)?;
        Some(&text[..len.min(text.len())])
    });
    let text = text.unwrap_or_default();
    let mut description =
        String::from_utf8_lossy(&text[..text.len().min(MAX_DESCRIPTION)]).into_owned();
    description.retain(|c| !c.is_control());
    crate::Error::Disconnected {
        reason,
        description,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disconnect_round_trips_and_survives_garbage() {
        let payload = disconnect_payload(reason::MAC_ERROR, "Corrupted MAC on input.");
        match parse_disconnect(&payload) {
            crate::Error::Disconnected {
                reason,
                description,
            } => {
                assert_eq!(reason, 5);
                assert_eq!(description, "Corrupted MAC on input.");
            }
            other => panic!("{other:?}"),
        }
        for cut in 0..payload.len() {
            assert!(matches!(
                parse_disconnect(&payload[..cut]),
                crate::Error::Disconnected { .. }
            ));
        }
        let mut huge = vec![DISCONNECT, 0, 0, 0, 2, 0xff, 0xff, 0xff, 0xff];
        huge.extend(std::iter::repeat_n(b'a', 5000));
        match parse_disconnect(&huge) {
            crate::Error::Disconnected { description, .. } => assert_eq!(description.len(), 1024),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn kex_rules_follow_openssh() {
        assert!(allowed_during_kex(KEXINIT));
        assert!(allowed_during_kex(30));
        assert!(allowed_during_kex(DISCONNECT));
        assert!(!allowed_during_kex(SERVICE_REQUEST));
        assert!(!allowed_during_kex(EXT_INFO));
        assert!(!allowed_during_kex(USERAUTH_REQUEST));
        assert!(!allowed_during_kex(0));
    }
}
