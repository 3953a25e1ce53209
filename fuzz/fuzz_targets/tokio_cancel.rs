#![no_main]
//! The tokio Packetizer and halves under random cancellation.
libfuzzer_sys::fuzz_target!(|data: &[u8]| ssh_packetizer_fuzz::tokio_cancel(data));
