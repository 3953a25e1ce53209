//! `minissh`: run a command or upload files over SSH.

use std::fs::File;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::ExitCode;

use minissh::{Config, Error, ExitStatus, HostKeyCheck, Session};
use ssh_packetizer::{CipherAlgorithm, CompressionAlgorithm, MacAlgorithm, RekeyLimits};

const USAGE: &str = "\
usage: minissh [options] user@host exec COMMAND...
       minissh [options] user@host scp FILE... REMOTE_DIR

options:
  -p PORT         TCP port (22)
  -i KEY          unencrypted OpenSSH ed25519 private key (~/.ssh/id_ed25519)
  -c CIPHER       offer only this cipher (aes128-ctr, aes256-gcm@openssh.com, ...)
  -m MAC          offer only this MAC (hmac-sha2-256, hmac-sha1-etm@openssh.com, ...)
  -C              offer compression (zlib@openssh.com, zlib)
  -H KEY          accept only this host key: a SHA256:... fingerprint or a .pub file
  -R BYTES        start a rekey after BYTES in either direction
  --no-strict-kex do not offer strict kex (kex-strict-c-v00@openssh.com)
  -q              do not print the host key fingerprint";

enum Command {
    Exec(String),
    Scp(Vec<PathBuf>, String),
}

fn parse(args: &[String]) -> Result<(Config, Command, bool), String> {
    let home = std::env::var("HOME").unwrap_or_default();
    let mut config = Config::new("", 22, "", PathBuf::from(home).join(".ssh/id_ed25519"));
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
            "-c" => {
                let v = value(&mut i, flag)?;
                let cipher: CipherAlgorithm =
                    v.parse().map_err(|_| format!("unknown cipher {v}"))?;
                if cipher == CipherAlgorithm::None {
                    return Err("cipher none is not offered".into());
                }
                config.prefs.ciphers = vec![cipher];
            }
            "-m" => {
                let v = value(&mut i, flag)?;
                let mac: MacAlgorithm = v.parse().map_err(|_| format!("unknown MAC {v}"))?;
                if mac == MacAlgorithm::None {
                    return Err("MAC none is not offered".into());
                }
                config.prefs.macs = vec![mac];
            }
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

fn run(config: &Config, command: Command, quiet: bool) -> Result<u8, Error> {
    let mut session = Session::connect(config)?;
    if !quiet {
        let info = session.info();
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
