#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| faultline_fuzz::counter_files::run(data));
