//! What russh's client and server share here: the cipher and MAC chosen on
//! the command line, as russh's `Preferred`.

use std::borrow::Cow;

use russh::{cipher, mac, Preferred};

/// `Preferred` offering only `cipher` and `mac` (names as OpenSSH spells
/// them), the rest russh's defaults.
pub fn preferred(cipher: Option<&str>, mac: Option<&str>) -> Result<Preferred, String> {
    let mut p = Preferred::default();
    if let Some(c) = cipher {
        let name = cipher::Name::try_from(c).map_err(|_| format!("russh has no cipher {c}"))?;
        p.cipher = Cow::Owned(vec![name]);
    }
    if let Some(m) = mac {
        let name = mac::Name::try_from(m).map_err(|_| format!("russh has no MAC {m}"))?;
        p.mac = Cow::Owned(vec![name]);
    }
    Ok(p)
}

/// The value after `flag` in `args`, if given.
pub fn arg(args: &[String], flag: &str) -> Option<String> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1).cloned())
}

/// `Preferred` offering every modern cipher and MAC russh has (its default
/// server lists leave some out, aes128-gcm among them), so that the
/// client's choice decides, as with sshd and `minissh serve`.
pub fn preferred_all() -> Preferred {
    let ciphers = [
        "chacha20-poly1305@openssh.com",
        "aes256-gcm@openssh.com",
        "aes128-gcm@openssh.com",
        "aes256-ctr",
        "aes192-ctr",
        "aes128-ctr",
    ];
    let macs = [
        "hmac-sha2-256-etm@openssh.com",
        "hmac-sha2-512-etm@openssh.com",
        "hmac-sha1-etm@openssh.com",
        "hmac-sha2-256",
        "hmac-sha2-512",
        "hmac-sha1",
    ];
    Preferred {
        cipher: Cow::Owned(
            ciphers
                .iter()
                .filter_map(|c| cipher::Name::try_from(*c).ok())
                .collect(),
        ),
        mac: Cow::Owned(
            macs.iter()
                .filter_map(|m| mac::Name::try_from(*m).ok())
                .collect(),
        ),
        ..Preferred::default()
    }
}
