//! The sending side: seal into one buffer, write it with one `write_all`.

use std::io::Write;

use super::shared::{Shared, Way};
use crate::codec::Sealer;
use crate::error::Error;
use crate::keys::Keys;

/// The outbound half's state: its Sealer and the bytes waiting to be written.
pub(crate) struct WriteSide {
    pub(crate) sealer: Sealer,
    out: Vec<u8>,
}

impl WriteSide {
    pub(crate) fn new() -> WriteSide {
        WriteSide {
            sealer: Sealer::new(),
            out: Vec::new(),
        }
    }

    /// Seals `payload` behind whatever is already queued.
    pub(crate) fn queue(&mut self, shared: &Shared, payload: &[u8]) -> Result<u32, Error> {
        if shared.is_closed() {
            return Err(Error::Closed);
        }
        let seqno = self.sealer.seal(payload, &mut self.out)?;
        if shared.hexdump() {
            log::debug!(target: "ssh_packetizer::hexdump", "out #{seqno}: {}", hex(payload));
        }
        if self.sealer.needs_rekey() {
            shared.want_rekey();
        }
        Ok(seqno)
    }

    /// Writes everything queued. A failed write closes the connection: some
    /// of a packet may be on the wire, so nothing more may follow it.
    pub(crate) fn flush(&mut self, io: &mut impl Write, shared: &Shared) -> Result<(), Error> {
        if self.out.is_empty() {
            return Ok(());
        }
        if shared.is_closed() {
            return Err(Error::Closed);
        }
        let written = io.write_all(&self.out).and_then(|()| io.flush());
        self.out.clear();
        match written {
            Ok(()) => {
                shared.touch();
                Ok(())
            }
            Err(e) => {
                log::debug!("write failed, closing: {e}");
                shared.close();
                Err(Error::Io(e))
            }
        }
    }

    pub(crate) fn send(
        &mut self,
        io: &mut impl Write,
        shared: &Shared,
        payload: &[u8],
    ) -> Result<u32, Error> {
        let seqno = self.queue(shared, payload)?;
        self.flush(io, shared)?;
        Ok(seqno)
    }

    /// Installs outbound keys and records the switch for rekey signalling.
    pub(crate) fn switch_keys(&mut self, shared: &Shared, keys: Keys) -> Result<(), Error> {
        if shared.is_closed() {
            return Err(Error::Closed);
        }
        log::debug!("outbound keys: {} + {}", keys.cipher(), keys.mac());
        self.sealer.set_keys(keys)?;
        shared.keys_switched(Way::Out);
        Ok(())
    }

    /// Bytes sealed but not yet written.
    pub(crate) fn queued(&self) -> usize {
        self.out.len()
    }
}

/// Lower-case hex, for the hexdump the caller turned on.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}
