//! russh's client as the side-by-side runs it: `russh-client -p PORT -i KEY
//! [-c CIPHER] [-m MAC] USER@HOST COMMAND`, stdin to the command, its
//! stdout and stderr to ours, its exit status as ours.

use std::sync::Arc;

use russh::client::{self, Handle};
use russh::keys::{load_secret_key, PrivateKeyWithHashAlg};
use russh::ChannelMsg;
use tokio::io::AsyncWriteExt;

struct Trusting;

impl client::Handler for Trusting {
    type Error = russh::Error;

    // The side-by-side runs on 127.0.0.1 against its own servers.
    async fn check_server_key(
        &mut self,
        _key: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(code) => std::process::ExitCode::from(code.min(255) as u8),
        Err(e) => {
            eprintln!("russh-client: {e}");
            std::process::ExitCode::from(255)
        }
    }
}

async fn run() -> Result<u32, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let port: u16 = russh_side::arg(&args, "-p")
        .ok_or("-p PORT")?
        .parse()
        .map_err(|_| "bad port")?;
    let key = russh_side::arg(&args, "-i").ok_or("-i KEY")?;
    let preferred = russh_side::preferred(
        russh_side::arg(&args, "-c").as_deref(),
        russh_side::arg(&args, "-m").as_deref(),
    )?;
    let rest: Vec<&String> = {
        let mut skip = false;
        args.iter()
            .filter(|a| {
                if skip {
                    skip = false;
                    return false;
                }
                if ["-p", "-i", "-c", "-m"].contains(&a.as_str()) {
                    skip = true;
                    return false;
                }
                true
            })
            .collect()
    };
    let [target, command] = rest[..] else {
        return Err("usage: russh-client -p PORT -i KEY [-c C] [-m M] USER@HOST COMMAND".into());
    };
    let (user, host) = target.split_once('@').ok_or("USER@HOST")?;
    let key = load_secret_key(&key, None).map_err(|e| e.to_string())?;
    let config = Arc::new(client::Config {
        preferred,
        ..Default::default()
    });
    let mut session: Handle<Trusting> = client::connect(config, (host, port), Trusting)
        .await
        .map_err(|e| e.to_string())?;
    let auth = session
        .authenticate_publickey(user, PrivateKeyWithHashAlg::new(Arc::new(key), None))
        .await
        .map_err(|e| e.to_string())?;
    if !auth.success() {
        return Err("the server refused the key".into());
    }
    let channel = session
        .channel_open_session()
        .await
        .map_err(|e| e.to_string())?;
    channel
        .exec(true, command.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let (mut reader, writer) = channel.split();
    let pump = tokio::spawn(async move {
        let _ = writer.data(tokio::io::stdin()).await;
        let _ = writer.eof().await;
        writer
    });
    let (mut stdout, mut stderr) = (tokio::io::stdout(), tokio::io::stderr());
    let mut code = 255;
    while let Some(msg) = reader.wait().await {
        match msg {
            ChannelMsg::Data { data } => {
                stdout.write_all(&data).await.map_err(|e| e.to_string())?
            }
            ChannelMsg::ExtendedData { data, .. } => {
                stderr.write_all(&data).await.map_err(|e| e.to_string())?
            }
            ChannelMsg::ExitStatus { exit_status } => code = exit_status,
            ChannelMsg::Close => break,
            _ => {}
        }
    }
    stdout.flush().await.map_err(|e| e.to_string())?;
    // A command that ends without reading all its input leaves the pump
    // behind, as ssh leaves stdin.
    pump.abort();
    let _ = session
        .disconnect(russh::Disconnect::ByApplication, "", "en")
        .await;
    Ok(code)
}
