//! The client's half of user authentication (RFC 4252), as messages: the
//! service request, the signed publickey request, and what the server's
//! answer means. No I/O, so a sync and an async client share it.

use crate::error::{Error, Result};
use crate::identity::Identity;
use crate::msg;
use crate::wire::{put_string, Msg, Reader};

/// SSH_MSG_SERVICE_REQUEST for `ssh-userauth`.
pub fn service_request() -> Vec<u8> {
    Msg::new(msg::SERVICE_REQUEST)
        .string("ssh-userauth")
        .finish()
}

/// Checks the answer to [`service_request`].
pub fn check_service_accept(answer: &[u8]) -> Result<()> {
    match answer.first() {
        Some(&msg::SERVICE_ACCEPT) => Ok(()),
        other => Err(Error::Protocol(format!(
            "expected SERVICE_ACCEPT, got message {other:?}"
        ))),
    }
}

/// A publickey USERAUTH_REQUEST for `user`, signed with `identity` over
/// the `session_id` (RFC 4252 §7: the signature covers the session id and
/// the request).
pub fn publickey_request(user: &str, identity: &Identity, session_id: &[u8]) -> Vec<u8> {
    let request = Msg::new(msg::USERAUTH_REQUEST)
        .string(user)
        .string("ssh-connection")
        .string("publickey")
        .bool(true)
        .string("ssh-ed25519")
        .string(identity.public_blob())
        .finish();
    let mut signed = Vec::with_capacity(4 + session_id.len() + request.len());
    put_string(&mut signed, session_id);
    signed.extend_from_slice(&request);
    let mut full = request;
    put_string(&mut full, &identity.sign(&signed));
    full
}

/// What the server's answer to [`publickey_request`] means: success, or
/// the refusal with the methods it would still take.
pub fn check_auth_answer(answer: &[u8]) -> Result<()> {
    match answer.first() {
        Some(&msg::USERAUTH_SUCCESS) => Ok(()),
        Some(&msg::USERAUTH_FAILURE) => {
            let methods = Reader::body(answer).text()?.to_owned();
            Err(Error::AuthFailed { methods })
        }
        other => Err(Error::Protocol(format!(
            "unexpected message {other:?} during authentication"
        ))),
    }
}
