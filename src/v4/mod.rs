//! /v4: a report status board. Reports are stored (DynamoDB or memory), status
//! changes travel as commands through the bus to a single writer per report, and
//! the resulting facts reach every open stream of the report's owner on every
//! instance.
//!
//! Request path: `routes` (validate, publish a command) → `writer` (conditional
//! write, publish a fact) → `facts` (every instance) → the user's streams.

pub mod dynamodb;
pub mod facts;
pub mod memory;
pub mod report;
pub mod routes;
pub mod store;
pub mod writer;

use std::sync::Arc;

use crate::AppState;

/// Starts the writer and this instance's fact reader.
pub fn start(app: &Arc<AppState>) {
    writer::start(app);
    facts::start_consumer(app);
}
