//! `minissh`: run a command or upload files over SSH, or serve SSH.

use std::fs::File;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::ExitCode;

use minissh::server::throttle::MaxStartups;
use minissh::server::{Server, ServerConfig};
use minissh::{ClientConfig, Error, ExitStatus, HostKeyCheck, Session, UnknownHost};
use ssh_packetizer::{
    CipherAlgorithm, CompressionAlgorithm, CryptoProvider, MacAlgorithm, RekeyLimits,
};

const USAGE: &str = "\
usage: minissh [options] user@host exec COMMAND...
       minissh [options] user@host scp FILE... REMOTE_DIR
       minissh serve [server options]

options:
  -p PORT         TCP port (22)
  -i KEY          unencrypted OpenSSH ed25519 private key (~/.ssh/id_ed25519)
  -c CIPHER       offer only this cipher (aes128-ctr, aes256-gcm@openssh.com, ...)
  -m MAC          offer only this MAC (hmac-sha2-256, hmac-sha1-etm@openssh.com, ...)
  -C              offer compression (zlib@openssh.com, zlib)
  -H KEY          accept only this host key: a SHA256:... fingerprint or a .pub file
  -o UserKnownHostsFile=FILE   check host keys against FILE (~/.ssh/known_hosts)
  -o StrictHostKeyChecking=accept-new|yes|no
                  a host not in known_hosts: record its key (accept-new, the
                  default), refuse it (yes), or check no host key at all (no)
  -R BYTES        start a rekey after BYTES in either direction
  -P PROVIDER     crypto provider: rustcrypto (default), aws-lc-rs, openssl
                  (the last two need minissh built with their feature)
  --no-strict-kex do not offer strict kex (kex-strict-c-v00@openssh.com)
  -q              do not print the host key fingerprint

server options:
  -l ADDR:PORT    listen here (127.0.0.1:2222; port 0 picks one, the log says which)
  -k KEY          ed25519 host key, generated there if missing (./minissh_host_ed25519_key)
  -a FILE         authorized_keys (~/.ssh/authorized_keys)
  -E FILE         append the log here (stderr)
  -g SECONDS      login grace time (120)
  -K SECONDS      keepalive after SECONDS without traffic (off)
  -M COUNT        unanswered keepalives before the client is cut off (3)
  -n COUNT        connections open at once (64)
  -S START:RATE:FULL  random early drop of unauthenticated connections, as
                  sshd's MaxStartups (10:30:100); a single N drops all beyond N
  -s COUNT        unauthenticated connections per address, as sshd's
                  PerSourceMaxStartups (no limit)
  -t THREADS      threads running the connections (one per CPU)
  -W SECONDS      cut off a client whose socket takes nothing for SECONDS (60)
  -T SECONDS      cut off a client whose rekey takes longer than SECONDS (60)
  -R BYTES        start a rekey after BYTES in either direction
  -c CIPHER, -m MAC  offer only this cipher or MAC
  -P PROVIDER     crypto provider, as for the client";

enum Command {
    Exec(String),
    Scp(Vec<PathBuf>, String),
}

fn parse(args: &[String]) -> Result<(ClientConfig, Command, bool), String> {
    let home = std::env::var("HOME").unwrap_or_default();
    let mut config = ClientConfig::new("", 22, "", PathBuf::from(home).join(".ssh/id_ed25519"));
    let mut quiet = false;
    let mut i = 0;
    let value = |i: &mut usize, flag: &str| {
        *i += 1;
        args.get(*i)
            .cloned()
            .ok_or_else(|| format!("{flag} needs a value"))
    };
    while i < args.len() && args[i].starts_with('-') {
        let flag = args[i].as_str();
        match flag {
            "-p" => {
                let v = value(&mut i, flag)?;
                config.port = v.parse().map_err(|_| format!("bad port {v}"))?;
            }
            "-i" => config.identity = value(&mut i, flag)?.into(),
            "-c" => config.prefs.ciphers = vec![parse_cipher(&value(&mut i, flag)?)?],
            "-P" => config.prefs.provider = parse_provider(&value(&mut i, flag)?)?,
            "-m" => config.prefs.macs = vec![parse_mac(&value(&mut i, flag)?)?],
            "-C" => {
                config.prefs.compression = vec![
                    CompressionAlgorithm::ZlibOpenSsh,
                    CompressionAlgorithm::Zlib,
                    CompressionAlgorithm::None,
                ]
            }
            "-H" => {
                config.host_key =
                    HostKeyCheck::parse(&value(&mut i, flag)?).map_err(|e| e.to_string())?
            }
            "-R" => {
                let v = value(&mut i, flag)?;
                let bytes = v.parse().map_err(|_| format!("bad byte count {v}"))?;
                config.rekey = Some(RekeyLimits {
                    max_bytes: Some(bytes),
                    ..RekeyLimits::default()
                });
            }
            "-o" => {
                let v = value(&mut i, flag)?;
                set_option(&mut config.host_key, &v)?;
            }
            "--no-strict-kex" => config.prefs.strict_kex = false,
            "-q" => quiet = true,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown option {other}")),
        }
        i += 1;
    }
    let target = args.get(i).ok_or("no user@host given")?;
    let (user, host) = target
        .split_once('@')
        .ok_or_else(|| format!("{target}: expected user@host"))?;
    config.user = user.to_owned();
    config.host = host.to_owned();
    let rest = &args[i + 1..];
    let command = match rest.first().map(String::as_str) {
        Some("exec") if rest.len() > 1 => Command::Exec(rest[1..].join(" ")),
        Some("scp") if rest.len() > 2 => {
            let files = rest[1..rest.len() - 1].iter().map(PathBuf::from).collect();
            Command::Scp(files, rest[rest.len() - 1].clone())
        }
        Some("exec") => return Err("exec needs a command".into()),
        Some("scp") => return Err("scp needs at least one file and a remote directory".into()),
        _ => return Err("expected `exec` or `scp` after user@host".into()),
    };
    Ok((config, command, quiet))
}

/// An OpenSSH-style `-o Name=value` option about host keys.
fn set_option(check: &mut HostKeyCheck, option: &str) -> Result<(), String> {
    let (name, value) = option
        .split_once('=')
        .ok_or_else(|| format!("-o {option}: expected Name=value"))?;
    let known_hosts = |check: &HostKeyCheck| match check {
        HostKeyCheck::KnownHosts { path, unknown } => (path.clone(), *unknown),
        _ => (
            minissh::client::known_hosts::default_path(),
            UnknownHost::AcceptNew,
        ),
    };
    match name.to_ascii_lowercase().as_str() {
        "userknownhostsfile" => {
            let (_, unknown) = known_hosts(check);
            *check = HostKeyCheck::KnownHosts {
                path: value.into(),
                unknown,
            };
        }
        "stricthostkeychecking" => {
            let (path, _) = known_hosts(check);
            *check = match value {
                "accept-new" => HostKeyCheck::KnownHosts {
                    path,
                    unknown: UnknownHost::AcceptNew,
                },
                "yes" => HostKeyCheck::KnownHosts {
                    path,
                    unknown: UnknownHost::Refuse,
                },
                "no" => HostKeyCheck::AcceptAny,
                other => {
                    return Err(format!(
                        "StrictHostKeyChecking={other}: expected accept-new, yes or no"
                    ))
                }
            };
        }
        _ => return Err(format!("unknown option -o {name}")),
    }
    Ok(())
}

fn parse_serve(args: &[String]) -> Result<ServerConfig, String> {
    let home = PathBuf::from(std::env::var("HOME").unwrap_or_default());
    let mut config = ServerConfig::new(
        "127.0.0.1:2222",
        "minissh_host_ed25519_key",
        home.join(".ssh/authorized_keys"),
    );
    let mut i = 0;
    let value = |i: &mut usize, flag: &str| {
        *i += 1;
        args.get(*i)
            .cloned()
            .ok_or_else(|| format!("{flag} needs a value"))
    };
    let number = |v: String, flag: &str| -> Result<u64, String> {
        v.parse().map_err(|_| format!("{flag}: bad number {v}"))
    };
    while i < args.len() {
        let flag = args[i].as_str();
        match flag {
            "-l" => config.listen = value(&mut i, flag)?,
            "-k" => config.host_key = value(&mut i, flag)?.into(),
            "-a" => config.authorized_keys = value(&mut i, flag)?.into(),
            "-E" => config.log = Some(value(&mut i, flag)?.into()),
            "-g" => {
                config.login_grace =
                    std::time::Duration::from_secs(number(value(&mut i, flag)?, flag)?)
            }
            "-K" => {
                config.keepalive = Some(std::time::Duration::from_secs(number(
                    value(&mut i, flag)?,
                    flag,
                )?))
            }
            "-M" => config.keepalive_max = number(value(&mut i, flag)?, flag)? as u32,
            "-n" => config.max_connections = number(value(&mut i, flag)?, flag)? as usize,
            "-S" => {
                config.max_startups =
                    MaxStartups::parse(&value(&mut i, flag)?).map_err(|e| format!("-S: {e}"))?
            }
            "-s" => match number(value(&mut i, flag)?, flag)? {
                0 => return Err("-s: the per-address limit must be at least 1".into()),
                n => config.per_source_max_startups = Some(n.min(u64::from(u32::MAX)) as u32),
            },
            "-t" => match number(value(&mut i, flag)?, flag)? {
                0 => return Err("-t: at least 1 thread".into()),
                n => config.threads = Some(n as usize),
            },
            "-W" => match number(value(&mut i, flag)?, flag)? {
                0 => return Err("-W: the stall limit must be at least 1 second".into()),
                secs => config.write_stall = std::time::Duration::from_secs(secs),
            },
            "-T" => match number(value(&mut i, flag)?, flag)? {
                0 => return Err("-T: the rekey deadline must be at least 1 second".into()),
                secs => config.kex_deadline = std::time::Duration::from_secs(secs),
            },
            "-R" => {
                config.rekey = Some(RekeyLimits {
                    max_bytes: Some(number(value(&mut i, flag)?, flag)?),
                    ..RekeyLimits::default()
                })
            }
            "-c" => {
                let v = value(&mut i, flag)?;
                config.prefs.ciphers = vec![parse_cipher(&v)?];
            }
            "-m" => {
                let v = value(&mut i, flag)?;
                config.prefs.macs = vec![parse_mac(&v)?];
            }
            "-P" => config.prefs.provider = parse_provider(&value(&mut i, flag)?)?,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown server option {other}")),
        }
        i += 1;
    }
    Ok(config)
}

fn parse_provider(v: &str) -> Result<&'static CryptoProvider, String> {
    CryptoProvider::by_name(v).ok_or_else(|| {
        let built: Vec<_> = CryptoProvider::available()
            .iter()
            .map(|p| p.name())
            .collect();
        format!(
            "no crypto provider {v} in this build (it has {}; aws-lc-rs and openssl need their features)",
            built.join(", ")
        )
    })
}

fn parse_cipher(v: &str) -> Result<CipherAlgorithm, String> {
    let cipher: CipherAlgorithm = v.parse().map_err(|_| format!("unknown cipher {v}"))?;
    if cipher == CipherAlgorithm::None {
        return Err("cipher none is not offered".into());
    }
    if !cipher.is_available() {
        return Err(format!("{v} needs minissh built with --features legacy"));
    }
    Ok(cipher)
}

fn parse_mac(v: &str) -> Result<MacAlgorithm, String> {
    let mac: MacAlgorithm = v.parse().map_err(|_| format!("unknown MAC {v}"))?;
    if mac == MacAlgorithm::None {
        return Err("MAC none is not offered".into());
    }
    if !mac.is_available() {
        return Err(format!("{v} needs minissh built with --features legacy"));
    }
    Ok(mac)
}

fn serve(args: &[String]) -> ExitCode {
    let config = match parse_serve(args) {
        Ok(config) => config,
        Err(why) => {
            if !why.is_empty() {
                eprintln!("minissh: {why}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match Server::bind(config).and_then(Server::run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("minissh serve: {e}");
            ExitCode::from(1)
        }
    }
}

fn run(config: &ClientConfig, command: Command, quiet: bool) -> Result<u8, Error> {
    let mut session = Session::connect(config)?;
    if !quiet {
        let info = session.info();
        if let Some(file) = &info.host_key_recorded {
            eprintln!(
                "minissh: recorded the host key of {} ({}) in {}",
                minissh::client::known_hosts::host_name(&config.host, config.port),
                info.host_key_fingerprint,
                file.display()
            );
        }
        let n = info.negotiated.expect("negotiated after connect");
        eprintln!(
            "minissh: {} host key ssh-ed25519 {}; {} {}",
            info.server_id,
            info.host_key_fingerprint,
            n.cipher_c2s.name(),
            if n.mac_c2s == MacAlgorithm::None {
                ""
            } else {
                n.mac_c2s.name()
            },
        );
    }
    let code = match command {
        Command::Exec(cmd) => {
            // Unbuffered handles on fds 0-2: data moves in whole packets.
            let stdin = File::from(std::io::stdin().as_fd().try_clone_to_owned()?);
            let stdout = File::from(std::io::stdout().as_fd().try_clone_to_owned()?);
            let stderr = File::from(std::io::stderr().as_fd().try_clone_to_owned()?);
            match session.exec(&cmd, stdin, Box::new(stdout), Box::new(stderr))? {
                ExitStatus::Code(c) => u8::try_from(c).unwrap_or(255),
                ExitStatus::Signal(sig) => {
                    eprintln!("minissh: remote command killed by signal {sig}");
                    255
                }
                ExitStatus::Unknown => {
                    eprintln!("minissh: the channel closed without an exit status");
                    255
                }
            }
        }
        Command::Scp(files, dir) => {
            session.scp_upload(&files, &dir)?;
            0
        }
    };
    session.disconnect()?;
    Ok(code)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("serve") {
        return serve(&args[1..]);
    }
    let (config, command, quiet) = match parse(&args) {
        Ok(parsed) => parsed,
        Err(why) => {
            if !why.is_empty() {
                eprintln!("minissh: {why}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&config, command, quiet) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("minissh: {e}");
            ExitCode::from(255)
        }
    }
}
