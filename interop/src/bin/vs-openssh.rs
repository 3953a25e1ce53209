//! Side by side with OpenSSH's `ssh`: the same private sshd, the same
//! transfers, the client's own CPU time per GiB.
//!
//! For each suite it downloads (`head -c N /dev/zero`) and uploads
//! (`cat > /dev/null`) N bytes with `ssh` and with `minissh`, alternating
//! the two clients for several rounds, and prints the median wall time and
//! the median CPU seconds (user + sys of the client process alone, from
//! /proc/self/stat's reaped-children counters) per GiB, and their ratio:
//! the median of the rounds' own ratios (each round runs every client back
//! to back), with the least and greatest, since one round's scheduling on a
//! small VM can move a client's CPU by a fifth either way.
//!
//! With `--server`, the other way round: OpenSSH's `ssh` against OpenSSH's
//! sshd and against `minissh serve`, alternated, and the *server's* CPU
//! seconds per GiB (user + sys of the server process and of everything it
//! reaped: sshd's per-connection processes, and for both the remote
//! command itself, which is the same `head` or `cat` on either side).
//!
//! `--provider NAME[,NAME...]` (or `all`) runs minissh on each of those
//! crypto providers (`-P`), every one alternated with `ssh` in every round,
//! and prints a ratio for each and the best of them.
//!
//! `bench/vs-openssh.sh [--server] [--gib N] [--rounds N] [--suite FILTER] [--provider LIST]`
//! (it builds the `minissh` binary this runs, and this tool).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use interop::sshd::{current_user, Sshd};

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
    /// minissh on this crypto provider.
    MiniSsh(&'static str),
    /// russh's client (bench/russh), with `--russh`.
    Russh,
}

/// Where bench/russh's binaries are (built by `bench/vs-openssh.sh --russh`).
fn russh_dir() -> PathBuf {
    std::env::var_os("RUSSH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("bench/russh/target/release"))
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

/// The /proc/PID/stat fields after the command name (field 3 on).
fn stat_fields(pid: &str) -> Vec<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/PID/stat");
    // The command name sits in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    rest.split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect()
}

/// User + system seconds of this process's reaped children so far.
fn children_cpu() -> f64 {
    // cutime and cstime are fields 16 and 17 of the whole line.
    let f = stat_fields("self");
    (f[13] + f[14]) as f64 / clock_ticks()
}

/// User + system seconds of process `pid` and of its reaped children.
fn process_cpu(pid: u32) -> f64 {
    // utime, stime, cutime, cstime: fields 14 to 17.
    let f = stat_fields(&pid.to_string());
    (f[11] + f[12] + f[13] + f[14]) as f64 / clock_ticks()
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
        Client::OpenSsh => ssh_to(sshd.port(), sshd, cipher, mac, remote),
        Client::MiniSsh(provider) => {
            let mut cmd = Command::new(minissh);
            cmd.args(["-q", "-P", provider, "-p", &port, "-i"])
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
        Client::Russh => {
            let mut cmd = Command::new(russh_dir().join("russh-client"));
            cmd.args(["-p", &port, "-i"]).arg(&key).args(["-c", cipher]);
            if !mac.is_empty() {
                cmd.args(["-m", mac]);
            }
            cmd.arg(target).arg(remote);
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

/// The ratio `ours / theirs` round by round (each round ran every client
/// or server back to back, so drift in the machine's speed cancels): its
/// median, least and greatest.
fn paired(ours: &[f64], theirs: &[f64]) -> (f64, f64, f64) {
    let ratios: Vec<f64> = ours.iter().zip(theirs).map(|(m, s)| m / s).collect();
    let (lo, hi) = ratios
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), &r| (lo.min(r), hi.max(r)));
    (median(ratios), lo, hi)
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

/// A server beside sshd on its keys, for `--server`: `minissh serve` on
/// a provider, or russh's.
struct MiniServer {
    child: std::process::Child,
    port: u16,
}

impl MiniServer {
    fn start(minissh: &Path, sshd: &Sshd, provider: &str) -> MiniServer {
        let log = sshd.dir().join(format!("minissh-serve-{provider}.log"));
        let mut cmd = Command::new(minissh);
        cmd.args(["serve", "-P", provider]);
        MiniServer::start_with(cmd, sshd, &log)
    }

    fn start_russh(sshd: &Sshd) -> MiniServer {
        let log = sshd.dir().join("russh-server.log");
        MiniServer::start_with(Command::new(russh_dir().join("russh-server")), sshd, &log)
    }

    /// Starts `cmd` with the listen, key, authorized keys and log options
    /// both servers take, and waits for the port in its log.
    fn start_with(mut cmd: Command, sshd: &Sshd, log: &Path) -> MiniServer {
        let child = cmd
            .args(["-l", "127.0.0.1:0", "-k"])
            .arg(sshd.dir().join("host_ed25519"))
            .arg("-a")
            .arg(sshd.dir().join("authorized_keys"))
            .arg("-E")
            .arg(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("start the server");
        // Owned at once, so a failure below still kills it.
        let mut server = MiniServer { child, port: 0 };
        let deadline = Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            if let Some(rest) = text.split("listening on 127.0.0.1:").nth(1) {
                server.port = rest.split(',').next().unwrap().parse().unwrap();
                return server;
            }
            assert!(Instant::now() < deadline, "{cmd:?} did not start");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

impl Drop for MiniServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// OpenSSH's ssh to `port`, with sshd's client key.
fn ssh_to(port: u16, sshd: &Sshd, cipher: &str, mac: &str, remote: &str) -> Command {
    let mut cmd = Command::new("/usr/bin/ssh");
    cmd.args(["-F", "/dev/null", "-p", &port.to_string(), "-i"])
        .arg(sshd.client_key())
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
    cmd.arg(format!("{}@127.0.0.1", current_user())).arg(remote);
    cmd
}

/// One transfer through `ssh`; the server's CPU seconds it cost. The
/// server reaps a connection's processes just after the client exits, so
/// this waits for its counters to settle.
fn server_run(cmd: Command, server_pid: u32, direction: Direction, bytes: u64) -> f64 {
    let before = process_cpu(server_pid);
    run_once(cmd, direction, bytes);
    let mut last = process_cpu(server_pid);
    for _ in 0..20 {
        std::thread::sleep(std::time::Duration::from_millis(100));
        let now = process_cpu(server_pid);
        if now == last {
            break;
        }
        last = now;
    }
    last - before
}

fn compare_servers(
    minissh: &Path,
    gib: f64,
    rounds: usize,
    filter: &str,
    providers: &[&'static str],
    russh: bool,
) {
    let bytes = (gib * (1u64 << 30) as f64) as u64;
    let sshd = Sshd::start(&[]).unwrap_or_else(|e| panic!("sshd: {e}"));
    let mut minis: Vec<MiniServer> = providers
        .iter()
        .map(|p| MiniServer::start(minissh, &sshd, p))
        .collect();
    let mut labels: Vec<&str> = providers.to_vec();
    if russh {
        minis.push(MiniServer::start_russh(&sshd));
        labels.push("russh");
    }
    let version = Command::new("/usr/bin/ssh").arg("-V").output().unwrap();
    println!(
        "{} client; sshd vs minissh serve ({}){}; {} GiB per transfer, {} rounds, medians; \
         CPU = server user+sys s/GiB (its connection processes and the command included); \
         ratio = server / sshd, paired round by round (min-max)",
        String::from_utf8_lossy(&version.stderr).trim(),
        providers.join(", "),
        if russh { " and russh's server" } else { "" },
        gib,
        rounds
    );
    let mut header = format!("{:<46} {:>4} | {:>8}", "suite", "dir", "sshd");
    for p in &labels {
        header += &format!(" | {p:>10} {:>17}", "ratio");
    }
    println!("{header}");
    for &(cipher, mac) in SUITES {
        let name = if mac.is_empty() {
            cipher.to_owned()
        } else {
            format!("{cipher} {mac}")
        };
        if !name.contains(filter) {
            continue;
        }
        for direction in [Direction::Down, Direction::Up] {
            let remote = match direction {
                Direction::Down => format!("head -c {bytes} /dev/zero"),
                Direction::Up => "cat > /dev/null".to_owned(),
            };
            // 0: sshd; 1..: minissh serve on each provider, then russh's.
            let servers = 1 + minis.len();
            let mut results: Vec<Vec<f64>> = vec![Vec::new(); servers];
            for round in 0..rounds {
                // Rotate who goes first, so drift hits every server alike.
                for k in 0..servers {
                    let which = (round + k) % servers;
                    let (port, pid) = if which == 0 {
                        (sshd.port(), sshd.pid())
                    } else {
                        (minis[which - 1].port, minis[which - 1].child.id())
                    };
                    let cmd = ssh_to(port, &sshd, cipher, mac, &remote);
                    results[which].push(server_run(cmd, pid, direction, bytes) / gib);
                }
            }
            let dir = if direction == Direction::Down {
                "down"
            } else {
                "up"
            };
            let mut line = format!("{name:<46} {dir:>4} | {:>8.2}", median(results[0].clone()));
            for ours in &results[1..] {
                let (ratio, lo, hi) = paired(ours, &results[0]);
                line += &format!(
                    " | {:>10.2} {ratio:>5.2} ({lo:.2}-{hi:.2})",
                    median(ours.clone()),
                );
            }
            println!("{line}");
        }
    }
}

fn main() {
    let mut gib = 1.0f64;
    let mut rounds = 3usize;
    let mut filter = String::new();
    let mut servers = false;
    let mut russh = false;
    let mut providers: Vec<&'static str> = vec!["rustcrypto"];
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let value = args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--gib" => gib = value.parse().expect("--gib N"),
            "--rounds" => {
                rounds = value.parse().expect("--rounds N");
                assert!(rounds > 0, "--rounds: at least 1");
            }
            "--suite" => filter = value,
            "--provider" => {
                providers = if value == "all" {
                    vec!["rustcrypto", "aws-lc-rs", "openssl"]
                } else {
                    value
                        .split(',')
                        .map(|p| match p {
                            "rustcrypto" => "rustcrypto",
                            "aws-lc-rs" => "aws-lc-rs",
                            "openssl" => "openssl",
                            other => panic!("unknown provider {other}"),
                        })
                        .collect()
                }
            }
            "--server" => {
                servers = true;
                i += 1;
                continue;
            }
            "--russh" => {
                russh = true;
                i += 1;
                continue;
            }
            other => panic!("unknown option {other}"),
        }
        i += 2;
    }
    let minissh: PathBuf = std::env::current_exe().unwrap().with_file_name("minissh");
    assert!(
        minissh.exists(),
        "build minissh first: cargo build --release -p minissh"
    );
    if servers {
        return compare_servers(&minissh, gib, rounds, &filter, &providers, russh);
    }
    let bytes = (gib * (1u64 << 30) as f64) as u64;
    let sshd = Sshd::start(&[]).unwrap_or_else(|e| panic!("sshd: {e}"));
    let version = Command::new("/usr/bin/ssh").arg("-V").output().unwrap();
    println!(
        "{} vs minissh ({}); {} GiB per transfer, {} rounds, medians; \
         CPU = client user+sys s/GiB; ratio = minissh / ssh CPU, paired round by round \
         (min-max)",
        String::from_utf8_lossy(&version.stderr).trim(),
        providers.join(", "),
        gib,
        rounds
    );
    let mut header = format!(
        "{:<46} {:>4} | {:>6} {:>7}",
        "suite", "dir", "ssh s", "ssh CPU"
    );
    for p in &providers {
        header += &format!(" | {p:>10} {:>17}", "ratio");
    }
    if providers.len() > 1 {
        header += " |  best";
    }
    if russh {
        header += &format!(" | {:>10} {:>17}", "russh", "ratio");
    }
    header += " | MB/s: ssh, then each column's";
    println!("{header}");
    let clients: Vec<Client> = std::iter::once(Client::OpenSsh)
        .chain(providers.iter().map(|p| Client::MiniSsh(p)))
        .chain(russh.then_some(Client::Russh))
        .collect();
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
            let mut results: Vec<Vec<Run>> = clients.iter().map(|_| Vec::new()).collect();
            for round in 0..rounds {
                // Rotate which client goes first, so drift hits all alike.
                for k in 0..clients.len() {
                    let which = (round + k) % clients.len();
                    let cmd = client_command(clients[which], &minissh, &sshd, cipher, mac, &remote);
                    results[which].push(run_once(cmd, direction, bytes));
                }
            }
            let cpu = |runs: &[Run]| -> Vec<f64> { runs.iter().map(|r| r.cpu / gib).collect() };
            let wall = |runs: &[Run]| median(runs.iter().map(|r| r.wall).collect());
            let ssh_cpu = cpu(&results[0]);
            let ssh = median(ssh_cpu.clone());
            let dir = if direction == Direction::Down {
                "down"
            } else {
                "up"
            };
            let mut line = format!(
                "{name:<46} {dir:>4} | {:>6.2} {ssh:>7.2}",
                wall(&results[0])
            );
            let mut best = f64::MAX;
            for runs in &results[1..=providers.len()] {
                let ours = cpu(runs);
                let (ratio, lo, hi) = paired(&ours, &ssh_cpu);
                best = best.min(ratio);
                line += &format!(" | {:>10.2} {ratio:>5.2} ({lo:.2}-{hi:.2})", median(ours));
            }
            if providers.len() > 1 {
                line += &format!(" | {best:>5.2}");
            }
            if russh {
                let theirs = cpu(&results[providers.len() + 1]);
                let (ratio, lo, hi) = paired(&theirs, &ssh_cpu);
                line += &format!(" | {:>10.2} {ratio:>5.2} ({lo:.2}-{hi:.2})", median(theirs));
            }
            let mbps = |runs: &[Run]| bytes as f64 / 1e6 / wall(runs);
            let speeds: Vec<String> = results.iter().map(|r| format!("{:.0}", mbps(r))).collect();
            line += &format!(" | {}", speeds.join(" "));
            println!("{line}");
        }
    }
}
