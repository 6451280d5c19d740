//! Turns serde errors into `file:line: key.path: message` problems, and finds all of them.
//!
//! serde stops at the first error. To report every problem at once we blank out the offending
//! key-value (spaces over every byte, newlines kept, so byte offsets and line numbers never move)
//! and deserialize again, up to a bound. The key path comes from the original document.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use toml_edit::{Document, Item, Table, Value};

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    pub file: PathBuf,
    /// 1-based line, when the problem has a place in the file.
    pub line: Option<usize>,
    /// Key path such as `resolver.cache_size` or `lists[2].path` (empty for file-level problems).
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// `Document::parse`, None when the parser panics: toml_edit 0.23.10 panics ("all items
/// have spans") on some malformed files (found by `fuzz/` target `config`); a bad config must
/// be a problem to report, never a crash of `dnsward check` or `serve`.
fn parse_document(text: &str) -> Option<Result<Document<String>, toml_edit::TomlError>> {
    std::panic::catch_unwind(|| Document::parse(text.to_string())).ok()
}

/// How many problems one file may report before we stop looking (bounds the retry loop).
const MAX_PROBLEMS: usize = 64;

pub(crate) fn deserialize_all<T: DeserializeOwned>(
    text: &str,
    path: &Path,
) -> Result<T, Vec<ConfigProblem>> {
    // The syntax first, with the `toml` crate: toml_edit, which finds each problem's key and
    // line below, panics on some invalid files (found by fuzz target `config`); a file the
    // `toml` crate accepts never reaches that path.
    if let Err(e) = toml::from_str::<toml::Table>(text) {
        let line = e.span().map(|s| {
            text.as_bytes()[..s.start.min(text.len())]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
                + 1
        });
        return Err(vec![ConfigProblem {
            file: path.to_path_buf(),
            line,
            key: String::new(),
            message: format!("not valid TOML: {}", e.message().trim()),
        }]);
    }
    let locator = Locator::new(text, path);
    let doc = match parse_document(text) {
        Some(Ok(doc)) => doc,
        None => {
            return Err(vec![ConfigProblem {
                file: path.to_path_buf(),
                line: None,
                key: String::new(),
                message: "not valid TOML: the TOML parser gave up on this file".into(),
            }]);
        }
        Some(Err(e)) => {
            let line = e.span().map(|s| locator.line_of(s.start));
            return Err(vec![ConfigProblem {
                file: path.to_path_buf(),
                line,
                key: String::new(),
                message: format!("not valid TOML: {}", e.message().trim()),
            }]);
        }
    };
    let mut current = text.as_bytes().to_vec();
    let mut problems = Vec::new();
    let mut blanked: Vec<Range<usize>> = Vec::new();
    while problems.len() < MAX_PROBLEMS {
        let current_text = std::str::from_utf8(&current).expect("blanking keeps UTF-8");
        let err = match toml::from_str::<T>(current_text) {
            Ok(value) if problems.is_empty() => return Ok(value),
            Ok(_) => return Err(problems),
            Err(e) => e,
        };
        let message = err.message().trim().to_string();
        let found = err
            .span()
            .and_then(|span| find(doc.as_table(), span.start, &mut Vec::new()));
        match found {
            Some((key, range))
                if !blanked
                    .iter()
                    .any(|b| b.start <= range.start && range.end <= b.end) =>
            {
                problems.push(ConfigProblem {
                    file: path.to_path_buf(),
                    line: Some(locator.line_of(range.start.max(err.span().map_or(0, |s| s.start)))),
                    key,
                    message,
                });
                for b in &mut current[range.clone()] {
                    if *b != b'\n' && *b != b'\r' {
                        *b = b' ';
                    }
                }
                blanked.push(range);
            }
            _ => {
                problems.push(ConfigProblem {
                    file: path.to_path_buf(),
                    line: err.span().map(|s| locator.line_of(s.start)),
                    key: String::new(),
                    message,
                });
                return Err(problems);
            }
        }
    }
    Err(problems)
}

/// Finds the innermost key-value (or table) whose text contains `pos`: its key path and the byte
/// range to blank so that the document stays valid TOML without it.
fn find(table: &Table, pos: usize, path: &mut Vec<String>) -> Option<(String, Range<usize>)> {
    for (key, item) in table.iter() {
        let key_span = table.key(key).and_then(|k| k.span());
        path.push(key.to_string());
        let hit = match item {
            Item::Table(t) => find_in_table(t, pos, path),
            Item::ArrayOfTables(arr) => arr.iter().enumerate().find_map(|(i, t)| {
                let last = path.pop().expect("pushed above");
                path.push(format!("{last}[{i}]"));
                let hit = find_in_table(t, pos, path);
                path.pop();
                path.push(last);
                hit
            }),
            Item::Value(v) => {
                let value_span = v.span();
                let whole = match (key_span.clone(), value_span.clone()) {
                    (Some(k), Some(v)) => Some(k.start..v.end),
                    _ => None,
                };
                match whole {
                    Some(range) if range.contains(&pos) => {
                        Some((join(path, inner_index(v, pos)), range))
                    }
                    _ => None,
                }
            }
            Item::None => None,
        };
        path.pop();
        if hit.is_some() {
            return hit;
        }
    }
    None
}

/// A `[table]` or `[[array]]` entry: a key inside it, or else the table itself (header + keys).
fn find_in_table(t: &Table, pos: usize, path: &mut Vec<String>) -> Option<(String, Range<usize>)> {
    if let Some(hit) = find(t, pos, path) {
        return Some(hit);
    }
    let header = t.span()?;
    let end = t
        .iter()
        .filter_map(|(_, item)| item.span().map(|s| s.end))
        .max()
        .unwrap_or(header.end)
        .max(header.end);
    (header.start..end)
        .contains(&pos)
        .then(|| (join(path, None), header.start..end))
}

/// For an error inside an array value, the index of the element, so the key reads `listen[1]`.
fn inner_index(v: &Value, pos: usize) -> Option<usize> {
    match v {
        Value::Array(arr) => arr
            .iter()
            .position(|e| e.span().is_some_and(|s| s.contains(&pos))),
        _ => None,
    }
}

fn join(path: &[String], index: Option<usize>) -> String {
    let mut s = path.join(".");
    if let Some(i) = index {
        s.push_str(&format!("[{i}]"));
    }
    s
}

/// Maps key paths and byte offsets of the original text to line numbers.
pub(crate) struct Locator {
    file: PathBuf,
    line_starts: Vec<usize>,
    doc: Option<Document<String>>,
}

impl Locator {
    pub(crate) fn new(text: &str, path: &Path) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Self {
            file: path.to_path_buf(),
            line_starts,
            doc: parse_document(text).and_then(Result::ok),
        }
    }

    pub(crate) fn line_of(&self, offset: usize) -> usize {
        self.line_starts.partition_point(|&s| s <= offset)
    }

    /// A problem about `key` (dotted path such as `resolver.timeout_ms`); the line is where the
    /// key is written, or where its table starts, or none when the key is absent.
    pub(crate) fn problem(&self, key: &str, message: String) -> ConfigProblem {
        ConfigProblem {
            file: self.file.clone(),
            line: self.line_of_key(key),
            key: key.to_string(),
            message,
        }
    }

    fn line_of_key(&self, key: &str) -> Option<usize> {
        let doc = self.doc.as_ref()?;
        let mut table = doc.as_table();
        let mut best = None;
        let parts: Vec<&str> = key.split('.').collect();
        for (i, part) in parts.iter().enumerate() {
            let (name, index) = match part.split_once('[') {
                Some((n, rest)) => (n, rest.trim_end_matches(']').parse::<usize>().ok()),
                None => (*part, None),
            };
            if let Some(span) = table.key(name).and_then(|k| k.span()) {
                best = Some(span.start);
            }
            match (table.get(name), index) {
                (Some(Item::Table(t)), _) => {
                    if let Some(s) = t.span() {
                        best = Some(s.start);
                    }
                    table = t;
                }
                (Some(Item::ArrayOfTables(a)), Some(idx)) => match a.get(idx) {
                    Some(t) => {
                        if let Some(s) = t.span() {
                            best = Some(s.start);
                        }
                        table = t;
                    }
                    None => break,
                },
                _ => {
                    if i + 1 < parts.len() {
                        break;
                    }
                }
            }
        }
        best.map(|o| self.line_of(o))
    }
}
