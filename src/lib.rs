//! iocsink: a DNS sinkhole for threat-intel indicators.
//!
//! Data flow: `server` (sockets) -> `handler` (request path) -> `policy` (verdict from
//! `matcher`, built from `config` and `feed`s) -> `answer` (blocked) or `cache`/`upstream`
//! (forwarded); blocks go to `blocklog`. `cli` is the command line.

pub mod answer;
pub mod asim;
pub mod blocklog;
pub mod cache;
pub mod cli;
pub mod config;
pub mod domain;
pub mod feed;
pub mod handler;
pub mod http;
pub mod logfile;
pub mod logtools;
pub mod matcher;
pub mod meta;
pub mod metrics;
pub mod policy;
pub mod querylog;
pub mod ratelimit;
pub mod reload;
pub mod remote;
pub mod server;
pub mod udp;
pub mod upstream;
pub mod wire;
