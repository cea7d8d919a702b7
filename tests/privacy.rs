//! Personal data never lies in plain text under the data directory.

#![allow(clippy::unwrap_used)]

mod common;

use common::Daemon;

#[test]
fn no_phone_number_or_name_is_stored_in_plain_text() {
    let mut daemon = Daemon::start();
    assert_eq!(daemon.import_sample()["result"]["imported"], 1010);
    // Stop hard so nothing is tidied up before we look.
    daemon.kill_hard();

    let sample =
        std::fs::read_to_string(common::repo().join("examples/customers/sample.csv")).unwrap();
    let mut needles: Vec<Vec<u8>> = Vec::new();
    for record in csv::Reader::from_reader(sample.as_bytes())
        .records()
        .map(Result::unwrap)
    {
        let digits: String = record[2].chars().filter(char::is_ascii_digit).collect();
        if digits.len() >= 11 {
            let national = &digits[digits.len() - 11..];
            needles.push(national.as_bytes().to_vec());
            needles.push(format!("+86{national}").into_bytes());
        }
        if record[1].len() >= 6 {
            needles.push(record[1].as_bytes().to_vec());
        }
    }
    needles.push(b"13912345678".to_vec());
    assert!(needles.len() > 2000);

    let matcher = aho_corasick::AhoCorasick::new(&needles).unwrap();
    let mut files = 0;
    let mut stack = vec![daemon.data_dir.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            files += 1;
            let bytes = std::fs::read(&path).unwrap();
            if let Some(found) = matcher.find(&bytes) {
                panic!(
                    "`{}` appears in plain text in {}",
                    String::from_utf8_lossy(&needles[found.pattern().as_usize()]),
                    path.display()
                );
            }
        }
    }
    assert!(files > 0, "the data directory is empty");
}
