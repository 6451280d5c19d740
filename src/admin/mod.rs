//! The admin listener: serves the Prometheus metrics (`crate::metrics`), health check,
//! authenticated JSON API, and the analyst dashboard (`ui`).

pub mod api;
pub mod ui;
