#![no_main]
//! The Opener fed arbitrary bytes under fixed keys: see `Mode::CtrEtm`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| ssh_packetizer_fuzz::opener(
    ssh_packetizer_fuzz::Mode::CtrEtm,
    data
));
