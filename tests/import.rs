//! Importing spreadsheets through the running daemon.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;

use common::{Daemon, repo};

#[test]
fn sample_import_lands_valid_rows_and_explains_every_reject() {
    let daemon = Daemon::start();
    let answer = daemon.import_sample();
    assert_eq!(answer["ok"], true, "{answer}");
    let summary = &answer["result"];
    assert_eq!(summary["rows"], 1030);
    assert_eq!(summary["imported"], 1010);
    assert_eq!(summary["updated"], 0);
    let rejected: BTreeMap<String, u64> =
        serde_json::from_value(summary["rejected"].clone()).unwrap();
    let expected: BTreeMap<String, u64> = [
        ("special_characters", 5),
        ("wrong_length", 4),
        ("duplicate", 6),
        ("do_not_call", 1),
        ("invalid_number", 2),
        ("invalid_attribute", 2),
    ]
    .into_iter()
    .map(|(reason, count)| (reason.to_owned(), count))
    .collect();
    assert_eq!(rejected, expected);
    let ratio = summary["valid_ratio"].as_f64().unwrap();
    assert!((ratio - 1010.0 / 1030.0).abs() < 1e-9, "{ratio}");

    // Every line of the rejects file points at the row and column that caused it.
    let sample = std::fs::read_to_string(repo().join("examples/customers/sample.csv")).unwrap();
    let sample_rows: Vec<csv::StringRecord> = csv::Reader::from_reader(sample.as_bytes())
        .records()
        .map(Result::unwrap)
        .collect();
    let rejects_path = summary["rejects_file"].as_str().unwrap();
    let mut rejects = csv::Reader::from_path(rejects_path).unwrap();
    assert_eq!(
        rejects.headers().unwrap(),
        vec!["row", "column", "reason", "message"]
    );
    let mut seen: BTreeMap<String, u64> = BTreeMap::new();
    for record in rejects.records() {
        let record = record.unwrap();
        let row: usize = record[0].parse().unwrap();
        let source = &sample_rows[row - 2];
        let phone = &source[2];
        let digits = phone.chars().filter(char::is_ascii_digit).count();
        match &record[2] {
            "special_characters" => assert!(
                phone.chars().any(|c| !"0123456789 +-.()".contains(c)),
                "{phone}"
            ),
            "wrong_length" => assert!(digits < 7, "{phone}"),
            "invalid_number" | "duplicate" | "do_not_call" => assert!(digits >= 11, "{phone}"),
            "invalid_attribute" => {
                assert_eq!(&record[1], "cart_value");
                assert!(record[3].contains(&source[5]), "{:?}", record);
            }
            other => panic!("unexpected reason {other}"),
        }
        if &record[2] != "invalid_attribute" {
            assert_eq!(&record[1], "phone");
        }
        if &record[2] == "do_not_call" {
            assert_eq!(phone.replace(' ', ""), "13912345678");
        }
        *seen.entry(record[2].to_owned()).or_default() += 1;
    }
    assert_eq!(seen, expected);

    // The same customer, found by a differently written number.
    let found = daemon.cli(&["customer", "find", "--phone", "+86 138-0013-8000"]);
    assert_eq!(found["ok"], true, "{found}");
    assert_eq!(found["result"]["id"], "C00001");
    assert_eq!(found["result"]["phone"], "+8613800138000");
    let shown = daemon.cli(&["customer", "show", "C00001"]);
    assert_eq!(shown["result"], found["result"]);
}

#[test]
fn importing_the_same_file_twice_changes_nothing() {
    let daemon = Daemon::start();
    let first = daemon.import_sample();
    assert_eq!(first["result"]["imported"], 1010);
    let second = daemon.import_sample();
    assert_eq!(second["result"]["imported"], 0);
    assert_eq!(second["result"]["updated"], 0);
    assert_eq!(second["result"]["unchanged"], 1010);
    assert_eq!(daemon.cli(&["status"])["result"]["customers"], 1010);
}

#[test]
fn xlsx_cells_are_typed_and_bad_rows_rejected() {
    let daemon = Daemon::start();
    let path = repo().join("tests/data/customers.xlsx");
    let rejects = daemon.dir.path().join("x.rejects.csv");
    let answer = daemon.cli(&[
        "import",
        path.to_str().unwrap(),
        "--rejects",
        rejects.to_str().unwrap(),
    ]);
    assert_eq!(answer["ok"], true, "{answer}");
    assert_eq!(answer["result"]["imported"], 2, "{answer}");
    assert_eq!(answer["result"]["rejected"]["wrong_length"], 1, "{answer}");
    assert_eq!(
        answer["result"]["rejected"]["invalid_attribute"], 1,
        "{answer}"
    );
    let rejected = std::fs::read_to_string(&rejects).unwrap();
    assert!(rejected.contains("4,phone,wrong_length"), "{rejected}");
    assert!(
        rejected.contains("5,intent,invalid_attribute"),
        "{rejected}"
    );

    // A phone typed into a numeric cell reads as its digits; dates become instants.
    let customer = daemon.cli(&["customer", "find", "--phone", "137 0000 1111"])["result"].clone();
    assert_eq!(customer["id"], "X001");
    assert_eq!(customer["name"], "林小红");
    assert_eq!(customer["attributes"]["cart_value"], "1299.50");
    assert_eq!(customer["attributes"]["paid"], true);
    assert_eq!(customer["attributes"]["cart_added"], "2026-11-20T01:30:00Z");
}

#[test]
fn a_missing_column_fails_the_import_with_the_columns_found() {
    let daemon = Daemon::start();
    let path = daemon.dir.path().join("bad.csv");
    std::fs::write(&path, "customer_id,telephone\nC1,13800138000\n").unwrap();
    let answer = daemon.cli(&["import", path.to_str().unwrap()]);
    assert_eq!(answer["ok"], false);
    assert_eq!(answer["error"]["code"], "import_columns");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(message.contains("no column `phone`"), "{message}");
    assert!(message.contains("`telephone`"), "{message}");
}

#[test]
fn dnc_numbers_are_listed_and_removed_in_any_format() {
    let daemon = Daemon::start();
    assert_eq!(
        daemon.cli(&["dnc", "add", "+86 139 1234 5678"])["result"]["added"],
        true
    );
    assert_eq!(
        daemon.cli(&["dnc", "add", "13912345678"])["result"]["added"],
        false
    );
    let listed = daemon.cli(&["dnc", "list"]);
    assert_eq!(listed["result"][0]["phone"], "+8613912345678");
    assert_eq!(
        daemon.cli(&["dnc", "remove", "139-1234-5678"])["result"]["removed"],
        true
    );
    assert_eq!(
        daemon.cli(&["dnc", "list"])["result"],
        serde_json::json!([])
    );
    let bad = daemon.cli(&["dnc", "add", "call me"]);
    assert_eq!(bad["error"]["code"], "invalid_phone");
}
