//! End to end: composectl in a private `systemd --user` manager on the host's journald and
//! dockerd, and in system mode in the guest with systemd as PID 1 (testkit's e2e and guest).
//! Every test here is ignored in a plain `cargo test`; the README's test command
//! (`scripts/test.sh`) provisions the environment and runs them, and a missing piece is then a
//! failure that says what to set up.

mod database;
mod operations;
mod quick_start;
mod slices;
mod stacks;
mod supervision;
mod swarm;
mod sysmode;
mod systemd;
mod update_data;
