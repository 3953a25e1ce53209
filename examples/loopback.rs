//! The main job: a client and a server Packetizer on 127.0.0.1 TCP, in two
//! threads, for every suite. The client streams payloads to the server; the
//! table shows MB/s with large payloads, packets/s with small ones, and the
//! CPU each side spent per GiB moved.
//!
//! `cargo run --release --example loopback [-- OPTIONS]`
//!
//! Options: `--mib N` (volume of large payloads per suite, default 512),
//! `--packets N` (small payloads per suite, default 500000), `--size BYTES`
//! (large payload size, default 32768), `--small BYTES` (default 64),
//! `--suite FILTER` (suites whose name contains it), `--quiet` (no progress),
//! `--async` (the tokio Packetizer, one current-thread runtime per side, in
//! place of the sync one; needs `--features tokio`), `--compare` (both, side
//! by side, with the async/sync ratios), `--rounds N` (each figure the
//! median of N runs, sync and async alternating; default 3 with
//! `--compare`, else 1), `--provider NAME` (the crypto provider both ends
//! run on: rustcrypto, aws-lc-rs or openssl, the last two with their
//! features; `all` runs every provider of the build side by side, each
//! row's last column its MB/s against the first provider's).
//!
//! The table fits 80 columns. A progress bar (indicatif) shows on stderr
//! only when stderr is a terminal.

use ssh_packetizer::KeyMaterial;
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use ssh_packetizer::algorithm::Mode;
use ssh_packetizer::{
    CipherAlgorithm, Config, CryptoProvider, Keys, MacAlgorithm, Packetizer, Sealer,
};

struct Options {
    mib: usize,
    packets: usize,
    size: usize,
    small: usize,
    filter: String,
    quiet: bool,
    drivers: Drivers,
    rounds: usize,
    providers: Vec<&'static CryptoProvider>,
}

/// Which Packetizer the runs use.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Drivers {
    Sync,
    Async,
    Both,
}

fn options() -> Result<Options, String> {
    let mut o = Options {
        mib: 512,
        packets: 500_000,
        size: 32 * 1024,
        small: 64,
        filter: String::new(),
        quiet: false,
        drivers: Drivers::Sync,
        rounds: 0,
        providers: vec![CryptoProvider::get_default()],
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut number = |name: &str| -> Result<usize, String> {
            let v = args.next().ok_or(format!("{name} needs a number"))?;
            v.parse().map_err(|_| format!("{name}: not a number: {v}"))
        };
        match arg.as_str() {
            "--mib" => o.mib = number("--mib")?,
            "--packets" => o.packets = number("--packets")?,
            "--size" => o.size = number("--size")?,
            "--small" => o.small = number("--small")?,
            "--suite" => o.filter = args.next().ok_or("--suite needs a name or part of one")?,
            "--quiet" => o.quiet = true,
            "--async" => o.drivers = Drivers::Async,
            "--compare" => o.drivers = Drivers::Both,
            "--rounds" => o.rounds = number("--rounds")?,
            "--provider" => {
                let v = args.next().ok_or("--provider needs a name or all")?;
                o.providers = if v == "all" {
                    CryptoProvider::available().to_vec()
                } else {
                    vec![CryptoProvider::by_name(&v).ok_or(format!(
                        "no provider {v} in this build (aws-lc-rs and openssl need their features)"
                    ))?]
                };
            }
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown option {other}\n{USAGE}")),
        }
    }
    if o.size == 0 || o.small == 0 || o.size > 200_000 || o.small > 200_000 {
        return Err("payload sizes must be 1 to 200000 bytes".into());
    }
    if o.rounds == 0 {
        // Side by side, the two alternate and each figure is the median of
        // three, so a burst of load elsewhere does not decide the ratio.
        o.rounds = if o.drivers == Drivers::Both { 3 } else { 1 };
    }
    if o.drivers == Drivers::Both && o.providers.len() > 1 {
        return Err("--compare takes one provider".into());
    }
    if o.drivers != Drivers::Sync && !cfg!(feature = "tokio") {
        return Err("--async and --compare need the tokio feature: cargo run --release --features tokio --example loopback".into());
    }
    Ok(o)
}

const USAGE: &str = "usage: loopback [--mib N] [--packets N] [--size BYTES] [--small BYTES] [--suite FILTER] [--quiet] [--async | --compare] [--rounds N] [--provider NAME|all]";

fn keys(c: CipherAlgorithm, m: MacAlgorithm, salt: u8) -> Keys {
    let spec = c.spec();
    let bytes = |len: usize, k: u8| {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(7) ^ k ^ salt)
            .collect::<Vec<_>>()
    };
    Keys::new(
        c,
        m,
        KeyMaterial {
            key: &bytes(spec.key_len(), 1),
            iv: &bytes(spec.iv_len(), 2),
            mac_key: &bytes(m.spec().key_len(), 3),
        },
    )
    .expect("lengths from the table")
}

/// On-CPU time of the calling thread (Linux: /proc/thread-self/schedstat,
/// in nanoseconds); `None` where that file does not exist.
fn thread_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = stat.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// Peak resident memory of this process (Linux: VmHWM), in KiB.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

struct Run {
    wall: Duration,
    client_cpu: Option<Duration>,
    server_cpu: Option<Duration>,
}

/// Streams `count` payloads of `size` bytes from a client to a server
/// Packetizer over a fresh TCP connection; the server checks each one.
fn run(
    provider: &'static CryptoProvider,
    (c, m): (CipherAlgorithm, MacAlgorithm),
    size: usize,
    count: usize,
    progress: &dyn Fn(usize),
) -> Result<Run, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let server = thread::spawn(move || -> Result<Option<Duration>, String> {
        let (stream, _) = listener.accept().map_err(|e| e.to_string())?;
        let config = Config::server().crypto_provider(provider);
        let mut p = Packetizer::tcp_with_config(stream, config).map_err(|e| e.to_string())?;
        // The client's NEWKEYS, then its keys.
        let newkeys = p.read_message().map_err(|e| e.to_string())?.msg_type();
        if newkeys != 21 {
            return Err(format!("expected NEWKEYS, got message {newkeys}"));
        }
        p.set_inbound_cipher(keys(c, m, 1))
            .map_err(|e| e.to_string())?;
        let start = thread_cpu();
        for i in 0..count {
            let msg = p
                .read_message()
                .map_err(|e| format!("server, packet {i}: {e}"))?;
            if msg.payload().len() != size {
                return Err(format!(
                    "packet {i} arrived with {} bytes",
                    msg.payload().len()
                ));
            }
        }
        // Tell the client everything arrived.
        p.send_newkeys(keys(c, m, 2)).map_err(|e| e.to_string())?;
        p.send_message(&[82]).map_err(|e| e.to_string())?;
        Ok(start.zip(thread_cpu()).map(|(a, b)| b - a))
    });
    let stream = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    let config = Config::client().crypto_provider(provider);
    let mut p = Packetizer::tcp_with_config(stream, config).map_err(|e| e.to_string())?;
    p.send_newkeys(keys(c, m, 1)).map_err(|e| e.to_string())?;
    let payload = vec![0x5e; size];
    let started = Instant::now();
    let cpu0 = thread_cpu();
    // Small payloads go out in batches, as a transport would coalesce them.
    let batch = if size < 1024 { 64 } else { 1 };
    let mut sent = 0;
    while sent < count {
        let n = batch.min(count - sent);
        for _ in 0..n {
            p.queue_message(&payload)
                .map_err(|e| format!("client: {e}"))?;
        }
        p.flush().map_err(|e| format!("client: {e}"))?;
        sent += n;
        if sent % (count / 50).max(1) < n {
            progress(sent);
        }
    }
    let client_cpu = cpu0.zip(thread_cpu()).map(|(a, b)| b - a);
    let newkeys = p
        .read_message()
        .map_err(|e| format!("client: {e}"))?
        .msg_type();
    if newkeys != 21 {
        return Err(format!("expected NEWKEYS, got message {newkeys}"));
    }
    p.set_inbound_cipher(keys(c, m, 2))
        .map_err(|e| e.to_string())?;
    let done = p
        .read_message()
        .map_err(|e| format!("client: {e}"))?
        .msg_type();
    let wall = started.elapsed();
    if done != 82 {
        return Err(format!("unexpected reply {done}"));
    }
    let server_cpu = server
        .join()
        .map_err(|_| "server thread panicked".to_string())??;
    Ok(Run {
        wall,
        client_cpu,
        server_cpu,
    })
}

/// As [`run`], with the tokio Packetizer: each side on its own thread with
/// a current-thread runtime, as the sync sides each have a thread.
#[cfg(feature = "tokio")]
fn run_async(
    provider: &'static CryptoProvider,
    (c, m): (CipherAlgorithm, MacAlgorithm),
    size: usize,
    count: usize,
    progress: &dyn Fn(usize),
) -> Result<Run, String> {
    use ssh_packetizer::tokio::Packetizer as AsyncPacketizer;
    let runtime = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
    };
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let server = thread::spawn(move || -> Result<Option<Duration>, String> {
        runtime()?.block_on(async move {
            let listener =
                tokio::net::TcpListener::from_std(listener).map_err(|e| e.to_string())?;
            let (stream, _) = listener.accept().await.map_err(|e| e.to_string())?;
            stream.set_nodelay(true).map_err(|e| e.to_string())?;
            let mut p =
                AsyncPacketizer::with_config(stream, Config::server().crypto_provider(provider));
            let newkeys = p
                .read_message()
                .await
                .map_err(|e| e.to_string())?
                .msg_type();
            if newkeys != 21 {
                return Err(format!("expected NEWKEYS, got message {newkeys}"));
            }
            p.set_inbound_cipher(keys(c, m, 1))
                .map_err(|e| e.to_string())?;
            let start = thread_cpu();
            for i in 0..count {
                let msg = p
                    .read_message()
                    .await
                    .map_err(|e| format!("server, packet {i}: {e}"))?;
                if msg.payload().len() != size {
                    return Err(format!(
                        "packet {i} arrived with {} bytes",
                        msg.payload().len()
                    ));
                }
            }
            p.send_newkeys(keys(c, m, 2))
                .await
                .map_err(|e| e.to_string())?;
            p.send_message(&[82]).await.map_err(|e| e.to_string())?;
            Ok(start.zip(thread_cpu()).map(|(a, b)| b - a))
        })
    });
    let (wall, client_cpu) = runtime()?.block_on(async {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| e.to_string())?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let mut p =
            AsyncPacketizer::with_config(stream, Config::client().crypto_provider(provider));
        p.send_newkeys(keys(c, m, 1))
            .await
            .map_err(|e| e.to_string())?;
        let payload = vec![0x5e; size];
        let started = Instant::now();
        let cpu0 = thread_cpu();
        let batch = if size < 1024 { 64 } else { 1 };
        let mut sent = 0;
        while sent < count {
            let n = batch.min(count - sent);
            for _ in 0..n {
                p.queue_message(&payload)
                    .map_err(|e| format!("client: {e}"))?;
            }
            p.flush().await.map_err(|e| format!("client: {e}"))?;
            sent += n;
            if sent % (count / 50).max(1) < n {
                progress(sent);
            }
        }
        let client_cpu = cpu0.zip(thread_cpu()).map(|(a, b)| b - a);
        let newkeys = p
            .read_message()
            .await
            .map_err(|e| format!("client: {e}"))?
            .msg_type();
        if newkeys != 21 {
            return Err(format!("expected NEWKEYS, got message {newkeys}"));
        }
        p.set_inbound_cipher(keys(c, m, 2))
            .map_err(|e| e.to_string())?;
        let done = p
            .read_message()
            .await
            .map_err(|e| format!("client: {e}"))?
            .msg_type();
        if done != 82 {
            return Err(format!("unexpected reply {done}"));
        }
        Ok::<_, String>((started.elapsed(), client_cpu))
    })?;
    let server_cpu = server
        .join()
        .map_err(|_| "server thread panicked".to_string())??;
    Ok(Run {
        wall,
        client_cpu,
        server_cpu,
    })
}

#[cfg(not(feature = "tokio"))]
fn run_async(
    _: &'static CryptoProvider,
    _: (CipherAlgorithm, MacAlgorithm),
    _: usize,
    _: usize,
    _: &dyn Fn(usize),
) -> Result<Run, String> {
    Err("built without the tokio feature".into())
}

/// One run of a suite with one kind of Packetizer: `run` or `run_async`.
type Runner = fn(
    &'static CryptoProvider,
    (CipherAlgorithm, MacAlgorithm),
    usize,
    usize,
    &dyn Fn(usize),
) -> Result<Run, String>;

/// One suite's figures with one kind of Packetizer.
struct Measured {
    mb_per_s: f64,
    packets_per_s: f64,
    client_per_gib: Option<f64>,
    server_per_gib: Option<f64>,
}

/// The bulk run and the small-packet run of one suite.
fn measure(
    runner: Runner,
    provider: &'static CryptoProvider,
    suite: (CipherAlgorithm, MacAlgorithm),
    o: &Options,
    show: &dyn Fn(&str, usize, usize),
) -> Result<Measured, String> {
    let big_count = (o.mib << 20).div_ceil(o.size);
    let big = runner(provider, suite, o.size, big_count, &|n| {
        show("bulk", n, big_count)
    })?;
    let small = runner(provider, suite, o.small, o.packets, &|n| {
        show("small", n, o.packets)
    })?;
    let bytes = (big_count * o.size) as f64;
    let per_gib =
        |cpu: Option<Duration>| cpu.map(|t| t.as_secs_f64() / (bytes / (1u64 << 30) as f64));
    Ok(Measured {
        mb_per_s: bytes / big.wall.as_secs_f64() / 1e6,
        packets_per_s: o.packets as f64 / small.wall.as_secs_f64(),
        client_per_gib: per_gib(big.client_cpu),
        server_per_gib: per_gib(big.server_cpu),
    })
}

/// `o.rounds` measurements with each driver `o.drivers` names, the two
/// alternating; each figure is the median of its rounds.
fn rounds(
    o: &Options,
    provider: &'static CryptoProvider,
    suite: (CipherAlgorithm, MacAlgorithm),
    show: &dyn Fn(&str, usize, usize),
) -> Result<(Option<Measured>, Option<Measured>), String> {
    let (mut sync, mut tokio) = (Vec::new(), Vec::new());
    for _ in 0..o.rounds {
        if o.drivers != Drivers::Async {
            sync.push(measure(run, provider, suite, o, show)?);
        }
        if o.drivers != Drivers::Sync {
            tokio.push(measure(run_async, provider, suite, o, show)?);
        }
    }
    Ok((median(sync), median(tokio)))
}

/// Each figure's median over the rounds (the upper one of an even count).
fn median(mut runs: Vec<Measured>) -> Option<Measured> {
    if runs.is_empty() {
        return None;
    }
    let mid = runs.len() / 2;
    let pick = |runs: &mut Vec<Measured>, key: fn(&Measured) -> f64| {
        runs.sort_by(|a, b| key(a).total_cmp(&key(b)));
        key(&runs[mid])
    };
    let mb_per_s = pick(&mut runs, |r| r.mb_per_s);
    let packets_per_s = pick(&mut runs, |r| r.packets_per_s);
    let client = pick(&mut runs, |r| r.client_per_gib.unwrap_or(f64::NAN));
    let server = pick(&mut runs, |r| r.server_per_gib.unwrap_or(f64::NAN));
    Some(Measured {
        mb_per_s,
        packets_per_s,
        client_per_gib: (!client.is_nan()).then_some(client),
        server_per_gib: (!server.is_nan()).then_some(server),
    })
}

/// A suite's name in the table: `@openssh.com` dropped, to fit 80 columns.
fn short_name(c: CipherAlgorithm, m: MacAlgorithm) -> String {
    let strip = |name: &str| name.trim_end_matches("@openssh.com").to_owned();
    if m == MacAlgorithm::None {
        strip(c.name())
    } else {
        format!("{}+{}", strip(c.name()), strip(m.name()))
    }
}

/// The progress bar: drawn only when stderr is a terminal (indicatif hides
/// it otherwise), at most a few times a second.
fn progress_bar(quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(100);
    let style = ProgressStyle::with_template("{prefix:40} [{bar:24}] {msg:5} {percent:>3}%")
        .expect("a valid template")
        .progress_chars("=> ");
    bar.set_style(style);
    bar
}

fn main() {
    let o = match options() {
        Ok(o) => o,
        Err(msg) => {
            eprintln!("{msg}");
            std::process::exit(2);
        }
    };
    let suites: Vec<_> = CipherAlgorithm::ALL
        .iter()
        .flat_map(|&c| MacAlgorithm::ALL.iter().map(move |&m| (c, m)))
        .filter(|&(c, m)| c.is_available() && m.is_available() && Mode::of(c, m).is_ok())
        .filter(|&(c, m)| Sealer::new().set_keys(keys(c, m, 0)).is_ok())
        .map(|(c, m)| (c, m, short_name(c, m)))
        .filter(|(_, _, name)| name.contains(&o.filter))
        .collect();
    if suites.is_empty() {
        eprintln!("no suite matches {:?}", o.filter);
        std::process::exit(2);
    }
    let drivers = match o.drivers {
        Drivers::Sync => "the sync Packetizer",
        Drivers::Async => "the tokio Packetizer",
        Drivers::Both => "sync and tokio drivers alternating",
    };
    let names: Vec<_> = o.providers.iter().map(|p| p.name()).collect();
    println!("127.0.0.1 TCP, client and server threads, {drivers}");
    println!("crypto provider: {}", names.join(", "));
    println!(
        "{} MiB in {}-byte payloads, then {} payloads of {} bytes, per suite\n",
        o.mib, o.size, o.packets, o.small
    );
    let (big, small) = (format!("@{}", o.size), format!("@{}", o.small));
    let several = o.providers.len() > 1;
    if o.drivers == Drivers::Both {
        // 28 + 48 columns.
        println!(
            "{:28} {:>7} {:>7} {:>5} {:>9} {:>9} {:>5}",
            "suite", "sync", "async", "ratio", "sync", "async", "ratio"
        );
        println!(
            "{:28} {:>7} {:>7} {:>5} {:>9} {:>9} {:>5}",
            "", "MB/s", &big, "", "pkts/s", &small, ""
        );
    } else {
        // 28 + 50 columns.
        println!(
            "{:28} {:10} {:>7} {:>9} {:>6} {:>6} {:>6}",
            "suite",
            "provider",
            "MB/s",
            "pkts/s",
            "client",
            "server",
            if several { "vs 1st" } else { "" }
        );
        println!(
            "{:28} {:10} {:>7} {:>9} {:>6} {:>6} {:>6}",
            "",
            "",
            &big,
            &small,
            "s/GiB",
            "s/GiB",
            if several { "MB/s" } else { "" }
        );
    }
    let mut worst: Option<(f64, f64)> = None;
    let bar = progress_bar(o.quiet);
    for (c, m, name) in &suites {
        let mut first_mb: Option<f64> = None;
        for &provider in &o.providers {
            bar.set_prefix(format!("{name} ({})", provider.name()));
            let show = |phase: &str, done: usize, of: usize| {
                bar.set_message(phase.to_owned());
                bar.set_position((done * 100 / of.max(1)) as u64);
            };
            let result = rounds(&o, provider, (*c, *m), &show);
            let cpu = |t: Option<f64>| t.map_or("n/a".to_string(), |t| format!("{t:.2}"));
            let line = match result {
                Ok((Some(s), Some(a))) => {
                    let (bulk, small) =
                        (a.mb_per_s / s.mb_per_s, a.packets_per_s / s.packets_per_s);
                    worst = Some(worst.map_or((bulk, small), |(b, p)| (b.min(bulk), p.min(small))));
                    format!(
                        "{name:28} {:>7.0} {:>7.0} {:>5.2} {:>9.0} {:>9.0} {:>5.2}",
                        s.mb_per_s, a.mb_per_s, bulk, s.packets_per_s, a.packets_per_s, small
                    )
                }
                Ok((one, other)) => {
                    let Some(x) = one.or(other) else { continue };
                    let against = match first_mb {
                        Some(first) if several => format!("{:.2}", x.mb_per_s / first),
                        _ => String::new(),
                    };
                    first_mb.get_or_insert(x.mb_per_s);
                    format!(
                        "{name:28} {:10} {:>7.0} {:>9.0} {:>6} {:>6} {:>6}",
                        provider.name(),
                        x.mb_per_s,
                        x.packets_per_s,
                        cpu(x.client_per_gib),
                        cpu(x.server_per_gib),
                        against
                    )
                }
                Err(e) => {
                    bar.finish_and_clear();
                    eprintln!("{name} ({}): {e}", provider.name());
                    std::process::exit(1);
                }
            };
            bar.suspend(|| println!("{}", line.trim_end()));
        }
    }
    bar.finish_and_clear();
    if let Some((bulk, small)) = worst {
        println!(
            "\nlowest async/sync ratio: {bulk:.2} at {} bytes, {small:.2} at {} bytes",
            o.size, o.small
        );
    }
    if let Some(kib) = peak_rss_kib() {
        println!("\npeak resident memory: {:.1} MiB", kib as f64 / 1024.0);
    }
}
