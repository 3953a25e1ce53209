//! Channel flow control (RFC 4254 §5.2) as both roles do it: our window
//! and packet size, when a window adjust is due, and the check of the
//! peer's data messages against the packet size we granted (each role
//! counts its window itself).

use crate::error::{Error, Result};
use crate::msg;
use crate::wire::Msg;

/// The largest data packet we accept and send.
pub const MAX_PACKET: u32 = 32 * 1024;

/// Our receive window on every channel: OpenSSH's session default (64
/// packets of 32 KiB).
pub const WINDOW: u32 = 2 * 1024 * 1024;

/// Adds `bytes` consumed to `unadjusted` and takes the window adjust that
/// is due, if one is: once a quarter of the window is used. The peer keeps
/// 1.5 MiB in flight, and a transfer costs one adjust (a lock, a sealed
/// packet, a syscall) per 16 full packets rather than OpenSSH's one per 3,
/// about 3 % of a client's CPU. Both roles use this one rule.
pub fn due_adjust(unadjusted: &mut u32, bytes: u32) -> Option<u32> {
    *unadjusted += bytes;
    (*unadjusted >= WINDOW / 4).then(|| std::mem::take(unadjusted))
}

/// SSH_MSG_CHANNEL_WINDOW_ADJUST giving the peer's channel `remote`
/// `bytes` more.
pub fn adjust_message(remote: u32, bytes: u32) -> Vec<u8> {
    Msg::new(msg::CHANNEL_WINDOW_ADJUST)
        .u32(remote)
        .u32(bytes)
        .finish()
}

/// Checks the length of one data message from the peer (`who`) against
/// the packet size we granted.
pub fn check_data_len(len: u32, who: &str) -> Result<()> {
    if len > MAX_PACKET {
        return Err(Error::Protocol(format!(
            "the {who} sent {len} bytes of channel data in one packet \
             (at most {MAX_PACKET} were agreed)"
        )));
    }
    Ok(())
}
