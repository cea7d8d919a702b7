//! Any line on the control socket: parsing a request never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = dialhound::control::protocol::Request::parse(data);
});
