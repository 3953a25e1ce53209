//! OpenSSH's known_hosts file (sshd(8), "SSH_KNOWN_HOSTS FILE FORMAT"):
//! looking a host's key up, and recording a new one.
//!
//! A host is named as OpenSSH names it: `host` on port 22, `[host]:port`
//! elsewhere. Entries may list several comma-separated patterns with `*`
//! and `?` wildcards and `!` negations, or be hashed (`|1|salt|hash`, an
//! HMAC-SHA1 of the name keyed with the salt). `@revoked` keys are refused
//! wherever they appear; `@cert-authority` lines are skipped (minissh
//! takes no certificates), and so are lines that do not parse.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use ssh_key::known_hosts::{Entry, HostPatterns, Marker};

use crate::error::{Error, Result};
use crate::hostkey::HostKey;

/// The name known_hosts files use for `host` at `port`, lowercased as
/// OpenSSH writes (and hashes) it.
pub fn host_name(host: &str, port: u16) -> String {
    let host = host.to_ascii_lowercase();
    if port == 22 {
        host
    } else {
        format!("[{host}]:{port}")
    }
}

/// What a known_hosts file says about a host's key.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup {
    /// A line for this host holds this very key.
    Known,
    /// Lines for this host hold other ssh-ed25519 keys: the first such
    /// line's number and key fingerprint.
    Changed {
        /// 1-based line number.
        line: usize,
        /// The fingerprint of the key on that line.
        expected: String,
    },
    /// The key is marked `@revoked` (on this line).
    Revoked {
        /// 1-based line number.
        line: usize,
    },
    /// Lines for this host hold only keys of other types.
    OtherTypes,
    /// Nothing about this host.
    Unknown,
}

/// Looks `key` up for `name` in the text of a known_hosts file.
pub fn lookup(text: &str, name: &str, key: &HostKey) -> Lookup {
    let mut changed = None;
    let mut other_types = false;
    let mut known = false;
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Ok(entry) = line.parse::<Entry>() else {
            // A key type this build cannot parse, for this host, is still
            // a key of another type: it must not make the host look new.
            if unparsed_line_names(line, name) {
                other_types = true;
            }
            continue;
        };
        let same_key = entry
            .public_key()
            .to_bytes()
            .is_ok_and(|blob| blob == key.blob());
        match entry.marker() {
            // A revoked key is refused for every host.
            Some(Marker::Revoked) if same_key => return Lookup::Revoked { line: index + 1 },
            Some(_) => continue,
            None => {}
        }
        if !matches_host(entry.host_patterns(), name) {
            continue;
        }
        if same_key {
            known = true;
        } else if entry.public_key().algorithm().as_str() == "ssh-ed25519" {
            changed.get_or_insert((
                index + 1,
                entry.public_key().fingerprint(Default::default()),
            ));
        } else {
            other_types = true;
        }
    }
    match (known, changed) {
        (true, _) => Lookup::Known,
        (false, Some((line, fp))) => Lookup::Changed {
            line,
            expected: fp.to_string(),
        },
        (false, None) if other_types => Lookup::OtherTypes,
        (false, None) => Lookup::Unknown,
    }
}

/// Whether a line that did not parse as an entry still names `name` in
/// its host field. Marker lines that do not parse are skipped: one cannot
/// vouch for a key it does not hold.
fn unparsed_line_names(line: &str, name: &str) -> bool {
    let hosts = line.split_whitespace().next().unwrap_or_default();
    !hosts.starts_with('@')
        && hosts
            .parse::<HostPatterns>()
            .is_ok_and(|patterns| matches_host(&patterns, name))
}

/// Whether an entry's patterns cover `name`.
fn matches_host(patterns: &HostPatterns, name: &str) -> bool {
    match patterns {
        HostPatterns::HashedName { salt, hash } => {
            let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(salt) else {
                return false;
            };
            mac.update(name.as_bytes());
            mac.verify_slice(hash).is_ok()
        }
        HostPatterns::Patterns(list) => {
            let mut matched = false;
            for pattern in list {
                match pattern.strip_prefix('!') {
                    // A negated match excludes the host whatever else
                    // matches.
                    Some(negated) if glob(negated, name) => return false,
                    Some(_) => {}
                    None => matched |= glob(pattern, name),
                }
            }
            matched
        }
    }
}

/// `*` and `?` wildcards, the rest literal; host names compare without
/// regard to case.
fn glob(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (
        pattern.to_ascii_lowercase().chars().collect(),
        name.to_ascii_lowercase().chars().collect(),
    );
    // Iterative matching with one backtrack point for the last `*`.
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Appends `name key` to the file, creating it (and its directory,
/// owner-only) if need be.
pub fn record(path: &Path, name: &str, key: &HostKey) -> Result<()> {
    let fail = |e: std::io::Error| {
        Error::Key(format!(
            "cannot record the host key in {}: {e}",
            path.display()
        ))
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            let mut builder = std::fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
            builder.create(dir).map_err(fail)?;
        }
    }
    let existing = std::fs::read(path).unwrap_or_default();
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(fail)?;
    let mut line = String::new();
    if existing.last().is_some_and(|&b| b != b'\n') {
        line.push('\n');
    }
    line.push_str(&format!("{name} {}\n", key.openssh_line()));
    file.write_all(line.as_bytes()).map_err(fail)
}

/// `~/.ssh/known_hosts`.
pub fn default_path() -> PathBuf {
    let home = std::env::var_os("HOME").unwrap_or_default();
    PathBuf::from(home).join(".ssh/known_hosts")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;

    /// An ecdsa-sha2-nistp256 key, a type this build does not parse.
    const ECDSA: &str = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBB4L/OFenm+Rcoh/XwgLKfJqZF0aq707JmbbYk2+nDBSSifWBs+ZZCkuhOKZXy4iJZ+p8F04cu26YdphCgVwTG8=";

    fn key(dir: &Path, name: &str) -> (HostKey, String) {
        let id = Identity::load_or_generate(&dir.join(name)).unwrap();
        (
            HostKey::from_blob(&id.public_blob()).unwrap(),
            id.public_line(),
        )
    }

    fn hashed(name: &str, salt: &[u8]) -> String {
        use base64ct::{Base64, Encoding};
        let mut mac = Hmac::<Sha1>::new_from_slice(salt).unwrap();
        mac.update(name.as_bytes());
        let hash = mac.finalize().into_bytes();
        format!(
            "|1|{}|{}",
            Base64::encode_string(salt),
            Base64::encode_string(&hash)
        )
    }

    #[test]
    fn plain_hashed_and_bracketed_names_are_found() {
        let dir = interop::sshd::fresh_dir("minissh-kh").unwrap();
        let (ours, line) = key(&dir, "ours");
        let (_, other) = key(&dir, "other");
        let text = format!(
            "# comment\ngarbage line\nexample.org {other}\n\
             {} {line}\n*.lan,!bad.lan {line}\n[127.0.0.1]:2222 {line}\n",
            hashed("hashed.example", b"0123456789abcdef0123")
        );
        assert_eq!(lookup(&text, "hashed.example", &ours), Lookup::Known);
        assert_eq!(lookup(&text, "box.LAN", &ours), Lookup::Known);
        assert_eq!(lookup(&text, "bad.lan", &ours), Lookup::Unknown);
        assert_eq!(
            lookup(&text, &host_name("127.0.0.1", 2222), &ours),
            Lookup::Known
        );
        assert_eq!(
            lookup(&text, &host_name("127.0.0.1", 22), &ours),
            Lookup::Unknown
        );
        assert_eq!(lookup(&text, "[127.0.0.1]:2223", &ours), Lookup::Unknown);
        assert!(matches!(
            lookup(&text, "example.org", &ours),
            Lookup::Changed { line: 3, .. }
        ));
        // Another line with the right key wins over a stale one.
        let both = format!("example.org {other}\nexample.org {line}\n");
        assert_eq!(lookup(&both, "example.org", &ours), Lookup::Known);
        let revoked = format!("example.org {line}\n@revoked * {line}\n");
        assert_eq!(
            lookup(&revoked, "example.org", &ours),
            Lookup::Revoked { line: 2 }
        );
    }

    #[test]
    fn recording_appends_a_line_that_is_then_found() {
        let dir = interop::sshd::fresh_dir("minissh-kh").unwrap();
        let (ours, _) = key(&dir, "ours");
        let path = dir.join("sub/known_hosts");
        record(&path, "[localhost]:2200", &ours).unwrap();
        std::fs::write(
            &path,
            std::fs::read_to_string(&path).unwrap() + "# no newline",
        )
        .unwrap();
        record(&path, "other", &ours).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 3, "{text}");
        assert_eq!(lookup(&text, "[localhost]:2200", &ours), Lookup::Known);
        assert_eq!(lookup(&text, "other", &ours), Lookup::Known);
    }

    #[test]
    fn a_host_known_by_another_key_type_is_not_new() {
        let dir = interop::sshd::fresh_dir("minissh-kh").unwrap();
        let (ours, _) = key(&dir, "ours");
        let text = format!(
            "ecdsa.example,other {ECDSA}\n{} {ECDSA}\n",
            hashed("hashed.example", b"salt")
        );
        assert_eq!(lookup(&text, "ecdsa.example", &ours), Lookup::OtherTypes);
        assert_eq!(lookup(&text, "hashed.example", &ours), Lookup::OtherTypes);
        assert_eq!(lookup(&text, "elsewhere", &ours), Lookup::Unknown);
    }

    #[test]
    fn names_are_lowercased_as_openssh_hashes_them() {
        let dir = interop::sshd::fresh_dir("minissh-kh").unwrap();
        let (ours, line) = key(&dir, "ours");
        assert_eq!(host_name("Host.Example", 22), "host.example");
        assert_eq!(host_name("Host.Example", 2222), "[host.example]:2222");
        let text = format!("{} {line}\n", hashed("[host.example]:2222", b"some salt"));
        let name = host_name("HOST.example", 2222);
        assert_eq!(lookup(&text, &name, &ours), Lookup::Known);
    }

    #[test]
    fn wildcards_match_like_openssh() {
        assert!(glob("*", "anything"));
        assert!(glob("a*c", "abbbc"));
        assert!(glob("a?c", "abc"));
        assert!(!glob("a?c", "abbc"));
        assert!(glob("[10.0.0.?]:22*", "[10.0.0.5]:2222"));
        assert!(!glob("*.lan", "lan"));
    }
}
