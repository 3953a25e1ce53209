#![no_main]
//! The server role's identification rules, fed arbitrary bytes.
libfuzzer_sys::fuzz_target!(|data: &[u8]| ssh_packetizer_fuzz::identification_server(data));
