//! The one rekey decision of a connection.
//!
//! A rekey is wanted once keys are on and either direction spent its
//! budget, the peer sent KEXINIT, a key reached its age limit, or the
//! caller asked. The request is raised to the caller once (an event), stays
//! visible ([`Connection::need_rekey`](super::Connection::need_rekey))
//! until both directions have switched keys since it was made, in either
//! order, and meanwhile counts the peer's grace allowance on the keys it is
//! still using inbound.

use crate::rekey::RekeyLimits;

use super::{IN, OUT};

/// An outstanding rekey request.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Request {
    /// Which directions switched keys since the request.
    switched: [bool; 2],
    /// Inbound packets and bytes since the request, under the old keys.
    grace_packets: u64,
    grace_bytes: u64,
}

impl Request {
    /// Notes a key switch; true once both directions have switched.
    pub(crate) fn switched(&mut self, direction: usize) -> bool {
        self.switched[direction] = true;
        self.switched[IN] && self.switched[OUT]
    }

    /// Counts one inbound packet against the grace allowance, unless the
    /// inbound keys were already renewed (the peer is not ignoring us then).
    pub(crate) fn count_inbound(&mut self, wire_len: usize) {
        if !self.switched[IN] {
            self.grace_packets += 1;
            self.grace_bytes = self.grace_bytes.saturating_add(wire_len as u64);
        }
    }

    /// Whether the peer used up its grace: the next packet is refused.
    pub(crate) fn grace_exceeded(&self, limits: &RekeyLimits) -> bool {
        !self.switched[IN]
            && (self.grace_packets >= limits.grace_packets
                || self.grace_bytes >= limits.grace_bytes)
    }
}
