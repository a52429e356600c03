//! Any byte string handed to the session-file reader must give `Ok` or a clean `Err`: no panic,
//! no hang, no allocation beyond the input's size (section lengths are checked against what is
//! left of the file before anything is read).
#![no_main]

use libfuzzer_sys::fuzz_target;
use voyager_runtime::engine::session_file::check_bytes;

fuzz_target!(|data: &[u8]| {
    let _ = check_bytes(data);
});
