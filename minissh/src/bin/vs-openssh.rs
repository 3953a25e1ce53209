//! Side by side with OpenSSH's `ssh`: the same private sshd, the same
//! transfers, the client's own CPU time per GiB.
//!
//! For each suite it downloads (`head -c N /dev/zero`) and uploads
//! (`cat > /dev/null`) N bytes with `ssh` and with `minissh`, alternating
//! the two clients for several rounds, and prints the median wall time and
//! the median CPU seconds (user + sys of the client process alone, from
//! /proc/self/stat's reaped-children counters) per GiB, and their ratio.
//!
//! `cargo run --release -p minissh --bin vs-openssh -- [--gib N] [--rounds N] [--suite FILTER]`

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use minissh::sshd::{current_user, Sshd};

const SUITES: &[(&str, &str)] = &[
    ("aes128-gcm@openssh.com", ""),
    ("aes256-gcm@openssh.com", ""),
    ("chacha20-poly1305@openssh.com", ""),
    ("aes128-ctr", "hmac-sha2-256-etm@openssh.com"),
    ("aes128-ctr", "hmac-sha2-256"),
    ("aes128-ctr", "hmac-sha1-etm@openssh.com"),
    ("aes128-ctr", "hmac-sha1"),
    ("aes128-ctr", "hmac-sha2-512-etm@openssh.com"),
    ("aes128-ctr", "hmac-sha2-512"),
    ("aes192-ctr", "hmac-sha2-256-etm@openssh.com"),
    ("aes192-ctr", "hmac-sha2-256"),
    ("aes192-ctr", "hmac-sha1-etm@openssh.com"),
    ("aes192-ctr", "hmac-sha1"),
    ("aes192-ctr", "hmac-sha2-512-etm@openssh.com"),
    ("aes192-ctr", "hmac-sha2-512"),
    ("aes256-ctr", "hmac-sha2-256-etm@openssh.com"),
    ("aes256-ctr", "hmac-sha2-256"),
    ("aes256-ctr", "hmac-sha1-etm@openssh.com"),
    ("aes256-ctr", "hmac-sha1"),
    ("aes256-ctr", "hmac-sha2-512-etm@openssh.com"),
    ("aes256-ctr", "hmac-sha2-512"),
];

#[derive(Clone, Copy, PartialEq)]
enum Client {
    OpenSsh,
    MiniSsh,
}

#[derive(Clone, Copy, PartialEq)]
enum Direction {
    Down,
    Up,
}

struct Run {
    wall: f64,
    cpu: f64,
}

/// User + system seconds of this process's reaped children so far.
fn children_cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // Fields after the command name, which sits in parentheses.
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // cutime and cstime are fields 16 and 17 of the whole line; `rest`
    // starts at field 3.
    let ticks: f64 = fields[13].parse::<f64>().unwrap() + fields[14].parse::<f64>().unwrap();
    ticks / clock_ticks()
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

fn client_command(
    client: Client,
    minissh: &Path,
    sshd: &Sshd,
    cipher: &str,
    mac: &str,
    remote: &str,
) -> Command {
    let target = format!("{}@127.0.0.1", current_user());
    let port = sshd.port().to_string();
    let key = sshd.client_key();
    match client {
        Client::OpenSsh => {
            let mut cmd = Command::new("/usr/bin/ssh");
            cmd.args(["-F", "/dev/null", "-p", &port, "-i"])
                .arg(&key)
                .args([
                    "-o",
                    "StrictHostKeyChecking=no",
                    "-o",
                    "UserKnownHostsFile=/dev/null",
                    "-o",
                    "BatchMode=yes",
                    "-o",
                    "LogLevel=ERROR",
                    "-o",
                    "Compression=no",
                    "-o",
                    "KexAlgorithms=curve25519-sha256",
                    "-o",
                ])
                .arg(format!("Ciphers={cipher}"));
            if !mac.is_empty() {
                cmd.args(["-o", &format!("MACs={mac}")]);
            }
            cmd.arg(target).arg(remote);
            cmd
        }
        Client::MiniSsh => {
            let mut cmd = Command::new(minissh);
            cmd.args(["-q", "-p", &port, "-i"])
                .arg(&key)
                .arg("-H")
                .arg(sshd.host_key_pub())
                .args(["-c", cipher]);
            if !mac.is_empty() {
                cmd.args(["-m", mac]);
            }
            cmd.arg(target).arg("exec").arg(remote);
            cmd
        }
    }
}

fn run_once(mut cmd: Command, direction: Direction, bytes: u64) -> Run {
    let before = children_cpu();
    let start = Instant::now();
    match direction {
        Direction::Down => {
            cmd.stdin(Stdio::null()).stdout(Stdio::null());
        }
        Direction::Up => {
            cmd.stdin(Stdio::piped()).stdout(Stdio::null());
        }
    }
    let mut child = cmd.stderr(Stdio::inherit()).spawn().expect("start client");
    if direction == Direction::Up {
        let mut stdin = child.stdin.take().unwrap();
        let chunk = vec![0u8; 256 * 1024];
        let mut left = bytes;
        while left > 0 {
            let n = chunk.len().min(left as usize);
            stdin.write_all(&chunk[..n]).expect("feed the client");
            left -= n as u64;
        }
    }
    let status = child.wait().expect("wait for client");
    let wall = start.elapsed().as_secs_f64();
    assert!(status.success(), "{cmd:?} failed: {status}");
    Run {
        wall,
        cpu: children_cpu() - before,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let mid = v.len() / 2;
    if v.len().is_multiple_of(2) {
        (v[mid - 1] + v[mid]) / 2.0
    } else {
        v[mid]
    }
}

fn main() {
    let mut gib = 1.0f64;
    let mut rounds = 3usize;
    let mut filter = String::new();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let value = args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--gib" => gib = value.parse().expect("--gib N"),
            "--rounds" => rounds = value.parse().expect("--rounds N"),
            "--suite" => filter = value,
            other => panic!("unknown option {other}"),
        }
        i += 2;
    }
    let bytes = (gib * (1u64 << 30) as f64) as u64;
    let minissh: PathBuf = std::env::current_exe().unwrap().with_file_name("minissh");
    assert!(
        minissh.exists(),
        "build minissh first: cargo build --release -p minissh"
    );
    let sshd = Sshd::start(&[]).unwrap_or_else(|e| panic!("sshd: {e}"));
    let version = Command::new("/usr/bin/ssh").arg("-V").output().unwrap();
    println!(
        "{} vs minissh; {} GiB per transfer, {} rounds, medians; CPU = client user+sys s/GiB",
        String::from_utf8_lossy(&version.stderr).trim(),
        gib,
        rounds
    );
    println!(
        "{:<46} {:>4} | {:>8} {:>8} | {:>8} {:>8} | {:>6}",
        "suite", "dir", "ssh s", "ssh CPU", "mini s", "mini CPU", "ratio"
    );
    for &(cipher, mac) in SUITES {
        let name = if mac.is_empty() {
            cipher.to_owned()
        } else {
            format!("{cipher} {mac}")
        };
        if !name.contains(&filter) {
            continue;
        }
        for direction in [Direction::Down, Direction::Up] {
            let remote = match direction {
                Direction::Down => format!("head -c {bytes} /dev/zero"),
                Direction::Up => "cat > /dev/null".to_owned(),
            };
            let mut results: [Vec<Run>; 2] = [Vec::new(), Vec::new()];
            for round in 0..rounds {
                // Alternate which client goes first, so drift hits both.
                let order = if round.is_multiple_of(2) {
                    [Client::OpenSsh, Client::MiniSsh]
                } else {
                    [Client::MiniSsh, Client::OpenSsh]
                };
                for client in order {
                    let cmd = client_command(client, &minissh, &sshd, cipher, mac, &remote);
                    results[client as usize].push(run_once(cmd, direction, bytes));
                }
            }
            let per_gib = |runs: &[Run]| median(runs.iter().map(|r| r.cpu / gib).collect());
            let wall = |runs: &[Run]| median(runs.iter().map(|r| r.wall).collect());
            let (ssh, mini) = (&results[0], &results[1]);
            println!(
                "{:<46} {:>4} | {:>8.2} {:>8.2} | {:>8.2} {:>8.2} | {:>6.2}",
                name,
                if direction == Direction::Down {
                    "down"
                } else {
                    "up"
                },
                wall(ssh),
                per_gib(ssh),
                wall(mini),
                per_gib(mini),
                per_gib(mini) / per_gib(ssh)
            );
        }
    }
}
