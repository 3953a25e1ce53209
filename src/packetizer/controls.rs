//! The settings and queries every driver has, sync and async alike: each is
//! one call on the connection core, so they are written once here.
//!
//! `core_controls!` goes in the impl of a driver that owns its core
//! (`self.core`) and has `fn now(&self) -> Instant` (its clock);
//! `shared_controls!(path)` in a half whose shared state at `self.path` has
//! `lock()` (the core) and `now()`.

/// The controls of a driver that owns its core.
macro_rules! core_controls {
    () => {
        /// Strict kex: sequence numbers reset at each NEWKEYS by themselves.
        pub fn set_strict_kex(&mut self, on: bool) {
            self.core.set_strict_kex(on);
        }

        /// Starts `zlib@openssh.com` compression both ways: user
        /// authentication succeeded (the server after sending
        /// USERAUTH_SUCCESS, the client after reading it). Plain `zlib`
        /// starts with the keys and needs no call.
        pub fn start_delayed_compression(&mut self) {
            self.core.start_delayed_compression();
        }

        /// The next outbound sequence number.
        pub fn seqno_out(&self) -> u32 {
            self.core.seqno_out()
        }

        /// The next inbound sequence number.
        pub fn seqno_in(&self) -> u32 {
            self.core.seqno_in()
        }

        /// Whether a key exchange should start; true from the request until
        /// both directions have switched keys.
        pub fn need_rekey(&self) -> bool {
            self.core.need_rekey_at(self.now())
        }

        /// Whether a key exchange should be started now: a rekey is wanted
        /// and none is under way. Unlike [`need_rekey`](Self::need_rekey)
        /// it is false once the peer's KEXINIT has been read (answer that
        /// one instead of starting another).
        pub fn should_start_kex(&self) -> bool {
            self.core.should_start_kex_at(self.now())
        }

        /// Asks for a rekey now (see [`Connection::request_rekey`]).
        pub fn request_rekey(&mut self) {
            self.core.request_rekey();
        }

        /// Sets byte and time limits on each key and the grace allowance.
        pub fn set_rekey_limits(&mut self, limits: RekeyLimits) {
            self.core.set_rekey_limits(limits);
        }

        /// Sets the largest `packet_length` sent and accepted (default
        /// 256 KiB).
        pub fn set_max_packet_len(&mut self, len: usize) -> Result<(), Error> {
            self.core.set_max_packet_len(len)
        }

        /// Starts the key exchange deadline: a read still waiting when it
        /// passes fails with [`Error::HandshakeTimeout`].
        pub fn start_handshake(&mut self, timeout: Duration) {
            let now = self.now();
            self.core.start_handshake(timeout, now);
        }

        /// Whether the deadline passed; false before `start_handshake` and
        /// after `complete_handshake`.
        pub fn handshake_timed_out(&mut self) -> bool {
            let now = self.now();
            self.core.handle_timeout(now);
            self.core.handshake_timed_out()
        }

        /// Ends the key exchange deadline.
        pub fn complete_handshake(&mut self) {
            self.core.complete_handshake();
        }

        /// Runs the keys installed from now on with `provider`'s
        /// primitives (see [`Connection::set_crypto_provider`]).
        pub fn set_crypto_provider(&mut self, provider: &'static $crate::CryptoProvider) {
            self.core.set_crypto_provider(provider);
        }

        /// The provider the next keys will run on.
        pub fn crypto_provider(&self) -> &'static $crate::CryptoProvider {
            self.core.crypto_provider()
        }

        /// Logs every message's plaintext (target `ssh_packetizer::hexdump`,
        /// at debug level) while on, never the bodies of authentication
        /// messages. Off by default.
        pub fn set_hexdump(&mut self, on: bool) {
            self.core.set_hexdump(on);
        }

        /// Closes the driver: every call after this returns
        /// [`Error::Closed`]. The stream closes when it is dropped.
        pub fn close(&mut self) {
            self.core.close();
        }

        /// Whether the driver is closed or failed.
        pub fn is_closed(&self) -> bool {
            self.core.is_closed()
        }

        /// Bytes queued but not yet written.
        pub fn queued_bytes(&self) -> usize {
            self.core.pending_output().len()
        }

        /// The connection core, for inspection.
        pub fn connection(&self) -> &Connection {
            &self.core
        }
    };
}

/// The controls both halves of a split driver have: they only change the
/// shared core.
macro_rules! shared_controls {
    ($($shared:ident).+) => {
        /// Whether a key exchange should start; true from the request until
        /// both directions have switched keys.
        pub fn need_rekey(&self) -> bool {
            let now = self.$($shared).+.now();
            self.$($shared).+.lock().need_rekey_at(now)
        }

        /// Whether a key exchange should be started now: a rekey is wanted
        /// and none is under way. Unlike [`need_rekey`](Self::need_rekey)
        /// it is false once the peer's KEXINIT has been read by either
        /// half (answer that one instead of starting another).
        pub fn should_start_kex(&self) -> bool {
            let now = self.$($shared).+.now();
            self.$($shared).+.lock().should_start_kex_at(now)
        }

        /// Asks for a rekey now (see [`Connection::request_rekey`]).
        pub fn request_rekey(&self) {
            self.$($shared).+.lock().request_rekey();
        }

        /// Sets byte and time limits on each key and the grace allowance,
        /// both directions.
        pub fn set_rekey_limits(&self, limits: RekeyLimits) {
            self.$($shared).+.lock().set_rekey_limits(limits);
        }

        /// Sets the largest `packet_length` sent and accepted.
        pub fn set_max_packet_len(&self, len: usize) -> Result<(), Error> {
            self.$($shared).+.lock().set_max_packet_len(len)
        }

        /// Strict kex: sequence numbers reset at each NEWKEYS by themselves.
        pub fn set_strict_kex(&self, on: bool) {
            self.$($shared).+.lock().set_strict_kex(on);
        }

        /// Starts `zlib@openssh.com` compression both ways.
        pub fn start_delayed_compression(&self) {
            self.$($shared).+.lock().start_delayed_compression();
        }

        /// Runs the keys installed from now on, both directions, with
        /// `provider`'s primitives (see [`Connection::set_crypto_provider`]).
        pub fn set_crypto_provider(&self, provider: &'static $crate::CryptoProvider) {
            self.$($shared).+.lock().set_crypto_provider(provider);
        }

        /// The provider the next keys will run on.
        pub fn crypto_provider(&self) -> &'static $crate::CryptoProvider {
            self.$($shared).+.lock().crypto_provider()
        }

        /// Logs every message's plaintext while on, both directions (see
        /// [`Connection::set_hexdump`]).
        pub fn set_hexdump(&self, on: bool) {
            self.$($shared).+.lock().set_hexdump(on);
        }

        /// The next outbound sequence number.
        pub fn seqno_out(&self) -> u32 {
            self.$($shared).+.lock().seqno_out()
        }

        /// The next inbound sequence number.
        pub fn seqno_in(&self) -> u32 {
            self.$($shared).+.lock().seqno_in()
        }

        /// Starts the key exchange deadline.
        pub fn start_handshake(&self, timeout: Duration) {
            let now = self.$($shared).+.now();
            self.$($shared).+.lock().start_handshake(timeout, now);
        }

        /// Whether the key exchange deadline passed.
        pub fn handshake_timed_out(&self) -> bool {
            let now = self.$($shared).+.now();
            let mut core = self.$($shared).+.lock();
            core.handle_timeout(now);
            core.handshake_timed_out()
        }

        /// Ends the key exchange deadline.
        pub fn complete_handshake(&self) {
            self.$($shared).+.lock().complete_handshake();
        }

        /// Whether the connection is closed or failed.
        pub fn is_closed(&self) -> bool {
            self.$($shared).+.lock().is_closed()
        }
    };
}

pub(crate) use {core_controls, shared_controls};
