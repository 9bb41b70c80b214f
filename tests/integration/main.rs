//! The one integration-test binary: the CLI against roots on disk (fast, no host services), and
//! the end-to-end suite against a real systemd user manager and Docker engine, and system mode in
//! a guest with systemd as PID 1.

mod bad_input;
mod commands;
#[path = "../e2e/harness.rs"]
mod e2e;
#[path = "../e2e/engine_proxy.rs"]
mod engine_proxy;
mod environment;
mod golden;
#[path = "../e2e/guest.rs"]
mod guest;
mod harness;
#[path = "../e2e/layered.rs"]
mod layered;
mod operations;
mod readme;
mod realistic;
mod selection;
mod stacks;
mod supervision;
mod swarm;
mod swarm_render;
mod sysmode;
mod systemd;
