//! The engine's layout, as `ARCHITECTURE.md` describes it: one folder per
//! stage of the loop, no two modules importing each other, nothing of the
//! daemon importing the demo, and a map that names every folder and crate.
//!
//! The imports are read from the source text: every `crate::a::b` path, every
//! `super::` path, and a `mod.rs` file's use of its own children. A stage's
//! `pub use child::Item` re-exports and its tests are not imports.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use regex::Regex;

/// The files allowed directly in `engine/src/` besides folders.
const TOP_LEVEL_FILES: [&str; 4] = ["config.rs", "daemon.rs", "lib.rs", "main.rs"];

/// The most files a stage's folder may hold.
const MAX_FILES_PER_FOLDER: usize = 12;

fn engine_src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every module of the library by its path (`call::dial`, `campaign`), with
/// its file, leaving out the crate roots.
fn modules() -> BTreeMap<String, PathBuf> {
    fn walk(dir: &Path, prefix: &[String], out: &mut BTreeMap<String, PathBuf>) {
        let mut entries: Vec<_> = fs::read_dir(dir)
            .expect("the engine's source folder is readable")
            .map(|entry| entry.expect("a directory entry is readable").path())
            .collect();
        entries.sort();
        for path in entries {
            let name = path
                .file_name()
                .and_then(|name| name.to_str())
                .expect("source file names are UTF-8")
                .to_owned();
            if path.is_dir() {
                let mut inner = prefix.to_vec();
                inner.push(name);
                walk(&path, &inner, out);
            } else if let Some(stem) = name.strip_suffix(".rs") {
                let mut module = prefix.to_vec();
                if stem != "mod" {
                    module.push(stem.to_owned());
                }
                if module.is_empty() || (prefix.is_empty() && (stem == "lib" || stem == "main")) {
                    continue;
                }
                out.insert(module.join("::"), path);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(&engine_src(), &[], &mut out);
    out
}

/// The source a module compiles outside its tests, without comments and
/// without a folder's re-exports of its own children.
fn non_test_source(path: &Path) -> String {
    let text = fs::read_to_string(path).expect("a source file is readable");
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => &text[..],
    };
    let comments = Regex::new(r"//[^\n]*").expect("the pattern is valid");
    let reexports =
        Regex::new(r"(?m)^pub(\(crate\))? use [a-z_]+::[^;]*;").expect("the pattern is valid");
    let text = comments.replace_all(text, "");
    reexports.replace_all(&text, "").into_owned()
}

/// The longest module of `modules` that `segments` starts with.
fn resolve(modules: &BTreeMap<String, PathBuf>, segments: &[&str]) -> Option<String> {
    (1..=segments.len())
        .rev()
        .map(|n| segments[..n].join("::"))
        .find(|candidate| modules.contains_key(candidate))
}

/// Which modules each module imports.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let modules = modules();
    let crate_path = Regex::new(r"crate::((?:[a-z_]+::)*[a-z_]+)").expect("the pattern is valid");
    let super_path = Regex::new(r"\bsuper::((?:[a-z_]+::)*[a-z_]+)").expect("the pattern is valid");
    let super_group = Regex::new(r"\bsuper::\{").expect("the pattern is valid");
    let child_path = Regex::new(r"\b([a-z_]+)::").expect("the pattern is valid");
    let mut graph = BTreeMap::new();
    for (module, path) in &modules {
        let source = non_test_source(path);
        let own: Vec<&str> = module.split("::").collect();
        let parent = &own[..own.len() - 1];
        let mut imported = BTreeSet::new();
        for capture in crate_path.captures_iter(&source) {
            let segments: Vec<&str> = capture[1].split("::").collect();
            imported.extend(resolve(&modules, &segments));
        }
        for capture in super_path.captures_iter(&source) {
            let mut segments = parent.to_vec();
            segments.extend(capture[1].split("::"));
            imported.extend(resolve(&modules, &segments).or_else(|| resolve(&modules, parent)));
        }
        if super_group.is_match(&source) {
            imported.extend(resolve(&modules, parent));
        }
        if path.ends_with("mod.rs") {
            for capture in child_path.captures_iter(&source) {
                let child = format!("{module}::{}", &capture[1]);
                if modules.contains_key(&child) {
                    imported.insert(child);
                }
            }
        }
        imported.remove(module);
        graph.insert(module.clone(), imported);
    }
    graph
}

fn stage(module: &str) -> &str {
    module.split("::").next().unwrap_or(module)
}

#[test]
fn no_two_modules_import_each_other() {
    let graph = imports();
    let mut circles = Vec::new();
    for (module, imported) in &graph {
        for other in imported {
            if module < other && graph.get(other).is_some_and(|back| back.contains(module)) {
                circles.push(format!("{module} <-> {other}"));
            }
        }
    }
    assert!(circles.is_empty(), "modules import each other: {circles:?}");
}

#[test]
fn no_two_stages_import_each_other() {
    let mut stages: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let graph = imports();
    for (module, imported) in &graph {
        for other in imported {
            if stage(module) != stage(other) {
                stages
                    .entry(stage(module))
                    .or_default()
                    .insert(stage(other));
            }
        }
    }
    let mut circles = Vec::new();
    for (from, to) in &stages {
        for other in to {
            if from < other && stages.get(other).is_some_and(|back| back.contains(from)) {
                circles.push(format!("{from} <-> {other}"));
            }
        }
    }
    assert!(circles.is_empty(), "stages import each other: {circles:?}");
    // The map's layering: ingest sees only the store; the store and http see
    // no stage at all.
    assert_eq!(stages.get("ingest"), Some(&BTreeSet::from(["store"])));
    assert_eq!(stages.get("store"), None);
    assert_eq!(stages.get("http"), None);
}

#[test]
fn nothing_of_the_daemon_imports_the_demo() {
    let importers: Vec<String> = imports()
        .into_iter()
        .filter(|(module, imported)| {
            stage(module) != "demo" && imported.iter().any(|other| stage(other) == "demo")
        })
        .map(|(module, _)| module)
        .collect();
    assert!(importers.is_empty(), "these import the demo: {importers:?}");
}

#[test]
fn the_engine_is_one_folder_per_stage() {
    let mut loose = Vec::new();
    for entry in fs::read_dir(engine_src()).expect("the engine's source folder is readable") {
        let path = entry.expect("a directory entry is readable").path();
        let name = path
            .file_name()
            .and_then(|name| name.to_str())
            .unwrap_or_default()
            .to_owned();
        if path.is_dir() {
            let files = fs::read_dir(&path)
                .expect("a stage's folder is readable")
                .count();
            assert!(
                files <= MAX_FILES_PER_FOLDER,
                "`{name}/` holds {files} files, more than {MAX_FILES_PER_FOLDER}"
            );
            let opening = fs::read_to_string(path.join("mod.rs"))
                .unwrap_or_else(|_| panic!("`{name}/` has no mod.rs"));
            assert!(
                opening.starts_with("//! "),
                "`{name}/mod.rs` does not open with what the stage owns"
            );
        } else if !TOP_LEVEL_FILES.contains(&name.as_str()) {
            loose.push(name);
        }
    }
    assert!(
        loose.is_empty(),
        "files directly in engine/src/ beside {TOP_LEVEL_FILES:?}: {loose:?}"
    );
}

#[test]
fn the_architecture_page_names_every_folder_and_crate() {
    let page = fs::read_to_string(repository().join("ARCHITECTURE.md"))
        .expect("ARCHITECTURE.md is at the repository's root");
    let mut missing = Vec::new();
    for entry in fs::read_dir(engine_src()).expect("the engine's source folder is readable") {
        let path = entry.expect("a directory entry is readable").path();
        if path.is_dir() {
            let name = path
                .file_name()
                .and_then(|name| name.to_str())
                .unwrap_or_default();
            if !page.contains(&format!("`engine/src/{name}/`")) {
                missing.push(format!("engine/src/{name}/"));
            }
        }
    }
    let manifest =
        fs::read_to_string(repository().join("Cargo.toml")).expect("the workspace manifest");
    let members = Regex::new(r#"members = \[([^\]]*)\]"#).expect("the pattern is valid");
    let listed = members
        .captures(&manifest)
        .expect("the workspace lists its members");
    for member in listed[1].split(',').map(|m| m.trim().trim_matches('"')) {
        if !member.is_empty() && !page.contains(&format!("`{member}/`")) {
            missing.push(format!("{member}/"));
        }
    }
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md does not name {missing:?}"
    );
    let readme = fs::read_to_string(repository().join("README.md")).expect("the README");
    assert!(
        readme.contains("(ARCHITECTURE.md)"),
        "the README does not link ARCHITECTURE.md"
    );
}
