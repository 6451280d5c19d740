//! Sanity guards: is a download a list, and not one that would wipe protection? A download
//! that fails any of them never reaches the policy; the last good copy stays in force.
//!
//! The list itself is judged by the policy's own parser (`policy::parse_list_file`), so a
//! download counts exactly the entries and bad lines the policy would load.

use std::path::Path;

use crate::policy::{parse_list_file, Category, ListError, ListFormat, ListSpec};

#[derive(Debug, thiserror::Error)]
pub enum Rejected {
    #[error("the feed sent content type {0:?}, not a text list")]
    ContentType(String),
    #[error("the download is an HTML page, not a list")]
    Html,
    #[error("the download is not text ({0})")]
    Binary(String),
    #[error("the download has more bad lines ({bad}) than entries ({good})")]
    BadLines { good: usize, bad: usize },
    #[error("the download has {new} entries against {old} in the last good copy: it shrinks by {pct:.0} %, more than max_shrink allows ({max_pct:.0} %)")]
    Shrink {
        old: usize,
        new: usize,
        pct: f64,
        max_pct: f64,
    },
    #[error("cannot judge the download: {0}")]
    Unreadable(String),
}

impl Rejected {
    /// Label for metrics and the API.
    pub fn kind(&self) -> &'static str {
        match self {
            Rejected::ContentType(_) => "content_type",
            Rejected::Html => "html",
            Rejected::Binary(_) => "binary",
            Rejected::BadLines { .. } => "bad_lines",
            Rejected::Shrink { .. } => "shrink",
            Rejected::Unreadable(_) => "unreadable",
        }
    }

    /// An operator may put it in force: it is a list, only a suspicious one. An HTML page or
    /// binary never becomes the copy in force (after a restart it would be no list at all).
    pub fn acceptable(&self) -> bool {
        matches!(
            self,
            Rejected::Shrink { .. } | Rejected::BadLines { good: 1.., .. }
        )
    }

    /// The entries of the download, when it parsed as a list.
    pub fn entries(&self) -> Option<usize> {
        match self {
            Rejected::Shrink { new, .. } => Some(*new),
            Rejected::BadLines { good, .. } => Some(*good),
            _ => None,
        }
    }
}

/// What a download that passed holds.
#[derive(Debug, Clone, Copy)]
pub struct Passed {
    pub entries: usize,
    pub bad_lines: usize,
}

/// Before parsing: the content type and the first bytes.
pub fn check_content(content_type: Option<&str>, body: &[u8]) -> Result<(), Rejected> {
    if let Some(ct) = content_type {
        let mime = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if mime == "text/html" || mime == "application/xhtml+xml" {
            return Err(Rejected::Html);
        }
        let text_like = (mime.starts_with("text/") && mime != "text/xml")
            || mime == "application/octet-stream"
            || mime.is_empty();
        if !text_like {
            return Err(Rejected::ContentType(mime));
        }
    }
    if looks_like_html(body) {
        return Err(Rejected::Html);
    }
    if body.contains(&0) {
        return Err(Rejected::Binary("NUL bytes".into()));
    }
    if let Err(e) = std::str::from_utf8(body) {
        return Err(Rejected::Binary(format!(
            "not UTF-8 at byte {}",
            e.valid_up_to()
        )));
    }
    Ok(())
}

/// No list format has a `<` tag in its head; every HTML error or login page has one.
fn looks_like_html(body: &[u8]) -> bool {
    let head = &body[..body.len().min(1024)];
    let head = String::from_utf8_lossy(head).to_ascii_lowercase();
    let start = head.trim_start_matches(['\u{feff}', ' ', '\t', '\r', '\n']);
    start.starts_with("<?xml")
        || ["<!doctype html", "<html", "<head", "<body", "<title"]
            .iter()
            .any(|tag| head.contains(tag))
}

/// Parses the downloaded file as the policy would, then applies the bad-line and shrink
/// guards against the last good copy's `previous` entries.
pub fn check_list(
    file: &Path,
    format: ListFormat,
    category: Category,
    previous: usize,
    max_shrink: f64,
) -> Result<Passed, Rejected> {
    let spec = ListSpec {
        name: "download".into(),
        category,
        path: file.to_path_buf(),
        format,
        action: None,
    };
    let parsed = match parse_list_file(&spec) {
        Ok(p) => p,
        Err(ListError::NotText { why, .. }) => return Err(Rejected::Binary(why)),
        Err(ListError::NothingValid { bad_lines, .. }) => {
            return Err(Rejected::BadLines {
                good: 0,
                bad: bad_lines,
            })
        }
        Err(e) => return Err(Rejected::Unreadable(e.to_string())),
    };
    let (good, bad) = (parsed.entries, parsed.bad_lines);
    if bad > good {
        return Err(Rejected::BadLines { good, bad });
    }
    if previous > 0 && good < previous {
        let shrink = (previous - good) as f64 / previous as f64;
        if shrink > max_shrink {
            return Err(Rejected::Shrink {
                old: previous,
                new: good,
                pct: shrink * 100.0,
                max_pct: max_shrink * 100.0,
            });
        }
    }
    Ok(Passed {
        entries: good,
        bad_lines: bad,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judge(text: &str, previous: usize) -> Result<Passed, Rejected> {
        check_content(Some("text/plain; charset=utf-8"), text.as_bytes())?;
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("d.tmp");
        std::fs::write(&f, text).unwrap();
        check_list(&f, ListFormat::Auto, Category::Threat, previous, 0.5)
    }

    #[test]
    fn html_binary_and_content_types_are_rejected() {
        let page = "\n<!DOCTYPE html><html><body>Service unavailable</body></html>";
        assert!(matches!(
            check_content(Some("text/plain"), page.as_bytes()),
            Err(Rejected::Html)
        ));
        assert!(matches!(
            check_content(Some("text/html"), b"a.example\n"),
            Err(Rejected::Html)
        ));
        assert!(matches!(
            check_content(Some("image/png"), b"a.example\n"),
            Err(Rejected::ContentType(_))
        ));
        assert!(matches!(
            check_content(None, b"a\0b"),
            Err(Rejected::Binary(_))
        ));
        assert!(matches!(
            check_content(None, &[0xff, 0xfe, 0x41]),
            Err(Rejected::Binary(_))
        ));
        assert!(check_content(Some("application/octet-stream"), b"a.example\n").is_ok());
    }

    #[test]
    fn bad_lines_and_shrink_guards() {
        let ok = judge("a.example\nb.example\nc.example\nd.example\n", 0).unwrap();
        assert_eq!(ok.entries, 4);
        let garbage = judge("a.example\n%%% ???\n$$$ ???\n", 0).unwrap_err();
        assert!(
            matches!(garbage, Rejected::BadLines { good: 1, bad: 2 }),
            "{garbage}"
        );
        assert!(garbage.acceptable());
        // 4 -> 2 is exactly 50 %: allowed; 4 -> 1 is 75 %: rejected, but acceptable.
        assert!(judge("a.example\nb.example\n", 4).is_ok());
        let shrunk = judge("a.example\n", 4).unwrap_err();
        assert!(
            matches!(shrunk, Rejected::Shrink { old: 4, new: 1, .. }),
            "{shrunk}"
        );
        assert!(shrunk.acceptable());
        let empty = judge("# nothing today\n", 4).unwrap_err();
        assert!(matches!(empty, Rejected::Shrink { new: 0, .. }), "{empty}");
        assert!(!Rejected::Html.acceptable());
    }
}
