#![no_main]
//! Arbitrary payloads and chunking: seal then open must give them back.
libfuzzer_sys::fuzz_target!(|data: &[u8]| ssh_packetizer_fuzz::roundtrip(data));
