#![no_main]
//! PacketCodec under Framed with random key switches.
libfuzzer_sys::fuzz_target!(|data: &[u8]| ssh_packetizer_fuzz::codec_keys(data));
