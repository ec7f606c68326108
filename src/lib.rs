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
//! | [`broker`] | the broker contract: client traits, [`broker::BrokerDriver`], declared [`broker::Capabilities`], [`broker::BrokerKind`] | [`nodes`] (a driver hands out a [`nodes::NodeRecipe`]) |
//! | [`brokers`] | one folder per broker (driver, client adapter, node recipe) and the registry [`brokers::ALL`], the only list of brokers | [`broker`], [`nodes`] |
//! | [`nodes`] | nodes whatever the broker: the [`nodes::NodeRecipe`] a broker declares, the one local lifecycle [`nodes::LocalCluster`], the [`nodes::Cluster`] trait the other roles act on, pid files and signals, Maven and Go installs, Toxiproxy | no broker |
//! | [`faults`] | fault packages over what a [`nodes::Cluster`] and its proxies offer, the seeded schedule, the nemesis that carries it out and the sweeping heal | [`nodes`], [`history`] |
//! | [`workload`] | queue, txn and pipeline workloads; produce, consume, crash roles | [`broker`]'s client traits |
//! | [`campaign`] | strict TOML campaign files; refuses what a driver does not declare | [`broker`], [`brokers`] (by name) |
//! | [`plan`] | campaign + command line → one run's [`plan::Plan`] (overrides applied, seed, run id, placement), recorded in the history header | [`campaign`], [`broker`] |
//! | [`runner`] | runs a plan: nodes → clients → workload + nemesis → heal → drain → history → verdict | all of the above |
//! | [`audit`] | `ackcheck audit`: the user's own configuration, one campaign per fault family, one table | [`campaign`], [`broker`] |
//! | [`matrix`] | `ackcheck matrix`: a matrix file → cells (campaign × variant × seed, overrides merged), results.jsonl, resume | [`campaign`] |
//! | [`analysis`] | `ackcheck analyze`: a matrix's results → comparison tables, guarantees answered with links to cells, anomaly timelines | [`matrix`], [`checker`], [`report`]'s plots |
//! | [`diff`] | `ackcheck diff`: two sets of verdicts paired by campaign and seed, what got weaker or stronger | verdict JSON, history headers |
//! | [`cli`] | the thin `ackcheck` command line | [`runner`], [`checker`] |
//!
//! A new broker is a folder under `src/brokers/` implementing [`broker::BrokerDriver`], the
//! client traits and a [`nodes::NodeRecipe`], plus one line in [`brokers::ALL`].

pub mod analysis;
pub mod audit;
pub mod broker;
pub mod brokers;
pub mod campaign;
pub mod checker;
pub mod cli;
pub mod diff;
pub mod faults;
pub mod history;
pub mod matrix;
pub mod nodes;
pub mod plan;
pub mod report;
pub mod runner;
pub mod seeded;
pub mod synth;
pub mod workload;
