//! The inventory: the agency's zones and host names, one a line; `#` starts a comment. A line
//! that is not a domain name is reported with its line number and skipped; a name listed
//! twice is audited once.

use std::collections::HashSet;
use std::path::Path;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryEntry {
    /// Lower case, ASCII (IDNA), without the trailing dot.
    pub name: String,
    pub line: u32,
}

/// A line that is not a name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryProblem {
    pub line: u32,
    pub text: String,
    pub reason: String,
}

#[derive(Debug, Clone, Default)]
pub struct Inventory {
    pub entries: Vec<InventoryEntry>,
    pub problems: Vec<InventoryProblem>,
}

impl Inventory {
    pub fn read(path: &Path) -> std::io::Result<Inventory> {
        Ok(Self::parse(&std::fs::read_to_string(path)?))
    }

    pub fn parse(text: &str) -> Inventory {
        let mut inv = Inventory::default();
        let mut seen = HashSet::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i as u32 + 1;
            let content = raw.split('#').next().unwrap_or("").trim();
            if content.is_empty() {
                continue;
            }
            match normalise(content) {
                Ok(name) => {
                    if seen.insert(name.clone()) {
                        inv.entries.push(InventoryEntry { name, line });
                    }
                }
                Err(reason) => inv.problems.push(InventoryProblem {
                    line,
                    text: content.chars().take(100).collect(),
                    reason: reason.to_string(),
                }),
            }
        }
        inv
    }
}

pub use crate::hostname::normalise;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_comments_bad_lines_and_duplicates() {
        let inv = Inventory::parse(
            "# agency zones\nAgency.gov.vn.\nwww.agency.gov.vn # the site\n\nnot a name\nhttps://x.vn/a\n192.0.2.1\nbad_-.vn\nwww.agency.gov.vn\nlocalhost\nbộ.vn\n",
        );
        let names: Vec<_> = inv
            .entries
            .iter()
            .map(|e| (e.name.as_str(), e.line))
            .collect();
        assert_eq!(
            names,
            vec![
                ("agency.gov.vn", 2),
                ("www.agency.gov.vn", 3),
                ("localhost", 10),
                ("xn--b-8xm.vn", 11)
            ]
        );
        let lines: Vec<u32> = inv.problems.iter().map(|p| p.line).collect();
        assert_eq!(lines, vec![5, 6, 7, 8], "{:?}", inv.problems);
    }
}
