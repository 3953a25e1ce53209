//! Many idle authenticated connections from one process: an async SSH
//! client on the same sans-IO transport as minissh's sync client, driven
//! by the crate's tokio Packetizer. It measures a server under load: the
//! rate at which it accepts, exchanges keys with and authenticates new
//! connections, and (given its pid) the memory and descriptors it holds
//! per idle connection.
//!
//! ```sh
//! minissh serve -l 127.0.0.1:2222 -a keys -n 20000 &
//! cargo run --release -p minissh --example idle_clients -- \
//!     --port 2222 --key ~/.ssh/id_ed25519 --count 10000 --server-pid $!
//! ```
//!
//! Both processes need a descriptor each per connection (`ulimit -n`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use minissh::client::auth;
use minissh::identity::Identity;
use minissh::transport::{HostKeys, InboundChange, Transmit, Transport};
use minissh::{Error, Preferences, Result};
use ssh_packetizer::tokio::Packetizer;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

const CLIENT_ID: &str = "SSH-2.0-minissh_idle_clients";

struct Options {
    port: u16,
    key: PathBuf,
    count: usize,
    in_flight: usize,
    server_pid: Option<u32>,
    hold: Duration,
}

fn options() -> std::result::Result<Options, String> {
    let mut o = Options {
        port: 2222,
        key: PathBuf::new(),
        count: 1000,
        in_flight: 8,
        server_pid: None,
        hold: Duration::from_secs(2),
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let value = args
            .get(i + 1)
            .ok_or(format!("{} needs a value", args[i]))?;
        let number = || {
            value
                .parse::<u64>()
                .map_err(|_| format!("bad number {value}"))
        };
        match args[i].as_str() {
            "--port" => o.port = number()? as u16,
            "--key" => o.key = value.into(),
            "--count" => o.count = number()? as usize,
            "--in-flight" => o.in_flight = number()?.max(1) as usize,
            "--server-pid" => o.server_pid = Some(number()? as u32),
            "--hold" => o.hold = Duration::from_secs(number()?),
            other => return Err(format!("unknown option {other}")),
        }
        i += 2;
    }
    Ok(o)
}

/// Sends what the transport has to send and makes its inbound changes.
async fn apply(t: &mut Transport, p: &mut Packetizer<TcpStream>) -> Result<()> {
    while let Some(transmit) = t.poll_transmit() {
        match transmit {
            Transmit::Message(m) => p.send_message(&m).await.map(|_| ())?,
            Transmit::NewKeys(keys) => p.send_newkeys(keys).await.map(|_| ())?,
        }
    }
    while let Some(change) = t.poll_inbound() {
        match change {
            InboundChange::StrictKex(on) => p.connection_mut().set_strict_kex(on),
            InboundChange::Keys(keys) => p.set_inbound_cipher(keys)?,
        }
    }
    Ok(())
}

/// The next message that is not the transport's.
async fn next_message(t: &mut Transport, p: &mut Packetizer<TcpStream>) -> Result<Vec<u8>> {
    loop {
        let packet = p.read_message().await?;
        let (payload, seqno) = (packet.payload().to_vec(), packet.seqno());
        let handled = t.handle(&payload, seqno)?;
        apply(t, p).await?;
        if handled == minissh::transport::Handled::Connection {
            return Ok(payload);
        }
    }
}

/// One connection, key exchange and authentication done.
async fn connect(port: u16, identity: &Identity) -> Result<Packetizer<TcpStream>> {
    let stream = TcpStream::connect(("127.0.0.1", port)).await?;
    let mut p = Packetizer::with_config(stream, ssh_packetizer::Config::client());
    p.start_handshake(Duration::from_secs(60));
    p.send_identification(CLIENT_ID).await?;
    let server_id = p.read_identification().await?;
    // The host key is not checked: this measures the server, on 127.0.0.1.
    let mut t = Transport::new(
        HostKeys::Verify(Box::new(|_| Ok(()))),
        Preferences::default(),
        CLIENT_ID.as_bytes().to_vec(),
        server_id.line,
    );
    t.start_kex()?;
    apply(&mut t, &mut p).await?;
    while !t.is_initial_kex_done() {
        let packet = p.read_message().await?;
        let (payload, seqno) = (packet.payload().to_vec(), packet.seqno());
        if t.handle(&payload, seqno)? == minissh::transport::Handled::Connection {
            return Err(Error::Protocol(format!(
                "message {} before the key exchange finished",
                payload[0]
            )));
        }
        apply(&mut t, &mut p).await?;
    }
    p.send_message(&auth::service_request()).await?;
    auth::check_service_accept(&next_message(&mut t, &mut p).await?)?;
    let session_id = t.session_id().unwrap_or_default().to_vec();
    p.send_message(&auth::publickey_request("tester", identity, &session_id))
        .await?;
    auth::check_auth_answer(&next_message(&mut t, &mut p).await?)?;
    p.complete_handshake();
    Ok(p)
}

/// A process's resident memory (kB) and open descriptors, from /proc.
fn footprint(pid: u32) -> Option<(u64, usize)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count();
    Some((rss, fds))
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let o = match options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("idle_clients: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let identity = match Identity::load(&o.key) {
        Ok(i) => Arc::new(i),
        Err(e) => {
            eprintln!("idle_clients: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let before = o.server_pid.and_then(footprint);
    let gate = Arc::new(Semaphore::new(o.in_flight));
    let started = Instant::now();
    let tasks: Vec<_> = (0..o.count)
        .map(|_| {
            let (gate, identity, port) = (gate.clone(), identity.clone(), o.port);
            tokio::spawn(async move {
                let _permit = gate.acquire_owned().await.ok()?;
                connect(port, &identity).await.ok()
            })
        })
        .collect();
    let mut open = Vec::with_capacity(o.count);
    for task in tasks {
        if let Ok(Some(p)) = task.await {
            open.push(p);
        }
    }
    let took = started.elapsed();
    // Let the server settle (its buffers given back at rest) before looking.
    tokio::time::sleep(o.hold).await;
    let after = o.server_pid.and_then(footprint);
    println!(
        "{} of {} connections authenticated in {:.2} s: {:.0} per second ({} in flight)",
        open.len(),
        o.count,
        took.as_secs_f64(),
        open.len() as f64 / took.as_secs_f64(),
        o.in_flight
    );
    if let (Some((rss0, fd0)), Some((rss1, fd1))) = (before, after) {
        let n = open.len().max(1) as f64;
        println!(
            "server: {:.1} KiB resident per idle connection ({} KiB -> {} KiB), {:.2} descriptors per connection ({fd0} -> {fd1})",
            (rss1.saturating_sub(rss0)) as f64 / n,
            rss0,
            rss1,
            (fd1.saturating_sub(fd0)) as f64 / n
        );
    }
    if open.len() == o.count {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}
