//! The hexdump the caller may turn on: every message's plaintext at debug
//! level, never the body of an authentication message.

use crate::msg;

/// Logs a message for the hexdump the caller turned on; never the body of
/// an authentication message.
pub(super) fn hexdump(way: &str, seqno: u32, payload: &[u8]) {
    let msg_type = payload[0];
    if msg::is_secret(msg_type) {
        log::debug!(
            target: "ssh_packetizer::hexdump",
            "{way} #{seqno}: message {msg_type}, {} bytes (authentication: body not shown)",
            payload.len()
        );
    } else {
        log::debug!(target: "ssh_packetizer::hexdump", "{way} #{seqno}: {}", hex(payload));
    }
}

/// Lower-case hex.
fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}
