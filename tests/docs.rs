//! The docs against the tree, so they cannot drift from it unnoticed:
//! - every path the code map of ARCHITECTURE.md names exists;
//! - the code map names every module of `src/`, every file of `tests/`, every script of
//!   `bench/`, every benchmark of `benches/` and every example of `examples/`;
//! - every module path ARCHITECTURE.md and README.md name (`policy::runtime`,
//!   `querylog::read::sqlite::SqliteStore`) is a module of `src/`, and what follows the last
//!   module an item declared or re-exported there;
//! - neither names an issue of a tracker (the tracker is not in the repository).
//!
//! A row of the code map is a table line of the section "## Code map"; its first cell names
//! paths in backticks: from the repository's root when they start with a top folder (`src/`,
//! `tests/`, ...), else beside the path before them (`src/commands/serve.rs`, `check.rs`).

use std::collections::BTreeSet;
use std::path::Path;

/// Folders of the repository a code-map path starts with.
const ROOTS: [&str; 9] = [
    "src/",
    "tests/",
    "bench/",
    "benches/",
    "examples/",
    "fuzz/",
    "packaging/",
    "data/",
    "docs/",
];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The text between backticks.
fn spans(text: &str) -> impl Iterator<Item = &str> {
    text.split('`').skip(1).step_by(2)
}

/// The table lines of the section "## Code map" (up to the next `## ` heading).
fn code_map_rows(architecture: &str) -> Vec<&str> {
    let start = architecture
        .find("\n## Code map\n")
        .expect("ARCHITECTURE.md has a section \"## Code map\"");
    let section = &architecture[start + 1..];
    let end = section[3..].find("\n## ").map_or(section.len(), |i| i + 3);
    section[..end]
        .lines()
        .filter(|l| l.starts_with("| `"))
        .collect()
}

/// The paths one row's first cell names, each from the repository's root; a path without a
/// top folder is beside the one before it.
fn row_paths(row: &str) -> Vec<String> {
    let cell = row.split('|').nth(1).unwrap_or("");
    let mut dir: Option<String> = None;
    let mut out = Vec::new();
    for span in spans(cell) {
        let path = if ROOTS.iter().any(|r| span.starts_with(r)) {
            span.to_string()
        } else {
            let dir = dir.as_deref().unwrap_or_else(|| {
                panic!("`{span}` names no top folder and follows no path: {row}")
            });
            format!("{dir}{span}")
        };
        let trimmed = path.trim_end_matches('/');
        dir = Some(trimmed[..trimmed.rfind('/').map_or(0, |i| i + 1)].to_string());
        out.push(path);
    }
    out
}

/// Every path the code map names.
fn code_map_paths() -> Vec<String> {
    code_map_rows(&read("ARCHITECTURE.md"))
        .into_iter()
        .flat_map(row_paths)
        .collect()
}

/// The files below `dir` (paths from the repository's root), in sub-folders too when `deep`,
/// that `keep` accepts.
fn files(dir: &str, deep: bool, keep: fn(&str) -> bool) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_string()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(root().join(&d)).unwrap_or_else(|e| panic!("{d}: {e}")) {
            let entry = entry.unwrap();
            let rel = format!("{d}/{}", entry.file_name().to_string_lossy());
            if entry.file_type().unwrap().is_dir() {
                if deep {
                    todo.push(rel);
                }
            } else if keep(&rel) {
                out.push(rel);
            }
        }
    }
    out.sort();
    out
}

/// What the code map must name: the modules of `src/`, the files of `tests/`, the scripts of
/// `bench/` (not its README and results), the benchmarks and the examples.
fn must_be_named() -> Vec<String> {
    let rust = |p: &str| p.ends_with(".rs");
    let script = |p: &str| p != "bench/README.md";
    let mut all = files("src", true, rust);
    all.extend(files("tests", true, |_| true));
    all.extend(files("bench", false, script));
    all.extend(files("benches", false, rust));
    all.extend(files("examples", false, rust));
    all
}

#[test]
fn the_code_map_is_read_as_its_rows_and_their_paths() {
    // The reading itself, so the checks below cannot pass by finding nothing.
    assert_eq!(
        row_paths("| `src/commands/serve.rs`, `check.rs`, `logs/mod.rs`, `follow.rs` | x |"),
        [
            "src/commands/serve.rs",
            "src/commands/check.rs",
            "src/commands/logs/mod.rs",
            "src/commands/logs/follow.rs"
        ]
    );
    assert_eq!(
        row_paths("| `src/admin/ui/page.rs`, `assets/` | the `page.rs` |"),
        ["src/admin/ui/page.rs", "src/admin/ui/assets/"]
    );
    let text = "# t\n\n## Code map\n\n| module | what |\n|---|---|\n| `src/a.rs` | a |\n\n## Next\n| `src/b.rs` | b |\n";
    assert_eq!(code_map_rows(text), ["| `src/a.rs` | a |"]);
    let paths = code_map_paths();
    assert!(
        paths.len() > 100,
        "only {} paths in the code map",
        paths.len()
    );
    assert!(must_be_named().contains(&"tests/docs.rs".to_string()));
}

#[test]
fn every_path_the_code_map_names_exists() {
    let missing: Vec<String> = code_map_paths()
        .into_iter()
        .filter(|p| !root().join(p).exists())
        .collect();
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md's code map names paths that do not exist: {missing:#?}"
    );
}

#[test]
fn the_code_map_names_every_module_test_file_bench_script_and_example() {
    let named: BTreeSet<String> = code_map_paths().into_iter().collect();
    let unnamed: Vec<String> = must_be_named()
        .into_iter()
        .filter(|f| !named.contains(f))
        .collect();
    assert!(
        unnamed.is_empty(),
        "not in ARCHITECTURE.md's code map (add a row, or the file to a row's first cell): \
         {unnamed:#?}"
    );
}

/// Whether `name` is declared in the Rust source `src` (fn, type, const, module, ...) or
/// re-exported by a `use`.
fn declares(src: &str, name: &str) -> bool {
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    let words: Vec<&str> = src
        .split(|c: char| !is_word(c))
        .filter(|w| !w.is_empty())
        .collect();
    let keywords = [
        "fn", "struct", "enum", "trait", "type", "const", "static", "mod",
    ];
    if words
        .windows(2)
        .any(|w| keywords.contains(&w[0]) && w[1] == name)
    {
        return true;
    }
    src.match_indices("use ").any(|(i, _)| {
        let whole_word = src[..i].ends_with(|c: char| c.is_whitespace()) || i == 0;
        let stmt = &src[i..src[i..].find(';').map_or(src.len(), |j| i + j)];
        whole_word && stmt.split(|c: char| !is_word(c)).any(|w| w == name)
    })
}

/// Why the module path `parts` (its first part a top-level module) is not in `src/`, if not.
fn unresolved(parts: &[&str]) -> Option<String> {
    let mut dir = root().join("src");
    for (i, part) in parts.iter().enumerate() {
        let (sub, file) = (dir.join(part), dir.join(format!("{part}.rs")));
        if sub.is_dir() {
            dir = sub;
            continue;
        }
        let module = if file.is_file() {
            file
        } else {
            let module = dir.join("mod.rs");
            let src = std::fs::read_to_string(&module).unwrap_or_default();
            return (!declares(&src, part))
                .then(|| format!("no module or item `{part}` in {}", module.display()));
        };
        let rest = parts.get(i + 1)?;
        let src = std::fs::read_to_string(&module).unwrap();
        return (!declares(&src, rest))
            .then(|| format!("no item `{rest}` in {}", module.display()));
    }
    None
}

#[test]
fn module_paths_the_docs_name_are_in_src() {
    let tops: BTreeSet<String> = std::fs::read_dir(root().join("src"))
        .unwrap()
        .map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            name.trim_end_matches(".rs").to_string()
        })
        .filter(|n| n != "lib" && n != "main")
        .collect();
    let mut checked = 0;
    let mut bad = Vec::new();
    for doc in ["ARCHITECTURE.md", "README.md"] {
        for span in spans(&read(doc)) {
            let span = span.strip_prefix("crate::").unwrap_or(span);
            let end = span
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(span.len());
            let parts: Vec<&str> = span[..end].split("::").collect();
            if parts.len() < 2 || parts.iter().any(|p| p.is_empty()) || !tops.contains(parts[0]) {
                continue;
            }
            checked += 1;
            if let Some(why) = unresolved(&parts) {
                bad.push(format!("{doc}: `{span}`: {why}"));
            }
        }
    }
    assert!(
        checked > 10,
        "only {checked} module paths found in the docs"
    );
    assert!(bad.is_empty(), "{bad:#?}");
}

#[test]
fn the_docs_name_no_tracker_issues() {
    for doc in ["ARCHITECTURE.md", "README.md"] {
        let text = read(doc);
        let near = |i: usize| text[i..].chars().take(12).collect::<String>();
        let lower = text.to_ascii_lowercase();
        let bytes = lower.as_bytes();
        for (i, _) in lower.match_indices("issue") {
            let after = &bytes[i + 5..];
            let numbered = match after {
                [b' ' | b'-' | b'#', d, ..] => d.is_ascii_digit(),
                _ => false,
            };
            assert!(!numbered, "{doc} names a tracker issue: {:?}", near(i));
        }
        for (i, _) in text.match_indices('#') {
            let before = text[..i].chars().next_back().unwrap_or(' ');
            let digit = text[i + 1..].starts_with(|c: char| c.is_ascii_digit());
            assert!(
                !(digit && (before.is_whitespace() || before == '(')),
                "{doc} names a tracker number: {:?}",
                near(i)
            );
        }
    }
}
