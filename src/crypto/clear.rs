//! The clear mode: no encryption and no MAC, before the first NEWKEYS.

/// The identity transform.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clear;

impl Clear {
    /// The length travels as it is.
    pub(crate) fn read_length(&self, head: &[u8]) -> Option<u32> {
        super::length_prefix(head)
    }
}
