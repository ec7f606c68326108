//! ackcheck: finds out what message brokers really deliver.
//!
//! Roles (see DESIGN.md): [`history`] (the event log), [`checker`] (history in, verdict out),
//! [`cluster`] (local broker nodes), [`toxiproxy`] (the fault proxy).

pub mod campaign;
pub mod checker;
pub mod cli;
pub mod client;
pub mod cluster;
pub mod history;
pub mod nemesis;
pub mod report;
pub mod runner;
pub mod synth;
pub mod toxiproxy;
pub mod workload;
