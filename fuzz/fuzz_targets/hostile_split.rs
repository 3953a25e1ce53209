#![no_main]
//! The core's split halves against hostile bytes and random calls.
libfuzzer_sys::fuzz_target!(|data: &[u8]| ssh_packetizer_fuzz::hostile_split(data));
