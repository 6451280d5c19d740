//! The claimable hosting and cloud suffixes (`data/takeover-suffixes.txt`, compiled in).

use std::sync::OnceLock;

const TEXT: &str = include_str!("../../data/takeover-suffixes.txt");

fn list() -> &'static [String] {
    static LIST: OnceLock<Vec<String>> = OnceLock::new();
    LIST.get_or_init(|| {
        TEXT.lines()
            .map(|l| l.split('#').next().unwrap_or("").trim())
            .filter(|l| !l.is_empty())
            .map(|l| l.trim_end_matches('.').to_ascii_lowercase())
            .collect()
    })
}

/// The listed suffix `name` sits under (at a label boundary), if any.
pub fn claimable_suffix(name: &str) -> Option<&'static str> {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    list()
        .iter()
        .find(|s| {
            name.len() > s.len()
                && name.ends_with(s.as_str())
                && name.as_bytes()[name.len() - s.len() - 1] == b'.'
        })
        .map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffix_at_label_boundary_only() {
        assert_eq!(
            claimable_suffix("shop-x.herokuapp.com."),
            Some("herokuapp.com")
        );
        assert_eq!(claimable_suffix("a.b.GitHub.io"), Some("github.io"));
        assert_eq!(claimable_suffix("notherokuapp.com"), None);
        assert_eq!(claimable_suffix("herokuapp.com"), None);
        assert!(list().len() > 40);
    }
}
