//! The read loop's decisions that the sync and the async drivers share,
//! sans-IO: what a loop keeps between calls, when a wanted rekey is
//! reported as [`Error::NeedRekey`], when the keepalive callback runs, and
//! what each kind of read polls the core for. The drivers move the bytes
//! and read their clocks; neither imports the other.

use crate::codec::{InputBuffer, Opened, Packet};
use crate::connection::{Connection, Sent};
use crate::error::Error;

/// Something a message can be sent through: what the keepalive callback is
/// handed.
pub trait SendMessage {
    /// Seals `payload` (message type byte first) and writes it.
    fn send_message(&mut self, payload: &[u8]) -> Result<Sent, Error>;
}

/// The keepalive callback: given a handle to send with when the connection
/// has been idle for the interval.
pub type KeepaliveCallback = Box<dyn FnMut(&mut dyn SendMessage) -> Result<(), Error> + Send>;

/// What a read loop keeps between calls.
#[derive(Default)]
pub(crate) struct ReadState {
    pub(crate) keepalive: Option<KeepaliveCallback>,
    /// The core's count of rekey requests when one was last reported (or
    /// passed over, an exchange being under way); a higher count is a
    /// request not yet reported as `NeedRekey`.
    rekeys_seen: u64,
    /// The core's count of due keepalives when the callback last ran (or
    /// was passed over); one that fell due inside a packet runs at the next
    /// packet boundary.
    keepalives_seen: u64,
}

impl ReadState {
    /// Whether a read that checks for rekeys must stop now with
    /// [`Error::NeedRekey`]: a request came since the last report, this is
    /// a packet boundary and no exchange is under way yet. Reported once
    /// per request. It follows the core's count, not its events, so a
    /// caller taking events through the core loses the driver nothing.
    pub(crate) fn rekey_due(
        &mut self,
        check_rekey: bool,
        at_boundary: bool,
        core: &Connection,
    ) -> bool {
        let wanted = core.rekeys_wanted();
        if !(check_rekey && at_boundary) || wanted == self.rekeys_seen {
            return false;
        }
        self.rekeys_seen = wanted;
        core.should_start_kex()
    }
}

/// How a driver, sync or async, reaches its core and sends a keepalive.
pub(crate) trait CoreSide {
    /// Runs `f` on the core and the input buffer the driver lends it.
    fn with_core<T>(&mut self, f: impl FnOnce(&mut Connection, &mut InputBuffer) -> T) -> T;

    /// Where the keepalive callback sends.
    fn sink(&mut self) -> &mut dyn SendMessage;
}

/// Runs the keepalive callback at a packet boundary (as paramiko, never
/// inside a packet) when the keepalive fell due since it last ran, then
/// says whether a deadline ended the connection. A callback error is
/// returned as it is (nothing buffered is lost).
pub(crate) fn run_keepalive<S: CoreSide>(
    side: &mut S,
    state: &mut ReadState,
    at_boundary: bool,
) -> Result<(), Error> {
    let due = side.with_core(|core, _| core.keepalives_due());
    if at_boundary && due != state.keepalives_seen {
        state.keepalives_seen = due;
        // The core says whether it may go now: a key exchange may have
        // begun since it fell due.
        let allowed = side.with_core(|core, _| core.keepalive_allowed());
        if let (true, Some(callback)) = (allowed, &mut state.keepalive) {
            log::debug!("idle: keepalive");
            callback(side.sink())?;
        }
    }
    // A deadline that passed is the connection's error now.
    side.with_core(|core, _| core.check())
}

/// The read loop's poll for a packet; the packet is then taken from the
/// input buffer ([`InputBuffer::packet`]).
pub(crate) fn poll_packet(
    core: &mut Connection,
    input: &mut InputBuffer,
) -> Result<Option<()>, Error> {
    match core.poll_packet(input)? {
        Opened::Packet(_) => Ok(Some(())),
        Opened::AwaitingKeys => Err(Error::KeysPending),
        _ => Ok(None),
    }
}

/// The read loop's poll for `n` raw bytes.
pub(crate) fn poll_raw(
    n: usize,
) -> impl FnMut(&mut Connection, &mut InputBuffer) -> Result<Option<Vec<u8>>, Error> {
    move |core, input| core.poll_raw(input, n)
}

/// The packet the read loop just found, from the driver's input buffer.
pub(crate) fn found_packet(input: &InputBuffer) -> Result<Packet<'_>, Error> {
    input.packet().ok_or(Error::InvalidCall {
        reason: "the read loop saw a packet ready",
    })
}

/// Refuses a raw read larger than the input can ever hold.
pub(crate) fn check_raw_len(core: &Connection, n: usize) -> Result<(), Error> {
    // A failed connection says so first, whatever was asked.
    core.check()?;
    let max = core.input_limit();
    if n > max {
        return Err(Error::ReadTooLarge { requested: n, max });
    }
    Ok(())
}
