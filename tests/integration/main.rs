//! The one integration-test binary: the CLI against roots on disk (fast, no host services), and
//! the end-to-end suite against a real systemd user manager and Docker engine.

mod bad_input;
mod commands;
mod corpus;
#[path = "../e2e/harness.rs"]
mod e2e;
mod environment;
mod golden;
mod harness;
mod realistic;
mod stacks;
mod systemd;
