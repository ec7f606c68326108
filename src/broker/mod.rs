//! The broker contract, and nothing broker-specific: what every broker folder under
//! `src/brokers/` implements, and all that the broker-neutral roles (runner, workload, nemesis,
//! CLI) may know about a broker.
//!
//! - [`client`]: [`Broker`], [`Producer`], [`Consumer`], [`Processor`] and the honest
//!   [`Outcome`] of every operation (ok / fail only when surely not applied / info).
//! - [`props`]: client properties, the mode's preset with the user's keys over it, recorded
//!   with secrets redacted.
//! - [`driver`]: [`BrokerDriver`] (name, sizes, port block, declared [`Capabilities`], option
//!   table, factories) and [`BrokerKind`], a copyable handle on a registered driver.
//!
//! A broker declares its nodes in a `crate::nodes::NodeRecipe`; the one local lifecycle
//! (`crate::nodes::LocalCluster`) runs it.

pub mod client;
pub mod driver;
pub mod props;

pub use client::*;
pub use driver::{BrokerDriver, BrokerKind, Capabilities, ClientContext, OptionError};
pub use props::{ClientDefaults, ClientRole, ClientSettings, ClientTables, Props, ServerFile};
