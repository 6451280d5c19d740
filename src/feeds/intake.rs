//! A download's way in: the guards, then the file moves. A good download becomes the copy in
//! force (`NAME.list`, by rename); a rejected one that is a list is kept as `NAME.rejected` for
//! an operator; anything else is deleted. Blocking file work: run it off the runtime.

use super::guard::{self, Rejected};
use super::store::{self, StoreError};
use super::FeedSpec;

pub(super) enum Judged {
    Rejected(Rejected),
    Store(String),
}

/// The guards, then the file moves: a good download becomes `NAME.list`; a rejected one that
/// is a list is kept as `NAME.rejected` for an operator; anything else is deleted. `None`: the
/// download is the copy in force byte for byte (no rewrite, no reload).
pub(super) fn judge_download(
    spec: &FeedSpec,
    bytes: &[u8],
    content_type: Option<&str>,
    previous: usize,
    max_shrink: f64,
) -> Result<Option<guard::Passed>, Judged> {
    let files = &spec.files;
    let same_size = std::fs::metadata(&files.list).is_ok_and(|m| m.len() == bytes.len() as u64);
    if same_size && std::fs::read(&files.list).is_ok_and(|current| current == bytes) {
        return Ok(None);
    }
    guard::check_content(content_type, bytes).map_err(Judged::Rejected)?;
    store::write_atomic(&files.download, bytes).map_err(|e| Judged::Store(e.to_string()))?;
    match guard::check_list(
        &files.download,
        spec.format,
        spec.category,
        previous,
        max_shrink,
    ) {
        Ok(passed) => {
            store::replace(&files.download, &files.list)
                .map_err(|e| Judged::Store(e.to_string()))?;
            Ok(Some(passed))
        }
        Err(r) => {
            let kept = if r.acceptable() {
                store::replace(&files.download, &files.rejected)
            } else {
                std::fs::remove_file(&files.download).map_err(|source| StoreError::Io {
                    path: files.download.clone(),
                    source,
                })
            };
            if let Err(e) = kept {
                tracing::warn!(list = %spec.name, error = %e, "cannot set the rejected download aside");
            }
            Err(Judged::Rejected(r))
        }
    }
}
