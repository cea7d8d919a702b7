//! Any text given to the rules compiler and formatter gets a result or a
//! diagnostic, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    match dialhound_rules::compile(src, "fuzz.rules") {
        Ok(p) => {
            let _ = p.disasm();
            let _ = p.run_tests();
        }
        Err(d) => {
            let _ = d.render(src, false);
        }
    }
    if let Ok(formatted) = dialhound_rules::format(src) {
        // Formatting is a fixed point.
        assert_eq!(
            dialhound_rules::format(&formatted).ok().as_deref(),
            Some(formatted.as_str())
        );
    }
});
