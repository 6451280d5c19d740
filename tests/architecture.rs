//! The dependency rules of ARCHITECTURE.md, checked on the source: no cycle between the
//! top-level modules of `src/`, and the one-way rules named there. A module depends on another
//! when its code (comments and `#[cfg(test)]` tails left out: tests may wire things together)
//! names `crate::other`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeMap<String, PathBuf>>;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src/ is readable") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Top-level module -> (module it uses -> one file where it does).
fn module_graph() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut graph = Graph::new();
    for file in files {
        let relative = file.strip_prefix(&src).expect("under src/");
        let first = relative.components().next().expect("a path");
        let module = first
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if module == "main" || module == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("readable source");
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        let uses = graph.entry(module.clone()).or_default();
        for line in code.lines() {
            let line = line.split("//").next().unwrap_or("");
            for (at, _) in line.match_indices("crate::") {
                let name: String = line[at + 7..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() && name != module {
                    uses.entry(name).or_insert_with(|| file.clone());
                }
            }
        }
    }
    graph
}

/// A cycle through `start`, as the modules on it, if any (depth-first, bounded by the graph).
fn cycle_from(graph: &Graph, start: &str) -> Option<Vec<String>> {
    fn walk(
        graph: &Graph,
        at: &str,
        start: &str,
        path: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        for next in graph.get(at).map(|m| m.keys()).into_iter().flatten() {
            if next == start {
                return true;
            }
            if seen.insert(next.clone()) {
                path.push(next.clone());
                if walk(graph, next, start, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![start.to_string()];
    let mut seen = BTreeSet::new();
    walk(graph, start, start, &mut path, &mut seen).then_some(path)
}

#[test]
fn no_cycle_between_top_level_modules() {
    let graph = module_graph();
    assert!(
        graph.len() > 10,
        "the walk found the modules: {:?}",
        graph.keys()
    );
    for module in graph.keys() {
        if let Some(cycle) = cycle_from(&graph, module) {
            let steps: Vec<String> = cycle
                .iter()
                .zip(cycle.iter().cycle().skip(1))
                .map(|(a, b)| format!("{a} -> {b} ({})", graph[a][b].display()))
                .collect();
            panic!("import cycle: {}", steps.join(", "));
        }
    }
}

#[test]
fn the_one_way_rules_hold() {
    let graph = module_graph();
    let uses = |a: &str, b: &str| graph.get(a).and_then(|m| m.get(b)).cloned();
    for (from, to, why) in [
        (
            "policy",
            "querylog",
            "the policy engine knows nothing of the query log",
        ),
        (
            "policy",
            "server",
            "the policy engine knows nothing of sockets",
        ),
        (
            "policy",
            "config",
            "config aggregates the policy's types, never back",
        ),
        (
            "pipeline",
            "admin",
            "the answer path does not depend on the admin server",
        ),
        (
            "feeds",
            "config",
            "each subsystem receives only its section",
        ),
        (
            "rpzxfr",
            "config",
            "each subsystem receives only its section",
        ),
        (
            "resolver",
            "config",
            "each subsystem receives only its section",
        ),
        (
            "upstream",
            "resolver",
            "the resolver implements Upstream, not the other way",
        ),
        (
            "upstream",
            "config",
            "instance builds the upstream from the config",
        ),
    ] {
        assert!(
            uses(from, to).is_none(),
            "{from} uses {to} in {:?}: {why}",
            uses(from, to)
        );
    }
    for (module, _) in graph.iter().filter(|(m, _)| m.as_str() != "commands") {
        assert!(
            uses(module, "commands").is_none(),
            "{module} uses commands: nothing in the library uses the CLI"
        );
    }
}

#[test]
fn the_checker_finds_a_cycle() {
    let mut graph = Graph::new();
    for (a, b) in [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")] {
        graph
            .entry(a.into())
            .or_default()
            .insert(b.into(), PathBuf::from(format!("{a}.rs")));
    }
    assert_eq!(
        cycle_from(&graph, "a"),
        Some(vec!["a".to_string(), "b".into(), "c".into()])
    );
    assert_eq!(cycle_from(&graph, "d"), None);
}

// ---------------------------------------------------------------------------------------------
// No production function over 100 lines (issue 24): split at the natural seams instead.

/// The most lines a function of `src/` may span, from its `fn` line to its closing brace.
const MAX_FN_LINES: usize = 100;

/// Functions that another change is splitting; allowed over the limit until it lands (then
/// delete the entry). As `path name`.
const BEING_SPLIT: &[&str] = &[];

/// The source as bytes with comments, string and character literals turned into spaces
/// (newlines kept), so the braces left are code; same length, so offsets match the text.
fn code_only(text: &str) -> Vec<u8> {
    let b = text.as_bytes();
    let mut out = b.to_vec();
    let blank = |out: &mut Vec<u8>, from: usize, to: usize| {
        for c in &mut out[from..to.min(b.len())] {
            if *c != b'\n' {
                *c = b' ';
            }
        }
    };
    let mut i = 0;
    while i < b.len() {
        let rest = &b[i..];
        let ident_before = i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_');
        if rest.starts_with(b"//") {
            let end = rest
                .iter()
                .position(|&c| c == b'\n')
                .map_or(b.len(), |p| i + p);
            blank(&mut out, i, end);
            i = end;
        } else if rest.starts_with(b"/*") {
            let (mut depth, mut j) = (0usize, i);
            while j < b.len() {
                if b[j..].starts_with(b"/*") {
                    depth += 1;
                    j += 2;
                } else if b[j..].starts_with(b"*/") {
                    depth -= 1;
                    j += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    j += 1;
                }
            }
            blank(&mut out, i, j);
            i = j;
        } else if let Some(end) = (!ident_before).then(|| raw_string_end(b, i)).flatten() {
            blank(&mut out, i, end);
            i = end;
        } else if b[i] == b'"' {
            let mut j = i + 1;
            while j < b.len() && b[j] != b'"' {
                j += if b[j] == b'\\' { 2 } else { 1 };
            }
            blank(&mut out, i, j + 1);
            i = j + 1;
        } else if b[i] == b'\'' {
            // A character literal ('{', '\n', '\u{7f}'), or a lifetime ('a), left as it is.
            let end = if rest.get(1) == Some(&b'\\') {
                // after the backslash at least one character, then the closing quote
                rest.get(3..)
                    .and_then(|r| r.iter().position(|&c| c == b'\''))
                    .map(|p| i + 3 + p + 1)
            } else {
                let len = text
                    .get(i + 1..)
                    .and_then(|s| s.chars().next())
                    .map_or(1, char::len_utf8);
                (rest.get(1 + len) == Some(&b'\'')).then_some(i + 2 + len)
            };
            match end {
                Some(end) => {
                    blank(&mut out, i, end);
                    i = end;
                }
                None => i += 1,
            }
        } else {
            i += 1;
        }
    }
    out
}

/// Where a raw string (`r"…"`, `r#"…"#`, `br"…"`) starting at `i` ends.
fn raw_string_end(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i + usize::from(b[i] == b'b');
    if b.get(j) != Some(&b'r') {
        return None;
    }
    j += 1;
    let hashes = b[j..].iter().take_while(|&&c| c == b'#').count();
    j += hashes;
    if b.get(j) != Some(&b'"') {
        return None;
    }
    let mut close = vec![b'"'];
    close.extend(std::iter::repeat_n(b'#', hashes));
    let at = b[j + 1..].windows(close.len()).position(|w| w == close)?;
    Some(j + 1 + at + close.len())
}

/// The end (exclusive) of the item starting at `i`: its `;`, or its `{…}` block.
fn item_end(code: &[u8], mut i: usize) -> usize {
    let mut depth = 0i32;
    while i < code.len() {
        match code[i] {
            b'(' | b'[' => depth += 1,
            b')' | b']' => depth -= 1,
            b';' if depth == 0 => return i + 1,
            b'{' if depth == 0 => return block_end(code, i),
            _ => {}
        }
        i += 1;
    }
    code.len()
}

/// The end (exclusive) of the `{…}` block opening at `open`.
fn block_end(code: &[u8], open: usize) -> usize {
    let mut depth = 0usize;
    for (k, &c) in code.iter().enumerate().skip(open) {
        match c {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return k + 1;
                }
            }
            _ => {}
        }
    }
    code.len()
}

/// `code` without its `#[cfg(test)]` items (blanked), and the files those items name
/// (`#[cfg(test)] mod tests;`, with or without `#[path]`), relative to `file`.
fn without_test_items(file: &Path, text: &str, mut code: Vec<u8>) -> (Vec<u8>, Vec<PathBuf>) {
    const MARK: &[u8] = b"#[cfg(test)]";
    let mut test_files = Vec::new();
    let mut from = 0;
    while let Some(at) = code[from..].windows(MARK.len()).position(|w| w == MARK) {
        let start = from + at;
        let end = item_end(&code, start + MARK.len());
        let item = &text[start..end];
        let decl: Vec<&str> = item.split_whitespace().collect();
        if let [.., "mod", name] = decl.as_slice() {
            if let Some(name) = name.strip_suffix(';') {
                let dir = match file.file_name().and_then(|n| n.to_str()) {
                    Some("mod.rs" | "lib.rs") => file.parent().expect("a dir").to_path_buf(),
                    _ if item.contains("#[path") => file.parent().expect("a dir").to_path_buf(),
                    _ => file.with_extension(""),
                };
                let named = item
                    .split("#[path = \"")
                    .nth(1)
                    .and_then(|p| p.split('"').next());
                test_files.push(dir.join(named.unwrap_or(&format!("{name}.rs"))));
            }
        }
        for c in &mut code[start..end] {
            if *c != b'\n' {
                *c = b' ';
            }
        }
        from = end;
    }
    (code, test_files)
}

/// Each function of `code` with a body: (its name, first line, last line), 1-based.
fn functions(code: &[u8]) -> Vec<(String, usize, usize)> {
    let line_of = |at: usize| code[..at].iter().filter(|&&c| c == b'\n').count() + 1;
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut found = Vec::new();
    let mut i = 0;
    while let Some(at) = code[i..].windows(3).position(|w| w == b"fn ") {
        let start = i + at;
        i = start + 3;
        if start > 0 && ident(code[start - 1]) {
            continue;
        }
        let name_at = i + code[i..]
            .iter()
            .take_while(|c| c.is_ascii_whitespace())
            .count();
        let name: String = code[name_at..]
            .iter()
            .take_while(|&&c| ident(c))
            .map(|&c| c as char)
            .collect();
        if name.is_empty() || name.as_bytes()[0].is_ascii_digit() {
            continue; // a `fn(..)` pointer type
        }
        let end = item_end(code, name_at);
        if code[end - 1] == b'}' {
            found.push((name, line_of(start), line_of(end - 1)));
        }
    }
    found
}

/// (lines, "path name", first line) of every production function of `src/`.
fn function_lengths() -> Vec<(usize, String, usize)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    let mut test_files = BTreeSet::new();
    let mut per_file = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("readable source");
        let (code, tests) = without_test_items(file, &text, code_only(&text));
        test_files.extend(tests);
        per_file.push((file.clone(), code));
    }
    let mut lengths = Vec::new();
    for (file, code) in per_file {
        if test_files.contains(&file) {
            continue;
        }
        let shown = file.strip_prefix(root).expect("under the crate").display();
        for (name, first, last) in functions(&code) {
            lengths.push((last - first + 1, format!("{shown} {name}"), first));
        }
    }
    lengths
}

#[test]
fn no_production_function_over_100_lines() {
    let lengths = function_lengths();
    assert!(
        lengths.len() > 500,
        "the walk found the functions: {}",
        lengths.len()
    );
    let long: Vec<String> = lengths
        .iter()
        .filter(|(n, what, _)| *n > MAX_FN_LINES && !BEING_SPLIT.contains(&what.as_str()))
        .map(|(n, what, line)| format!("{what} (line {line}): {n} lines"))
        .collect();
    assert!(
        long.is_empty(),
        "over {MAX_FN_LINES} lines, split them at their seams: {long:#?}"
    );
}

#[test]
fn the_length_checker_reads_rust() {
    let text = r##"
fn short() -> Result<(), String> {
    let brace = '{';
    let s = "}}} fn fake() {";
    let quote = ('\'', '\\', "\"{");
    let r = r#"fn raw() { "#;
    // fn commented() {
    /* } */
    let f: fn(u8) -> u8 = |x| x;
    let _ = (brace, s, r, f);
    Ok(())
}

trait T {
    fn declared(&self) -> [u8; 4];
}

fn long<'a>(x: &'a str) -> &'a str {
    x
}

#[cfg(test)]
mod tests {
    fn helper() {}
}

#[cfg(test)]
#[path = "x_tests.rs"]
mod more;
"##;
    let file = Path::new("/src/policy/x.rs");
    let (code, tests) = without_test_items(file, text, code_only(text));
    assert_eq!(code.len(), text.len());
    assert_eq!(tests, vec![PathBuf::from("/src/policy/x_tests.rs")]);
    assert_eq!(
        functions(&code),
        vec![("short".to_string(), 2, 12), ("long".to_string(), 18, 20)]
    );
    let (_, tests) = without_test_items(
        Path::new("/src/querylog/mod.rs"),
        "#[cfg(test)]\nmod tests;\n",
        code_only("#[cfg(test)]\nmod tests;\n"),
    );
    assert_eq!(tests, vec![PathBuf::from("/src/querylog/tests.rs")]);
}
