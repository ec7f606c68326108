//! ackcheck: finds out what message brokers really deliver.
//!
//! # Layout
//!
//! Roles as in DESIGN.md; a broker lives in one folder and everything else is broker-neutral.
//!
//! | module | role | knows |
//! |---|---|---|
//! | [`history`] | the event log (format v1): typed events, fsyncing writer, streaming reader | nothing else |
//! | [`checker`] | history in, verdict out (a pure function of a history) | [`history`] |
//! | [`report`] | the terminal verdict and the JSON verdict | [`checker`] |
//! | [`broker`] | the broker contract: client traits, [`broker::BrokerDriver`], declared [`broker::Capabilities`], [`broker::BrokerKind`] | [`nodes`]'s `Cluster` trait |
//! | [`brokers`] | one folder per broker (driver, client adapter, local nodes) and the registry [`brokers::ALL`], the only list of brokers | [`broker`], [`nodes`] |
//! | [`nodes`] | local nodes whatever the broker: the `Cluster` trait, pid files and signals, Maven and Go installs, Toxiproxy | no broker |
//! | [`nemesis`] | seeded fault schedules on what a `Cluster` and its proxies offer, and the sweeping heal | [`nodes`] |
//! | [`workload`] | queue, txn and pipeline workloads; produce, consume, crash roles | [`broker`]'s client traits |
//! | [`campaign`] | strict TOML campaign files; refuses what a driver does not declare | [`broker`], [`brokers`] (by name) |
//! | [`runner`] | one run: campaign → nodes → clients → workload + nemesis → history → verdict | all of the above |
//! | [`cli`] | the thin `ackcheck` command line | [`runner`], [`checker`] |
//!
//! A new broker is a folder under `src/brokers/` implementing [`broker::BrokerDriver`] (and the
//! client traits and `nodes::Cluster` it hands out) plus one line in [`brokers::ALL`].

pub mod broker;
pub mod brokers;
pub mod campaign;
pub mod checker;
pub mod cli;
pub mod history;
pub mod nemesis;
pub mod nodes;
pub mod report;
pub mod runner;
pub mod synth;
pub mod workload;
