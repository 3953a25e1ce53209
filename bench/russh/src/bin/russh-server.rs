//! russh's server as the side-by-side runs it: `russh-server -l ADDR:PORT
//! -k HOST_KEY -a AUTHORIZED_KEYS -E LOG`. Each `exec` runs through `sh -c`
//! with its stdin, stdout and stderr on tokio pipes, as `minissh serve` and
//! sshd do; the log's first line says where it listens.

use std::collections::HashMap;
use std::io::Write;
use std::process::Stdio;
use std::sync::Arc;

use russh::keys::{load_secret_key, PublicKey};
use russh::server::{self, Auth, ChannelOpenHandle, Msg, Server as _, Session, VerifiedPublicKey};
use russh::{Channel, ChannelId, ChannelMsg};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

#[derive(Clone)]
struct Server {
    authorized: Arc<Vec<PublicKey>>,
}

impl server::Server for Server {
    type Handler = Conn;

    fn new_client(&mut self, _: Option<std::net::SocketAddr>) -> Conn {
        Conn {
            authorized: self.authorized.clone(),
            channels: HashMap::new(),
        }
    }
}

struct Conn {
    authorized: Arc<Vec<PublicKey>>,
    /// Session channels opened and not yet running a command.
    channels: HashMap<ChannelId, Channel<Msg>>,
}

impl server::Handler for Conn {
    type Error = russh::Error;

    async fn auth_publickey(
        &mut self,
        _user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        let known = self
            .authorized
            .iter()
            .any(|k| k.key_data() == key.public_key.key_data());
        Ok(if known { Auth::Accept } else { Auth::reject() })
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.channels.insert(channel.id(), channel);
        reply.accept().await;
        Ok(())
    }

    async fn exec_request(
        &mut self,
        id: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(channel) = self.channels.remove(&id) else {
            return session.channel_failure(id);
        };
        let command = String::from_utf8_lossy(data).into_owned();
        let spawned = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(&command)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        let Ok(mut child) = spawned else {
            return session.channel_failure(id);
        };
        session.channel_success(id)?;
        let (mut stdin, stdout, stderr) = (
            child.stdin.take(),
            child.stdout.take().expect("piped"),
            child.stderr.take().expect("piped"),
        );
        let (mut reader, writer) = channel.split();
        // The client's data to the command's stdin, until its EOF.
        tokio::spawn(async move {
            while let Some(msg) = reader.wait().await {
                match msg {
                    ChannelMsg::Data { data } => {
                        if let Some(pipe) = &mut stdin {
                            if pipe.write_all(&data).await.is_err() {
                                stdin = None;
                            }
                        }
                    }
                    ChannelMsg::Eof | ChannelMsg::Close => stdin = None,
                    _ => {}
                }
            }
        });
        // The command's output to the client (within its window), then the
        // exit status, EOF and CLOSE.
        tokio::spawn(async move {
            let writer = Arc::new(writer);
            let err_writer = writer.clone();
            let errors = tokio::spawn(async move {
                let _ = err_writer.extended_data(1, stderr).await;
            });
            let _ = writer.data(stdout).await;
            let _ = errors.await;
            let code = child
                .wait()
                .await
                .ok()
                .and_then(|s| s.code())
                .unwrap_or(255);
            let _ = writer.exit_status(code as u32).await;
            let _ = writer.eof().await;
            let _ = writer.close().await;
        });
        Ok(())
    }
}

fn arg(args: &[String], flag: &str) -> String {
    russh_side::arg(args, flag).unwrap_or_else(|| {
        eprintln!("usage: russh-server -l ADDR:PORT -k HOST_KEY -a AUTHORIZED_KEYS -E LOG");
        std::process::exit(2)
    })
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let host_key = load_secret_key(arg(&args, "-k"), None).expect("the host key");
    let authorized: Vec<PublicKey> = std::fs::read_to_string(arg(&args, "-a"))
        .expect("the authorized keys")
        .lines()
        .filter_map(|l| PublicKey::from_openssh(l.trim()).ok())
        .collect();
    let config = Arc::new(server::Config {
        keys: vec![host_key],
        auth_rejection_time: std::time::Duration::from_millis(10),
        preferred: russh_side::preferred_all(),
        ..Default::default()
    });
    let listener = TcpListener::bind(arg(&args, "-l")).await.expect("bind");
    let addr = listener.local_addr().expect("the address");
    let mut log = std::fs::File::create(arg(&args, "-E")).expect("the log");
    writeln!(log, "listening on {addr}, russh").expect("the log");
    let mut server = Server {
        authorized: Arc::new(authorized),
    };
    server
        .run_on_socket(config, &listener)
        .await
        .expect("serve");
}
