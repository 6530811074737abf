//! Detection: rule files, the SQL sandbox they run in, and the alerts they raise.
//!
//! The pieces, in the order data flows through them:
//! - [`schema`]: the tables and columns of INTERFACE.md as SQLite DDL;
//! - [`precheck`]: sqlparser's reading of a query before SQLite sees it (first wall);
//! - [`sandbox`]: an in-memory SQLite database with an authorizer, a time budget and limits
//!   (second wall), and [`functions`] (`REGEXP`, `regex_match`);
//! - [`rules`]: rule files (TOML), their validation and fixtures;
//! - [`engine`]: one evaluation of every rule over one scan;
//! - [`alerts`]: rows become alerts with stable ids, folded within their dedup window.
//!
//! Everything here is pure computation over values passed in: no clock reads (callers pass
//! `now`), no file or network I/O except reading rule files the caller names. This module is
//! behind the `detection` feature, which procmond never enables.

pub mod alerts;
pub mod engine;
pub mod functions;
pub mod precheck;
pub mod rules;
pub mod sandbox;
pub mod schema;
