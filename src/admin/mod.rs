//! The admin listener: Prometheus metrics, health check, authenticated JSON API.

pub mod api;
pub mod metrics;
