#![no_main]
//! The identification exchange fed arbitrary bytes.
libfuzzer_sys::fuzz_target!(|data: &[u8]| ssh_packetizer_fuzz::banner(data));
