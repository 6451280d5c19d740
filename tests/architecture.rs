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
