//! An async echo server and client over the tokio Packetizer, on
//! 127.0.0.1: identification both ways, a key switch to
//! chacha20-poly1305@openssh.com (fixed keys stand in for a key exchange),
//! then every message the client sends comes back.
//!
//! `cargo run --features tokio --example async_echo`

use ssh_packetizer::tokio::Packetizer;
use ssh_packetizer::{msg, CipherAlgorithm, Config, Error, KeyMaterial, Keys, MacAlgorithm};
use tokio::net::{TcpListener, TcpStream};

/// Stand-in keys for one direction; a real transport derives them in its
/// key exchange (see `KeyDerivation`).
fn keys(direction: u8) -> Keys {
    let key = [direction; 64];
    let material = KeyMaterial {
        key: &key,
        iv: &[],
        mac_key: &[],
    };
    Keys::new(
        CipherAlgorithm::ChaCha20Poly1305,
        MacAlgorithm::None,
        material,
    )
    .unwrap()
}

/// Both ends: identification lines, then NEWKEYS each way.
async fn handshake(p: &mut Packetizer<TcpStream>, me: &str, out: u8, inn: u8) -> Result<(), Error> {
    p.send_identification(me).await?;
    println!("{me} sees {}", p.read_identification().await?.as_str());
    p.send_newkeys(keys(out)).await?;
    assert_eq!(p.read_message().await?.msg_type(), msg::NEWKEYS);
    p.set_inbound_cipher(keys(inn))
}

async fn serve(stream: TcpStream) -> Result<(), Error> {
    let mut p = Packetizer::with_config(stream, Config::server());
    handshake(&mut p, "SSH-2.0-echo_server", 2, 1).await?;
    loop {
        let payload = match p.read_message().await {
            Ok(message) => message.payload().to_vec(),
            Err(Error::Disconnected { .. }) => return Ok(()),
            Err(e) => return Err(e),
        };
        p.send_message(&payload).await?;
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move { serve(listener.accept().await?.0).await });

    let mut client = Packetizer::new(TcpStream::connect(addr).await?);
    handshake(&mut client, "SSH-2.0-echo_client", 1, 2).await?;
    for text in ["hello", "over an encrypted", "SSH packet layer"] {
        let mut data = vec![msg::IGNORE];
        data.extend_from_slice(text.as_bytes());
        client.send_message(&data).await?;
        let echo = client.read_message().await?;
        println!(
            "echo #{}: {}",
            echo.seqno(),
            String::from_utf8_lossy(&echo.payload()[1..])
        );
    }
    client
        .disconnect(msg::reason::BY_APPLICATION, "done")
        .await?;
    server.await??;
    Ok(())
}
