//! Which host key the client accepts: the keys in known_hosts (a new
//! host's recorded there, as OpenSSH's accept-new), a pinned key or
//! fingerprint, or any.

use std::path::{Path, PathBuf};

use ssh_key::{HashAlg, PublicKey};

use super::known_hosts::{self, Lookup};
use crate::error::{Error, Result};
use crate::hostkey::HostKey;

/// Which host key the user accepts.
#[derive(Clone, Debug)]
pub enum HostKeyCheck {
    /// Any key, checked against nothing; only when asked for.
    AcceptAny,
    /// Only the key with this `SHA256:` fingerprint.
    Fingerprint(String),
    /// The keys recorded in an OpenSSH known_hosts file.
    KnownHosts {
        /// The file.
        path: PathBuf,
        /// What to do about a host the file does not know.
        unknown: UnknownHost,
    },
}

/// What a known_hosts check does with a host it has no key for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnknownHost {
    /// Record its key and go on (OpenSSH's `StrictHostKeyChecking
    /// accept-new`): trust on first use, and a changed key is refused.
    AcceptNew,
    /// Refuse it (`StrictHostKeyChecking yes`).
    Refuse,
}

impl Default for HostKeyCheck {
    /// `~/.ssh/known_hosts`, with new hosts recorded, as OpenSSH's
    /// `StrictHostKeyChecking accept-new`.
    fn default() -> Self {
        HostKeyCheck::KnownHosts {
            path: known_hosts::default_path(),
            unknown: UnknownHost::AcceptNew,
        }
    }
}

/// How a host key passed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// It is the key expected, or any key was accepted.
    Accepted,
    /// The host was new: its key is now recorded in this file.
    Recorded(PathBuf),
}

impl HostKeyCheck {
    /// From the `-H` argument: a `SHA256:...` fingerprint or the path of a
    /// public key file (`ssh_host_ed25519_key.pub`).
    pub fn parse(arg: &str) -> Result<HostKeyCheck> {
        if arg.starts_with("SHA256:") {
            return Ok(HostKeyCheck::Fingerprint(arg.to_owned()));
        }
        let text = std::fs::read_to_string(Path::new(arg))
            .map_err(|e| Error::Key(format!("cannot read host key {arg}: {e}")))?;
        let key = PublicKey::from_openssh(text.trim())
            .map_err(|e| Error::Key(format!("{arg} is not an OpenSSH public key: {e}")))?;
        Ok(HostKeyCheck::Fingerprint(
            key.fingerprint(HashAlg::Sha256).to_string(),
        ))
    }

    /// Whether `key`, presented by `host` on `port`, passes; a new host's
    /// key may be recorded on the way.
    pub fn check(&self, key: &HostKey, host: &str, port: u16) -> Result<Verdict> {
        match self {
            HostKeyCheck::AcceptAny => Ok(Verdict::Accepted),
            HostKeyCheck::Fingerprint(expected) if *expected == key.fingerprint() => {
                Ok(Verdict::Accepted)
            }
            HostKeyCheck::Fingerprint(expected) => Err(Error::HostKeyMismatch {
                expected: expected.clone(),
                got: key.fingerprint(),
            }),
            HostKeyCheck::KnownHosts { path, unknown } => {
                let name = known_hosts::host_name(host, port);
                let text = match std::fs::read_to_string(path) {
                    Ok(text) => text,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
                    Err(e) => {
                        return Err(Error::Key(format!("cannot read {}: {e}", path.display())))
                    }
                };
                let file = path.display().to_string();
                match known_hosts::lookup(&text, &name, key) {
                    Lookup::Known => Ok(Verdict::Accepted),
                    Lookup::Changed { line, expected } => Err(Error::HostKeyChanged {
                        host: name,
                        file,
                        line,
                        expected,
                        got: key.fingerprint(),
                    }),
                    Lookup::Revoked { line } => Err(Error::HostKeyRevoked {
                        host: name,
                        file,
                        line,
                    }),
                    Lookup::OtherTypes => Err(Error::HostKeyUnknown {
                        host: name,
                        file,
                        why: "it holds keys of other types for this host, and minissh \
                              speaks only ssh-ed25519: add its ssh-ed25519 key by hand"
                            .into(),
                    }),
                    Lookup::Unknown if *unknown == UnknownHost::AcceptNew => {
                        known_hosts::record(path, &name, key)?;
                        Ok(Verdict::Recorded(path.clone()))
                    }
                    Lookup::Unknown => Err(Error::HostKeyUnknown {
                        host: name,
                        file,
                        why: "it has no key for this host, and new hosts are refused".into(),
                    }),
                }
            }
        }
    }
}
