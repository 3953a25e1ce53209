//! Every driver and half is `Send + 'static` where its stream is, checked
//! at compile time: a server moves each connection into a task or thread of
//! its own. (This file fails to build, not to run, if one is not.)

use std::net::TcpStream;

use ssh_packetizer::pipe::{PipeEnd, PipeReader, PipeWriter};
use ssh_packetizer::{Connection, Duplex, PacketReader, PacketWriter, Packetizer};

fn send_static<T: Send + 'static>() {}

/// Sync, and `Sync` too where several threads share it.
fn shared<T: Send + Sync + 'static>() {}

#[test]
fn the_sync_drivers_move_between_threads() {
    send_static::<Connection>();
    send_static::<Packetizer<TcpStream>>();
    send_static::<Packetizer<PipeEnd>>();
    send_static::<Packetizer<Duplex<PipeReader, PipeWriter>>>();
    send_static::<PacketReader<TcpStream>>();
    send_static::<PacketReader<PipeReader>>();
    // Writers are cloned into several threads.
    shared::<PacketWriter<TcpStream>>();
    shared::<PacketWriter<PipeWriter>>();
}

#[cfg(feature = "tokio")]
#[test]
fn the_async_drivers_move_between_tasks() {
    use ssh_packetizer::tokio::{PacketCodec, PacketReader, PacketWriter, Packetizer};
    use tokio::io::{DuplexStream, ReadHalf, WriteHalf};
    use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
    use tokio::net::TcpStream;

    send_static::<Packetizer<TcpStream>>();
    send_static::<Packetizer<DuplexStream>>();
    send_static::<PacketCodec>();
    send_static::<tokio_util::codec::Framed<TcpStream, PacketCodec>>();
    send_static::<PacketReader<OwnedReadHalf>>();
    send_static::<PacketReader<ReadHalf<DuplexStream>>>();
    shared::<PacketWriter<OwnedWriteHalf>>();
    shared::<PacketWriter<WriteHalf<DuplexStream>>>();
}
