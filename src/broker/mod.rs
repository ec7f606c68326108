//! The broker contract, and nothing broker-specific: what every broker folder under
//! `src/brokers/` implements, and all that the broker-neutral roles (runner, workload, nemesis,
//! CLI) may know about a broker.
//!
//! - [`client`]: [`Broker`], [`Producer`], [`Consumer`], [`Processor`] and the honest
//!   [`Outcome`] of every operation (ok / fail only when surely not applied / info).
//! - [`driver`]: [`BrokerDriver`] (name, sizes, port block, declared [`Capabilities`], option
//!   table, factories) and [`BrokerKind`], a copyable handle on a registered driver.
//!
//! A broker declares its nodes in a `crate::nodes::NodeRecipe`; the one local lifecycle
//! (`crate::nodes::LocalCluster`) runs it.

pub mod client;
pub mod driver;

pub use client::*;
pub use driver::{BrokerDriver, BrokerKind, Capabilities, ClientContext, OptionError};
