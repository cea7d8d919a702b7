//! Every file under `examples/rules/` compiles and its test table passes.

use std::path::Path;

#[test]
fn example_rule_files_pass_their_tests() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/rules");
    let mut files = 0;
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.extension().and_then(|e| e.to_str()) != Some("rules") {
            continue;
        }
        files += 1;
        let src = std::fs::read_to_string(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let program = match dialhound_rules::compile(&src, &name) {
            Ok(p) => p,
            Err(d) => panic!("{}", d.render(&src, false)),
        };
        let report = program.run_tests();
        print!("{name}:\n{report}");
        assert!(report.results.len() >= 3, "{name} needs a test table");
        assert_eq!(report.failed(), 0, "{name}:\n{report}");
        // The formatter's output is a fixed point and compiles to the same code.
        let formatted = dialhound_rules::format(&src).unwrap();
        assert_eq!(
            dialhound_rules::format(&formatted).unwrap(),
            formatted,
            "{name}"
        );
        let again = dialhound_rules::compile(&formatted, &name).unwrap();
        assert_eq!(again.disasm(), program.disasm(), "{name}");
        // Every file declares the scripts its rules choose, and formatting
        // keeps them.
        assert!(
            !program.script_names().is_empty(),
            "{name} declares no script"
        );
        assert_eq!(again.script_names(), program.script_names(), "{name}");
        for s in program.script_names() {
            assert_eq!(again.script(s), program.script(s), "{name}: script {s}");
        }
        // The SMS templates too (every one a rule or a step sends is
        // declared, or the file would not compile).
        assert_eq!(again.sms_names(), program.sms_names(), "{name}");
        for s in program.sms_names() {
            assert_eq!(
                again.sms_template(s),
                program.sms_template(s),
                "{name}: sms {s}"
            );
        }
    }
    assert!(
        files >= 5,
        "expected one file per seed scenario, found {files}"
    );
}
