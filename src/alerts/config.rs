//! The `[[alerts]]`, `[smtp]` and `[alerting]` tables live in `crate::config::alerts` (the
//! config aggregates every section; this module reads them).

pub use crate::config::alerts::*;
