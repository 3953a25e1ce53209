//! Test-only support for the tests and benchmarks that need real peers: a
//! private OpenSSH server ([`sshd`]) and the runner that reports a test
//! whose peer is missing as ignored ([`harness`]).
//!
//! It is a workspace member of its own so that nothing here, and nothing
//! its tests turn on in minissh, is part of the crate's or minissh's
//! public API or of their feature sets. The crate's interop tests through
//! minissh (OpenSSH's sshd, paramiko's server Transport) live in its
//! `tests/`; minissh's own tests use this library as a dev-dependency.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

// Two files shared with the crate's own tests, which cannot depend on this
// package (its tests depend on the crate).
#[path = "../../tests/common/data.rs"]
pub mod data;
#[path = "../../tests/common/harness.rs"]
pub mod harness;
pub mod sshd;
