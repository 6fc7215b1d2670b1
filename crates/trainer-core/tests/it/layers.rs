//! The layering rule of `docs/architecture.md`: a module of trainer-core uses only modules of
//! lower layers (and itself). Read from the source: every `crate::` path outside comments.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The layers, bottom first; modules of one row do not use each other.
const LAYERS: &[&[&str]] = &[
    &["error"],
    &["fs", "split", "init"],
    &["state", "schedule"],
    &["config", "step"],
    &["metric", "data", "parallel"],
    &["checkpoint", "event"],
    &["callback", "weights"],
    &["engine"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|row| row.contains(&module))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without comments (line comments, doc comments, block comments).
fn code_of(text: &str) -> String {
    let mut code = String::new();
    let mut in_block = 0usize;
    for line in text.lines() {
        let mut rest = line;
        let mut kept = String::new();
        loop {
            if in_block > 0 {
                match rest.find("*/") {
                    Some(end) => {
                        in_block -= 1;
                        rest = &rest[end + 2..];
                    }
                    None => break,
                }
            } else {
                let line_comment = rest.find("//");
                let block = rest.find("/*");
                match (line_comment, block) {
                    (Some(l), Some(b)) if b < l => {
                        kept.push_str(&rest[..b]);
                        in_block += 1;
                        rest = &rest[b + 2..];
                    }
                    (Some(l), _) => {
                        kept.push_str(&rest[..l]);
                        break;
                    }
                    (None, Some(b)) => {
                        kept.push_str(&rest[..b]);
                        in_block += 1;
                        rest = &rest[b + 2..];
                    }
                    (None, None) => {
                        kept.push_str(rest);
                        break;
                    }
                }
            }
        }
        code.push_str(&kept);
        code.push('\n');
    }
    code
}

/// The top-level modules a piece of code names through `crate::`, grouped imports included.
fn used_modules(code: &str) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    let ident = |s: &str| {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect::<String>()
    };
    for (at, _) in code.match_indices("crate::") {
        let after = code[at + "crate::".len()..].trim_start();
        if let Some(group) = after.strip_prefix('{') {
            // `crate::{a::X, b, c::{Y, Z}}`: the first name of each top-level item.
            let mut depth = 0;
            let mut item_start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if item_start && !c.is_whitespace() => {
                        used.insert(ident(&group[i..]));
                        item_start = false;
                    }
                    _ => {}
                }
            }
        } else {
            used.insert(ident(after));
        }
    }
    used.retain(|m| !m.is_empty());
    used
}

#[test]
fn no_module_uses_a_module_of_its_own_layer_or_above() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut violations = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(&src).unwrap();
        let first = relative
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if first == "lib" {
            continue;
        }
        let Some(own) = layer_of(&first) else {
            violations.push(format!(
                "{}: module `{first}` has no layer in docs/architecture.md",
                relative.display()
            ));
            continue;
        };
        let code = code_of(&std::fs::read_to_string(file).unwrap());
        for used in used_modules(&code) {
            if used == first || used == "prelude" {
                continue;
            }
            match layer_of(&used) {
                Some(layer) if layer < own => {}
                Some(layer) => violations.push(format!(
                    "{}: `{first}` (layer {own}) uses `{used}` (layer {layer})",
                    relative.display()
                )),
                None => violations.push(format!(
                    "{}: uses `{used}`, which has no layer",
                    relative.display()
                )),
            }
        }
    }
    assert!(
        violations.is_empty(),
        "layering violations:\n{}",
        violations.join("\n")
    );
}

#[test]
fn the_check_reads_grouped_imports_and_skips_comments() {
    let code = code_of("use crate::{a::X, b, c::{Y, Z}};\n// crate::d\nlet x = crate::e::f(); /* crate::g */ crate::h");
    let used: Vec<String> = used_modules(&code).into_iter().collect();
    assert_eq!(used, ["a", "b", "c", "e", "h"]);
}

#[test]
fn the_crates_keep_their_order() {
    let manifest = |crate_dir: &str| {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(crate_dir)
            .join("Cargo.toml");
        std::fs::read_to_string(path).unwrap()
    };
    let dependencies = |text: &str| -> String {
        text.split("[dependencies]")
            .nth(1)
            .unwrap_or_default()
            .split("\n[")
            .next()
            .unwrap_or_default()
            .to_string()
    };
    let core = dependencies(&manifest("trainer-core"));
    for other in ["trainer-job", "trainer-gpu", "burn-ndarray", "burn-wgpu"] {
        assert!(!core.contains(other), "trainer-core depends on {other}");
    }
    let gpu = dependencies(&manifest("trainer-gpu"));
    for other in ["trainer-core", "trainer-job"] {
        assert!(!gpu.contains(other), "trainer-gpu depends on {other}");
    }
}
