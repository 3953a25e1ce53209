#![no_main]
//! A Packetizer over a stream that delivers arbitrary bytes, timeouts and EOF.
libfuzzer_sys::fuzz_target!(|data: &[u8]| ssh_packetizer_fuzz::packetizer(data));
