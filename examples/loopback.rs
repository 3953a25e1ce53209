//! Pushes data through a Sealer/Opener pair for every supported suite and
//! prints a table: MB/s with 32 KiB payloads, packets/s with 64-byte ones.
//!
//! `cargo run --release --example loopback [-- --mib N] [--suite FILTER]`
//!
//! Everything stays in memory: this measures the packet layer alone, with the
//! Opener fed the way a socket reader feeds it.

use std::time::Instant;

use ssh_packetizer::{CipherAlgorithm, Keys, MacAlgorithm, Mode, Opened, Opener, Sealer};

struct Options {
    mib: usize,
    filter: String,
}

fn options() -> Result<Options, String> {
    let mut opts = Options {
        mib: 64,
        filter: String::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--mib" => {
                let value = args.next().ok_or("--mib needs a number")?;
                opts.mib = value
                    .parse()
                    .map_err(|_| format!("--mib: not a number: {value}"))?;
            }
            "--suite" => opts.filter = args.next().ok_or("--suite needs a name or part of one")?,
            "-h" | "--help" => {
                return Err("usage: loopback [--mib N (default 64)] [--suite FILTER]".into());
            }
            other => return Err(format!("unknown option {other}; try --help")),
        }
    }
    Ok(opts)
}

fn keys(c: CipherAlgorithm, m: MacAlgorithm) -> Keys {
    let spec = c.spec();
    let bytes = |len: usize, salt: u8| {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(7) ^ salt)
            .collect::<Vec<_>>()
    };
    Keys::new(
        c,
        m,
        &bytes(spec.key_len, 1),
        &bytes(spec.iv_len, 2),
        &bytes(m.spec().key_len, 3),
    )
    .expect("lengths from the table")
}

/// Moves `total` payload bytes in `size`-byte packets through a fresh pair;
/// returns the seconds taken and the packets moved.
fn run(
    c: CipherAlgorithm,
    m: MacAlgorithm,
    size: usize,
    total: usize,
) -> Result<(f64, usize), String> {
    let (mut sealer, mut opener) = (Sealer::new(), Opener::new());
    sealer.set_keys(keys(c, m)).map_err(|e| e.to_string())?;
    opener.set_keys(keys(c, m)).map_err(|e| e.to_string())?;
    let payload = vec![0x5e; size];
    let packets = total.div_ceil(size);
    // Seal in batches of about 1 MiB, as a writer fills its socket buffer.
    let per_batch = (1 << 20) / size;
    let mut wire = Vec::with_capacity(per_batch * sealer.sealed_len(size));
    let start = Instant::now();
    let mut sent = 0;
    let mut received = 0;
    while sent < packets {
        wire.clear();
        let n = per_batch.min(packets - sent);
        for _ in 0..n {
            sealer
                .seal(&payload, &mut wire)
                .map_err(|e| e.to_string())?;
        }
        sent += n;
        let mut rest = &wire[..];
        while !rest.is_empty() {
            rest = &rest[opener.feed(rest)..];
            while let Opened::Packet(p) = opener.next_packet().map_err(|e| e.to_string())? {
                if p.payload().len() != size {
                    return Err(format!(
                        "packet {} came out with {} bytes",
                        p.seqno(),
                        p.payload().len()
                    ));
                }
                received += 1;
            }
        }
    }
    if received != packets {
        return Err(format!("sent {packets} packets, received {received}"));
    }
    Ok((start.elapsed().as_secs_f64(), packets))
}

fn main() {
    let opts = match options() {
        Ok(o) => o,
        Err(msg) => {
            eprintln!("{msg}");
            std::process::exit(2);
        }
    };
    let total = opts.mib << 20;
    println!(
        "{} MiB per suite, in memory, one thread; each figure covers sealing and opening\n",
        opts.mib
    );
    println!(
        "{:46} {:>12} {:>14}",
        "suite", "MB/s @32KiB", "packets/s @64B"
    );
    let mut ran = 0;
    for &c in CipherAlgorithm::ALL {
        for &m in MacAlgorithm::ALL {
            if Mode::of(c, m).is_err() || Sealer::new().set_keys(keys(c, m)).is_err() {
                continue;
            }
            let name = if m == MacAlgorithm::None {
                c.to_string()
            } else {
                format!("{c}+{m}")
            };
            if !name.contains(&opts.filter) {
                continue;
            }
            // Small packets: a tenth of the volume keeps the run short.
            let result =
                run(c, m, 32 * 1024, total).and_then(|big| Ok((big, run(c, m, 64, total / 10)?)));
            match result {
                Ok(((big_secs, _), (small_secs, small_packets))) => println!(
                    "{name:46} {:>12.0} {:>14.0}",
                    total as f64 / big_secs / 1e6,
                    small_packets as f64 / small_secs
                ),
                Err(e) => {
                    eprintln!("{name}: {e}");
                    std::process::exit(1);
                }
            }
            ran += 1;
        }
    }
    if ran == 0 {
        eprintln!("no suite matches {:?}", opts.filter);
        std::process::exit(2);
    }
}
