//! Any spreadsheet cell: phone parsing never panics, and an accepted number reads
//! back as itself.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &str| {
    let region = dialhound::ingest::phone::Region::parse("CN").expect("CN is a region");
    if let Ok(number) = dialhound::ingest::phone::E164::parse(data, region) {
        let again = dialhound::ingest::phone::E164::parse(number.as_str(), region);
        assert_eq!(
            again.as_ref().map(|n| n.as_str()),
            Ok(number.as_str()),
            "{data:?}"
        );
    }
});
