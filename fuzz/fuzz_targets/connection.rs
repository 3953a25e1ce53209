#![no_main]
//! Two honest connection cores under any interleaving of calls, bytes and time.
libfuzzer_sys::fuzz_target!(|data: &[u8]| ssh_packetizer_fuzz::connection(data));
