//! The library's modules import downwards only: no two modules of one folder (nor two of the
//! crate's top) import each other. Read from the sources, as a reviewer would.
use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

/// The modules `text` names after `prefix::` (`super`, `crate`): `use prefix::{a, b::c}` and
/// paths such as `prefix::a::X` in code; comments left out.
fn named(text: &str, prefix: &str) -> BTreeSet<String> {
    let code: String = text
        .lines()
        .map(|l| l.split("//").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n");
    let ident = |s: &str| -> String {
        s.trim()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut out = BTreeSet::new();
    let marker = format!("{prefix}::");
    for (at, _) in code.match_indices(&marker) {
        let rest = &code[at + marker.len()..];
        match rest.strip_prefix('{') {
            // The top level of a braced list: each entry's first name.
            Some(list) => {
                let (mut depth, mut entry) = (0, String::new());
                for c in list.chars() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => break,
                        '}' => depth -= 1,
                        ',' if depth == 0 => {
                            out.insert(ident(&entry));
                            entry.clear();
                            continue;
                        }
                        _ => {}
                    }
                    entry.push(c);
                }
                out.insert(ident(&entry));
            }
            None => {
                out.insert(ident(rest));
            }
        }
    }
    out.remove("");
    out
}

/// A folder's modules, by name: its `.rs` files (not `mod.rs`) and its folders with a `mod.rs`.
fn siblings(dir: &Path) -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir).expect("a source folder").flatten() {
        let path = entry.path();
        let name = path
            .file_stem()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        if path.is_dir() && path.join("mod.rs").exists() {
            out.insert(name, path.join("mod.rs"));
        } else if path.extension().is_some_and(|e| e == "rs") && name != "mod" {
            out.insert(name, path);
        }
    }
    out
}

/// Every file under `dir`, with its text.
fn sources(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("a source folder").flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).expect("readable");
            out.push((path, text));
        }
    }
    out
}

/// Pairs of modules that import each other, `(a, b)` with `a < b`.
fn circles(imports: &BTreeMap<String, BTreeSet<String>>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (a, theirs) in imports {
        for b in theirs {
            if a < b && imports.get(b).is_some_and(|i| i.contains(a)) {
                out.push((a.clone(), b.clone()));
            }
        }
    }
    out
}

#[test]
fn no_two_modules_import_each_other() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    // The crate's top modules, through `crate::`.
    let mut top: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (path, text) in sources(&src) {
        let rel = path.strip_prefix(&src).expect("under src");
        let module = rel
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .unwrap_or_default()
            .trim_end_matches(".rs")
            .to_string();
        if module == "lib" || module == "main" {
            continue;
        }
        let mut names = named(&text, "crate");
        names.remove(&module);
        top.entry(module).or_default().extend(names);
    }
    assert_eq!(circles(&top), Vec::<(String, String)>::new(), "top modules");
    // The modules of each folder, through `super::`.
    for dir in folders(&src) {
        let imports: BTreeMap<String, BTreeSet<String>> = siblings(&dir)
            .into_iter()
            .map(|(name, path)| {
                let text = std::fs::read_to_string(&path).expect("readable");
                (name, named(&text, "super"))
            })
            .collect();
        assert_eq!(
            circles(&imports),
            Vec::<(String, String)>::new(),
            "in {}",
            dir.display()
        );
    }
}

/// `dir` and every folder below it.
fn folders(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    for entry in std::fs::read_dir(dir).expect("a source folder").flatten() {
        if entry.path().is_dir() {
            out.extend(folders(&entry.path()));
        }
    }
    out
}

#[test]
fn imports_are_read_as_rust_writes_them() {
    let text = "use super::{\n    containers::{A, B},\n    engine::C, // run::X\n    pods,\n};\nfn f() { super::cri::x(); }";
    let names: Vec<String> = named(text, "super").into_iter().collect();
    assert_eq!(names, ["containers", "cri", "engine", "pods"]);
    assert!(
        circles(&BTreeMap::from([
            ("a".to_string(), BTreeSet::from(["b".to_string()])),
            ("b".to_string(), BTreeSet::from(["a".to_string()])),
        ]))
        .contains(&("a".into(), "b".into()))
    );
}
