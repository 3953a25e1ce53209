//! User authentication on the server (RFC 4252): ed25519 public keys
//! listed in an OpenSSH authorized_keys file, nothing else.

use std::path::{Path, PathBuf};

use ssh_key::authorized_keys::AuthorizedKeys;

use crate::error::{Error, Result};
use crate::msg;
use crate::transport::curve25519::verify_ed25519;
use crate::wire::{put_string, Msg, Reader};

/// sshd's MaxAuthTries: failed attempts before the connection is cut.
pub const MAX_TRIES: u32 = 6;

/// Requests of any kind (`none` and key probes included) before the
/// connection is cut: a client may ask which keys would do, but not for
/// ever.
pub const MAX_REQUESTS: u32 = 32;

/// What to do about one USERAUTH_REQUEST.
#[derive(Debug)]
pub enum Step {
    /// Send this and wait for the next request.
    Reply(Vec<u8>),
    /// The user is in: send this (USERAUTH_SUCCESS).
    Success {
        /// The user name the client gave.
        user: String,
        /// The message to send.
        reply: Vec<u8>,
    },
    /// Too many failures: disconnect.
    TooManyTries,
}

/// The authentication state of one connection.
#[derive(Debug)]
pub struct Auth {
    authorized_keys: PathBuf,
    failures: u32,
    requests: u32,
}

fn failure() -> Vec<u8> {
    Msg::new(msg::USERAUTH_FAILURE)
        .string("publickey")
        .bool(false)
        .finish()
}

impl Auth {
    /// Checks keys against `authorized_keys`.
    pub fn new(authorized_keys: &Path) -> Auth {
        Auth {
            authorized_keys: authorized_keys.to_owned(),
            failures: 0,
            requests: 0,
        }
    }

    /// Handles a USERAUTH_REQUEST `payload` of the session `session_id`.
    pub fn request(&mut self, payload: &[u8], session_id: &[u8]) -> Result<Step> {
        self.requests += 1;
        if self.requests > MAX_REQUESTS {
            return Ok(Step::TooManyTries);
        }
        let mut r = Reader::body(payload);
        let user = r.text()?.to_owned();
        let service = r.text()?;
        let method = r.text()?;
        let accepted = service == "ssh-connection" && method == "publickey";
        if !accepted {
            // "none" asks which methods there are: it is no failed try.
            if method != "none" {
                self.failures += 1;
            }
            return Ok(self.refuse());
        }
        let signed = r.bool()?;
        let alg = r.text()?;
        let blob = r.string()?;
        if alg != "ssh-ed25519" || !self.is_authorized(blob)? {
            self.failures += 1;
            return Ok(self.refuse());
        }
        if !signed {
            // RFC 4252 §7: the key would do; the client signs next.
            let ok = Msg::new(msg::USERAUTH_PK_OK)
                .string(alg)
                .string(blob)
                .finish();
            return Ok(Step::Reply(ok));
        }
        let signature = r.string()?;
        if !r.is_empty() {
            return Err(Error::Protocol(
                "bytes after the USERAUTH_REQUEST signature".into(),
            ));
        }
        // The signature covers the session id and the request up to it.
        let unsigned = &payload[..payload.len() - 4 - signature.len()];
        let mut data = Vec::with_capacity(4 + session_id.len() + unsigned.len());
        put_string(&mut data, session_id);
        data.extend_from_slice(unsigned);
        let key = ed25519_key(blob)?;
        if !verify_ed25519(&key, signature, &data) {
            self.failures += 1;
            return Ok(self.refuse());
        }
        Ok(Step::Success {
            user,
            reply: vec![msg::USERAUTH_SUCCESS],
        })
    }

    fn refuse(&self) -> Step {
        if self.failures >= MAX_TRIES {
            Step::TooManyTries
        } else {
            Step::Reply(failure())
        }
    }

    /// Whether the key `blob` is in the file. Lines with options
    /// (`command=`, `from=`, ...) are skipped: minissh cannot honour them,
    /// and a key meant to be restricted must not be let in unrestricted.
    /// Lines that do not parse are skipped too, as sshd does.
    fn is_authorized(&self, blob: &[u8]) -> Result<bool> {
        let text = std::fs::read_to_string(&self.authorized_keys).map_err(|e| {
            Error::Key(format!(
                "cannot read {}: {e}",
                self.authorized_keys.display()
            ))
        })?;
        Ok(AuthorizedKeys::new(&text)
            .filter_map(|entry| entry.ok())
            .filter(|entry| entry.config_opts().is_empty())
            .any(|entry| entry.public_key().to_bytes().is_ok_and(|ours| ours == blob)))
    }
}

/// The raw key of an ssh-ed25519 public key blob.
fn ed25519_key(blob: &[u8]) -> Result<[u8; 32]> {
    let mut r = Reader::new(blob);
    if r.string()? != b"ssh-ed25519" {
        return Err(Error::Protocol("not an ssh-ed25519 key".into()));
    }
    r.string()?
        .try_into()
        .map_err(|_| Error::Protocol("ed25519 key is not 32 bytes".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;

    const SESSION_ID: &[u8] = b"session id";

    fn request(user: &str, key: &Identity, sign: bool, session_id: &[u8]) -> Vec<u8> {
        let blob = key.public_blob();
        let unsigned = Msg::new(msg::USERAUTH_REQUEST)
            .string(user)
            .string("ssh-connection")
            .string("publickey")
            .bool(sign)
            .string("ssh-ed25519")
            .string(&blob)
            .finish();
        if !sign {
            return unsigned;
        }
        let mut data = Vec::new();
        put_string(&mut data, session_id);
        data.extend_from_slice(&unsigned);
        let mut full = unsigned;
        put_string(&mut full, &key.sign(&data));
        full
    }

    /// A key listed in a fresh authorized_keys file (with a stranger's key
    /// listed under an option), and a key that is not listed.
    fn setup() -> (Auth, Identity, Identity, Identity) {
        let dir = interop::sshd::fresh_dir("minissh-auth").unwrap();
        let listed = Identity::load_or_generate(&dir.join("listed")).unwrap();
        let restricted = Identity::load_or_generate(&dir.join("restricted")).unwrap();
        let stranger = Identity::load_or_generate(&dir.join("stranger")).unwrap();
        let file = dir.join("authorized_keys");
        std::fs::write(
            &file,
            format!(
                "# a comment\n\nnot a key line\n{}\ncommand=\"true\" {}\n",
                listed.public_line(),
                restricted.public_line()
            ),
        )
        .unwrap();
        (Auth::new(&file), listed, restricted, stranger)
    }

    #[test]
    fn a_listed_key_with_a_good_signature_gets_in() {
        let (mut auth, listed, _, _) = setup();
        let probe = auth
            .request(&request("alice", &listed, false, SESSION_ID), SESSION_ID)
            .unwrap();
        assert!(matches!(probe, Step::Reply(m) if m[0] == msg::USERAUTH_PK_OK));
        let step = auth
            .request(&request("alice", &listed, true, SESSION_ID), SESSION_ID)
            .unwrap();
        assert!(matches!(step, Step::Success { user, .. } if user == "alice"));
    }

    #[test]
    fn unlisted_restricted_and_replayed_keys_are_refused_then_cut_off() {
        let (mut auth, listed, restricted, stranger) = setup();
        let refused = |step: Step| matches!(step, Step::Reply(m) if m[0] == msg::USERAUTH_FAILURE);
        let stranger_req = request("bob", &stranger, true, SESSION_ID);
        assert!(refused(auth.request(&stranger_req, SESSION_ID).unwrap()));
        let restricted_req = request("bob", &restricted, true, SESSION_ID);
        assert!(refused(auth.request(&restricted_req, SESSION_ID).unwrap()));
        // A signature made for another session does not verify here.
        let replayed = request("alice", &listed, true, b"another session");
        assert!(refused(auth.request(&replayed, SESSION_ID).unwrap()));
        for _ in 3..MAX_TRIES - 1 {
            assert!(refused(auth.request(&stranger_req, SESSION_ID).unwrap()));
        }
        assert!(matches!(
            auth.request(&stranger_req, SESSION_ID).unwrap(),
            Step::TooManyTries
        ));
        // The restricted key itself is fine: listed without options, it
        // gets in (so its refusal above was the options' doing).
        let file = auth.authorized_keys.with_file_name("plain_keys");
        std::fs::write(&file, restricted.public_line() + "\n").unwrap();
        let step = Auth::new(&file)
            .request(&restricted_req, SESSION_ID)
            .unwrap();
        assert!(matches!(step, Step::Success { .. }));
    }

    #[test]
    fn endless_probes_are_cut_off() {
        // "none" and probes of a listed key are no failures, but they end.
        let (mut auth, listed, _, _) = setup();
        let none = Msg::new(msg::USERAUTH_REQUEST)
            .string("bob")
            .string("ssh-connection")
            .string("none")
            .finish();
        let probe = request("bob", &listed, false, SESSION_ID);
        for i in 0..MAX_REQUESTS {
            let message = if i % 2 == 0 { &none } else { &probe };
            assert!(
                matches!(auth.request(message, SESSION_ID).unwrap(), Step::Reply(_)),
                "{i}"
            );
        }
        assert!(matches!(
            auth.request(&none, SESSION_ID).unwrap(),
            Step::TooManyTries
        ));
    }
}
