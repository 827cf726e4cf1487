#![no_main]

use faultline_fuzz::otlp::{run, Encoding};

libfuzzer_sys::fuzz_target!(|data: &[u8]| run(Encoding::Json, data));
