//! The admin listener: serves the Prometheus metrics (`crate::metrics`), health check, authenticated JSON API.

pub mod api;
