//! The crate's one error type.
//!
//! Every variant says what happened in terms a caller can act on. Receive-side
//! errors (`BadPacketLength`, `BadBlockAlignment`, `BadPadding`, `MacMismatch`,
//! `SequenceWrapped`, `RekeyIgnored`) are fatal for the connection: the byte
//! stream cannot be resynchronised after them. The component that raised one
//! keeps it, and every later call, on either half of a connection, answers
//! [`Error::Failed`] carrying that first error as its cause (or
//! [`Error::Closed`] again after a clean close).

use std::fmt;
use std::sync::Arc;

/// Everything that can go wrong in the packet layer.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The packet layer was closed locally, or the peer closed the stream
    /// cleanly at a packet boundary.
    Closed,
    /// An earlier call failed fatally; this is that first error, kept so that
    /// every later call (on either half) says what really happened.
    Failed(Arc<Error>),
    /// The peer sent SSH_MSG_DISCONNECT.
    Disconnected {
        /// The reason code (RFC 4253 §11.1), e.g. 2 for a protocol error.
        reason: u32,
        /// The peer's description, lossily decoded and cut to 1024 bytes.
        description: String,
    },
    /// The peer's NEWKEYS was read and the inbound keys are not installed
    /// yet: install them (`set_inbound_cipher`) before reading on. Not fatal.
    KeysPending,
    /// A key exchange is under way and the messages held back for after it
    /// (everything but the transport's own) reached their bound; send again
    /// once the exchange is done. Nothing was sent; not fatal.
    KexHoldFull {
        /// Payload bytes already held.
        held: usize,
        /// The bound.
        max: usize,
    },
    /// A raw read asked for more bytes than the input buffer may hold.
    ReadTooLarge {
        /// The bytes asked for.
        requested: usize,
        /// The most one raw read may ask for.
        max: usize,
    },
    /// A call that makes no sense in the connection's state (NEWKEYS through
    /// `send_message`, ...). Nothing changed; not fatal.
    InvalidCall {
        /// What was wrong.
        reason: &'static str,
    },
    /// A write made no progress for the configured write timeout.
    WriteStalled {
        /// How long it waited without progress.
        waited: std::time::Duration,
    },
    /// The peer closed the stream in the middle of a packet or read.
    Eof {
        /// The bytes the unfinished read required in all: for a packet, its
        /// whole wire length once the length is known, else the bytes that
        /// reveal the length.
        needed: usize,
        /// The bytes of it that had arrived.
        got: usize,
    },
    /// The stream failed; the `ErrorKind` (broken pipe, reset, ...) is kept.
    Io(std::io::Error),
    /// A rekey is needed and the caller asked to be told at a packet boundary
    /// (`read_all(.., true)`, `read_message`). Nothing was lost; not fatal.
    NeedRekey,
    /// The key exchange did not finish before the deadline set by
    /// `start_handshake`.
    HandshakeTimeout,
    /// A line of the identification exchange exceeded its bound.
    LineTooLong {
        /// The bound it exceeded.
        max: usize,
    },
    /// The identification exchange broke the rules of RFC 4253 §4.2.
    BadIdentification {
        /// What was wrong.
        reason: &'static str,
    },
    /// Compressing an outbound payload failed.
    Compress {
        /// What was wrong.
        reason: &'static str,
    },
    /// The peer's compressed data was corrupt, or inflated past the maximum
    /// packet length.
    Decompress {
        /// What was wrong.
        reason: &'static str,
    },
    /// The peer sent a `packet_length` outside `5..=max`.
    BadPacketLength {
        /// The length field as received (after decryption where it is encrypted).
        len: u32,
        /// The largest length this side accepts.
        max: u32,
    },
    /// The packet's aligned region is not a multiple of the cipher block size.
    BadBlockAlignment {
        /// The length field as received.
        len: u32,
        /// The block size it had to be a multiple of.
        block: usize,
    },
    /// `padding_length` is below 4 or leaves no room for a payload byte.
    BadPadding {
        /// The `padding_length` byte as received.
        padding: u8,
        /// The packet's `packet_length`.
        packet_len: u32,
    },
    /// The MAC or AEAD tag did not verify: a corrupted packet or mismatched keys.
    MacMismatch {
        /// The inbound sequence number of the rejected packet.
        seqno: u32,
    },
    /// A sequence number would wrap before the initial key exchange is done
    /// (the Terrapin precondition, CVE-2023-48795).
    SequenceWrapped,
    /// A rekey was needed and the peer kept sending past the grace allowance.
    RekeyIgnored,
    /// A key, IV or MAC key has the wrong length for the chosen algorithm.
    BadKeyLength {
        /// Which piece of key material is wrong: "key", "iv" or "mac key".
        what: &'static str,
        /// The length the algorithm needs.
        expected: usize,
        /// The length that was given.
        got: usize,
    },
    /// An algorithm name this crate does not know.
    UnknownAlgorithm {
        /// The name as given.
        name: String,
    },
    /// An algorithm this build knows by name but cannot run yet.
    Unsupported {
        /// The SSH name of the algorithm.
        algorithm: &'static str,
    },
    /// An algorithm a FIPS provider must not run: not FIPS-approved, or not
    /// in its module (the fallback to RustCrypto is refused in FIPS mode).
    NotApproved {
        /// The SSH name of the algorithm.
        algorithm: &'static str,
        /// The provider that refused it.
        provider: &'static str,
    },
    /// A cipher and MAC that cannot be used together (an AEAD cipher with a
    /// MAC, an encrypting cipher without one, or a MAC without a cipher).
    IncompatibleAlgorithms {
        /// The cipher's SSH name.
        cipher: &'static str,
        /// The MAC's SSH name.
        mac: &'static str,
    },
    /// A payload to send does not fit the maximum packet length.
    PayloadTooLarge {
        /// The payload length given.
        len: usize,
        /// The largest `packet_length` this side sends.
        max: usize,
    },
    /// An empty payload: every SSH message has at least its type byte.
    EmptyPayload,
    /// A maximum packet length outside the range this crate accepts.
    InvalidMaxPacketLength {
        /// The length asked for.
        requested: usize,
        /// The smallest allowed (RFC 4253 §6.1 demands 35000).
        min: usize,
        /// The largest allowed.
        max: usize,
    },
    /// Something that may only happen between packets (installing inbound
    /// keys, reading raw bytes) was asked for in the middle of one.
    NotAtPacketBoundary,
    /// The operating system's random source failed.
    Random {
        /// The reason the source gave.
        detail: String,
    },
    /// A CBC packet (encrypt-and-MAC) with a bad length or MAC. As OpenSSH
    /// does, the input was taken and MACed up to one maximum packet before
    /// this was reported, and the peer is told the same whatever the
    /// cause, so neither the time taken, the bytes consumed nor the
    /// DISCONNECT says which check failed. The cause is kept for the local
    /// side.
    PacketCorrupt {
        /// What was wrong: [`Error::BadPacketLength`],
        /// [`Error::BadBlockAlignment`] or [`Error::MacMismatch`].
        cause: Box<Error>,
        /// The bytes consumed from the start of the bad packet.
        discarded: usize,
    },
    /// The peer closed the stream while a corrupt CBC packet (encrypt-and-MAC)
    /// was being discarded (see [`Error::PacketCorrupt`]): corruption or an
    /// attack on the length, not a plain truncated stream. As in OpenSSH,
    /// nothing is said to the peer: a DISCONNECT sent only here would tell a
    /// peer that half-closes which check failed.
    EofWhileDiscarding {
        /// What was wrong with the packet: [`Error::BadPacketLength`],
        /// [`Error::BadBlockAlignment`] or [`Error::MacMismatch`].
        cause: Box<Error>,
        /// The bytes of the discard that had arrived.
        got: usize,
    },
    /// More bytes arrived than the input may hold while no packet could be
    /// taken from them (a `Framed` stream polled again after the peer's
    /// NEWKEYS before the inbound keys were installed): the connection
    /// cannot read on without growing its buffer without bound.
    InputOverflow {
        /// The bytes buffered.
        buffered: usize,
        /// The most the input may hold.
        limit: usize,
    },
    /// Strict key exchange (OpenSSH's answer to Terrapin, CVE-2023-48795)
    /// was broken by the peer: its KEXINIT was not its first packet, or a
    /// message other than the key exchange's (KEXINIT, NEWKEYS, 30 to 49)
    /// came before its NEWKEYS of the initial exchange.
    StrictKexViolation {
        /// The message type that broke it.
        msg_type: u8,
        /// Its inbound sequence number.
        seqno: u32,
    },
    /// Negotiation found no algorithm both sides offer for one list
    /// (RFC 4253 §7.1): the key exchange cannot go on.
    NoCommonAlgorithm {
        /// Which list: `cipher (client to server)`, `MAC (server to
        /// client)`, ...
        kind: &'static str,
        /// The client's list, as given.
        client: String,
        /// The server's list, as given.
        server: String,
    },
}

impl Error {
    /// Whether this error came from the peer's bytes (corrupt, hostile or
    /// mismatched keys), as opposed to local misuse or configuration.
    pub fn is_peer_fault(&self) -> bool {
        matches!(
            self,
            Error::BadPacketLength { .. }
                | Error::BadBlockAlignment { .. }
                | Error::BadPadding { .. }
                | Error::MacMismatch { .. }
                | Error::RekeyIgnored
                | Error::LineTooLong { .. }
                | Error::BadIdentification { .. }
                | Error::Decompress { .. }
                | Error::Disconnected { .. }
                | Error::PacketCorrupt { .. }
                | Error::EofWhileDiscarding { .. }
                | Error::StrictKexViolation { .. }
        )
    }

    /// Whether the connection cannot go on after this error. Local misuse
    /// that changed nothing (an empty or oversized payload, a bad setting, bad
    /// key lengths) and [`Error::NeedRekey`] are not fatal; everything that
    /// leaves the byte stream in an unknown state is.
    pub fn is_fatal(&self) -> bool {
        self.is_peer_fault()
            || matches!(
                self,
                Error::Closed
                    | Error::Failed(_)
                    | Error::WriteStalled { .. }
                    | Error::Eof { .. }
                    | Error::Io(_)
                    | Error::HandshakeTimeout
                    | Error::SequenceWrapped
                    | Error::Compress { .. }
                    | Error::InputOverflow { .. }
            )
    }

    /// The I/O error kind, for [`Error::Io`] (also as the cause of
    /// [`Error::Failed`]).
    pub fn io_kind(&self) -> Option<std::io::ErrorKind> {
        match self.cause() {
            Error::Io(e) => Some(e.kind()),
            _ => None,
        }
    }

    /// The error that really happened: the first error for
    /// [`Error::Failed`], this error otherwise.
    pub fn cause(&self) -> &Error {
        match self {
            Error::Failed(first) => first.cause(),
            other => other,
        }
    }

    /// A copy to keep as the cause of later calls' errors. An I/O error is
    /// not `Clone`; its copy keeps the kind and the message.
    pub(crate) fn duplicate(&self) -> Error {
        match self {
            Error::Closed => Error::Closed,
            Error::Failed(first) => Error::Failed(first.clone()),
            Error::Disconnected {
                reason,
                description,
            } => Error::Disconnected {
                reason: *reason,
                description: description.clone(),
            },
            Error::KeysPending => Error::KeysPending,
            Error::KexHoldFull { held, max } => Error::KexHoldFull {
                held: *held,
                max: *max,
            },
            Error::ReadTooLarge { requested, max } => Error::ReadTooLarge {
                requested: *requested,
                max: *max,
            },
            Error::WriteStalled { waited } => Error::WriteStalled { waited: *waited },
            Error::InvalidCall { reason } => Error::InvalidCall { reason },
            Error::Eof { needed, got } => Error::Eof {
                needed: *needed,
                got: *got,
            },
            Error::Io(e) => Error::Io(std::io::Error::new(e.kind(), e.to_string())),
            Error::NeedRekey => Error::NeedRekey,
            Error::HandshakeTimeout => Error::HandshakeTimeout,
            Error::LineTooLong { max } => Error::LineTooLong { max: *max },
            Error::BadIdentification { reason } => Error::BadIdentification { reason },
            Error::Compress { reason } => Error::Compress { reason },
            Error::Decompress { reason } => Error::Decompress { reason },
            Error::BadPacketLength { len, max } => Error::BadPacketLength {
                len: *len,
                max: *max,
            },
            Error::BadBlockAlignment { len, block } => Error::BadBlockAlignment {
                len: *len,
                block: *block,
            },
            Error::BadPadding {
                padding,
                packet_len,
            } => Error::BadPadding {
                padding: *padding,
                packet_len: *packet_len,
            },
            Error::MacMismatch { seqno } => Error::MacMismatch { seqno: *seqno },
            Error::SequenceWrapped => Error::SequenceWrapped,
            Error::RekeyIgnored => Error::RekeyIgnored,
            Error::BadKeyLength {
                what,
                expected,
                got,
            } => Error::BadKeyLength {
                what,
                expected: *expected,
                got: *got,
            },
            Error::UnknownAlgorithm { name } => Error::UnknownAlgorithm { name: name.clone() },
            Error::Unsupported { algorithm } => Error::Unsupported { algorithm },
            Error::NotApproved {
                algorithm,
                provider,
            } => Error::NotApproved {
                algorithm,
                provider,
            },
            Error::IncompatibleAlgorithms { cipher, mac } => {
                Error::IncompatibleAlgorithms { cipher, mac }
            }
            Error::PayloadTooLarge { len, max } => Error::PayloadTooLarge {
                len: *len,
                max: *max,
            },
            Error::EmptyPayload => Error::EmptyPayload,
            Error::InvalidMaxPacketLength {
                requested,
                min,
                max,
            } => Error::InvalidMaxPacketLength {
                requested: *requested,
                min: *min,
                max: *max,
            },
            Error::NotAtPacketBoundary => Error::NotAtPacketBoundary,
            Error::Random { detail } => Error::Random {
                detail: detail.clone(),
            },
            Error::PacketCorrupt { cause, discarded } => Error::PacketCorrupt {
                cause: Box::new(cause.duplicate()),
                discarded: *discarded,
            },
            Error::EofWhileDiscarding { cause, got } => Error::EofWhileDiscarding {
                cause: Box::new(cause.duplicate()),
                got: *got,
            },
            Error::InputOverflow { buffered, limit } => Error::InputOverflow {
                buffered: *buffered,
                limit: *limit,
            },
            Error::StrictKexViolation { msg_type, seqno } => Error::StrictKexViolation {
                msg_type: *msg_type,
                seqno: *seqno,
            },
            Error::NoCommonAlgorithm {
                kind,
                client,
                server,
            } => Error::NoCommonAlgorithm {
                kind,
                client: client.clone(),
                server: server.clone(),
            },
        }
    }

    /// The SSH_MSG_DISCONNECT reason (RFC 4253 §11.1) that tells the peer
    /// about this error, for errors caused by the peer's bytes.
    pub fn disconnect_reason(&self) -> Option<u32> {
        match self.cause() {
            // After the discard OpenSSH reports every cause as a bad MAC.
            Error::MacMismatch { .. } | Error::PacketCorrupt { .. } => {
                Some(crate::msg::reason::MAC_ERROR)
            }
            Error::Decompress { .. } => Some(crate::msg::reason::COMPRESSION_ERROR),
            Error::BadPacketLength { .. }
            | Error::BadBlockAlignment { .. }
            | Error::BadPadding { .. }
            | Error::RekeyIgnored
            | Error::SequenceWrapped
            | Error::StrictKexViolation { .. } => Some(crate::msg::reason::PROTOCOL_ERROR),
            _ => None,
        }
    }
}

/// The first fatal error of one component, kept for every later call.
#[derive(Debug, Default)]
pub(crate) struct Latch {
    first: Option<Arc<Error>>,
    /// Whether a caller has been handed the first error itself. One kept by
    /// a timer is handed out as it is, once, before `Failed` wraps it.
    reported: std::sync::atomic::AtomicBool,
}

impl Latch {
    /// `Ok` while nothing fatal happened; afterwards the error every call
    /// must answer.
    pub(crate) fn check(&self) -> Result<(), Error> {
        match &self.first {
            None => Ok(()),
            Some(first) if matches!(**first, Error::Closed) => Err(Error::Closed),
            Some(first)
                if !self
                    .reported
                    .swap(true, std::sync::atomic::Ordering::Relaxed) =>
            {
                Err(first.duplicate())
            }
            Some(first) => Err(Error::Failed(first.clone())),
        }
    }

    /// Keeps `e` as the first fatal error without handing it to anyone yet
    /// (a timer found it): the next call reports it as it is.
    pub(crate) fn record_unreported(&mut self, e: Error) {
        if self.first.is_none() {
            self.record(e);
            self.reported
                .store(false, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Passes `e` through, keeping a copy if it is the first fatal error.
    pub(crate) fn record(&mut self, e: Error) -> Error {
        if self.first.is_none() && e.is_fatal() {
            let kept = match e {
                // A `Failed` from a component below already carries the cause.
                Error::Failed(ref first) => first.clone(),
                ref other => Arc::new(other.duplicate()),
            };
            log::debug!("fatal: {kept}");
            self.first = Some(kept);
            self.reported
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        e
    }

    /// Keeps `e` as the first error even if it is not fatal by itself: it
    /// left the connection in a state that cannot go on (a held message that
    /// could not be sealed after the key switch).
    pub(crate) fn record_fatal(&mut self, e: Error) -> Error {
        if self.first.is_none() {
            log::debug!("fatal: {e}");
            let first = Arc::new(e);
            self.first = Some(first.clone());
            self.reported
                .store(true, std::sync::atomic::Ordering::Relaxed);
            // Returned as `Failed`, so it reads as fatal to the caller too.
            return Error::Failed(first);
        }
        e
    }

    /// Whether a fatal error (or a close) happened.
    pub(crate) fn is_set(&self) -> bool {
        self.first.is_some()
    }

    /// The first fatal error, if any.
    pub(crate) fn first(&self) -> Option<&Error> {
        self.first.as_deref()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Closed => write!(f, "the packet layer is closed"),
            Error::Failed(first) => write!(f, "the connection failed earlier: {first}"),
            Error::Disconnected {
                reason,
                description,
            } => write!(f, "the peer disconnected (reason {reason}): {description}"),
            Error::KeysPending => write!(
                f,
                "the peer's NEWKEYS was read: install the inbound keys before reading on"
            ),
            Error::KexHoldFull { held, max } => write!(
                f,
                "a key exchange is under way and {held} bytes of messages are held for after it \
                 (at most {max}): send again once it is done"
            ),
            Error::ReadTooLarge { requested, max } => write!(
                f,
                "a raw read of {requested} bytes is more than the input buffer holds ({max})"
            ),
            Error::WriteStalled { waited } => {
                write!(f, "a write made no progress for {waited:?}")
            }
            Error::InvalidCall { reason } => write!(f, "invalid call: {reason}"),
            Error::Eof { needed, got } => write!(
                f,
                "the peer closed the stream {got} bytes into a read of {needed}"
            ),
            Error::Io(e) => write!(f, "stream error: {e}"),
            Error::NeedRekey => write!(f, "a rekey is needed"),
            Error::HandshakeTimeout => write!(f, "the key exchange timed out"),
            Error::LineTooLong { max } => {
                write!(f, "identification exchange line longer than {max} bytes")
            }
            Error::BadIdentification { reason } => {
                write!(f, "bad identification exchange: {reason}")
            }
            Error::Decompress { reason } => write!(f, "decompression failed: {reason}"),
            Error::Compress { reason } => write!(f, "compression failed: {reason}"),
            Error::BadPacketLength { len, max } => {
                write!(f, "bad packet length {len} (allowed 5 to {max})")
            }
            Error::BadBlockAlignment { len, block } => write!(
                f,
                "packet length {len} is not aligned to the cipher block size {block}"
            ),
            Error::BadPadding {
                padding,
                packet_len,
            } => write!(
                f,
                "bad padding length {padding} in a packet of length {packet_len} \
                 (need at least 4 and room for a payload byte)"
            ),
            Error::MacMismatch { seqno } => write!(
                f,
                "MAC mismatch on inbound packet {seqno}: corrupted data or mismatched keys"
            ),
            Error::SequenceWrapped => {
                write!(f, "sequence number wrapped during the initial key exchange")
            }
            Error::RekeyIgnored => write!(
                f,
                "the peer kept sending past the grace allowance after a rekey was needed"
            ),
            Error::BadKeyLength {
                what,
                expected,
                got,
            } => write!(f, "{what} is {got} bytes, the algorithm needs {expected}"),
            Error::UnknownAlgorithm { name } => write!(f, "unknown algorithm {name:?}"),
            Error::Unsupported { algorithm } => {
                write!(f, "algorithm {algorithm} is not supported by this build")
            }
            Error::NotApproved {
                algorithm,
                provider,
            } => write!(
                f,
                "algorithm {algorithm} is refused by the {provider} provider in FIPS mode"
            ),
            Error::IncompatibleAlgorithms { cipher, mac } => {
                write!(f, "cipher {cipher} cannot be used with MAC {mac}")
            }
            Error::PayloadTooLarge { len, max } => write!(
                f,
                "payload of {len} bytes does not fit the maximum packet length {max}"
            ),
            Error::EmptyPayload => write!(f, "empty payload: a message needs its type byte"),
            Error::InvalidMaxPacketLength {
                requested,
                min,
                max,
            } => write!(
                f,
                "maximum packet length {requested} is outside the allowed {min} to {max}"
            ),
            Error::NotAtPacketBoundary => write!(
                f,
                "only possible between packets, and an inbound packet is half read"
            ),
            Error::Random { detail } => write!(f, "random source failed: {detail}"),
            // The same words whatever the cause: they go to the peer.
            Error::PacketCorrupt { .. } => write!(f, "corrupted MAC on input"),
            // Local only: this is never sent.
            Error::EofWhileDiscarding { cause, got } => write!(
                f,
                "the peer closed the stream {got} bytes into the discard of a corrupt packet \
                 ({cause})"
            ),
            Error::InputOverflow { buffered, limit } => write!(
                f,
                "{buffered} bytes arrived that no packet could be taken from (at most {limit} \
                 may wait): after the peer's NEWKEYS, install the inbound keys before polling again"
            ),
            Error::StrictKexViolation { msg_type, seqno } => write!(
                f,
                "strict KEX violation: unexpected packet type {msg_type} (seqnr {seqno})"
            ),
            Error::NoCommonAlgorithm {
                kind,
                client,
                server,
            } => write!(
                f,
                "no common {kind} algorithm: the client offers {client}, the server offers {server}"
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            Error::Failed(first) => Some(&**first),
            _ => None,
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e)
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
