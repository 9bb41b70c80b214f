//! The CLI against roots on disk: fast, no host services (a few golden tests also run
//! `systemd-analyze verify` and are ignored without it). The builder is testkit's harness.

mod architecture;
mod bad_input;
mod commands;
mod dependencies;
mod golden;
mod readme;
mod realistic;
mod selection;
mod swarm_render;
