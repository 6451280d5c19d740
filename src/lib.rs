//! dnsward: a protective recursive DNS resolver. See ARCHITECTURE.md for the map.

pub mod admin;
pub mod alerts;
pub mod audit;
pub mod blockpage;
pub mod cache;
pub mod commands;
pub mod config;
pub mod dnssec;
pub mod dnswire;
pub mod events;
pub mod feeds;
pub mod hostname;
pub mod instance;
pub mod memtrim;
pub mod metrics;
pub mod pipeline;
pub mod policy;
pub mod querylog;
pub mod refid;
pub mod resolver;
pub mod rfc6052;
pub mod rpzxfr;
pub mod server;
pub mod timefmt;
pub mod transport;
pub mod upstream;
