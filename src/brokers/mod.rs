//! The registry: the only list of brokers in ackcheck. Each broker is one folder here with its
//! driver (`mod.rs`), its client adapter (`client.rs`) and its local nodes (`node.rs`); adding a
//! broker is one folder and one line in [`ALL`].

use crate::broker::BrokerKind;

#[cfg(feature = "kafka")]
pub mod kafka;
#[cfg(feature = "nats")]
pub mod nats;
#[cfg(feature = "pulsar")]
pub mod pulsar;
#[cfg(feature = "rabbitmq")]
pub mod rabbitmq;
#[cfg(feature = "sqs")]
pub mod sqs;

/// Every broker this build knows (one cargo feature each), in the order help texts list them.
pub static ALL: &[BrokerKind] = &[
    #[cfg(feature = "kafka")]
    kafka::KIND,
    #[cfg(feature = "rabbitmq")]
    rabbitmq::KIND,
    #[cfg(feature = "sqs")]
    sqs::KIND,
    #[cfg(feature = "pulsar")]
    pulsar::KIND,
    #[cfg(feature = "nats")]
    nats::KIND,
];

/// The broker of this name, if this build knows it.
pub fn by_name(name: &str) -> Option<BrokerKind> {
    ALL.iter().copied().find(|b| b.name() == name)
}

/// The known names, for error messages: `"kafka", "rabbitmq", ...`.
pub fn names() -> String {
    ALL.iter()
        .map(|b| format!("\"{}\"", b.name()))
        .collect::<Vec<_>>()
        .join(", ")
}

impl<'de> serde::Deserialize<'de> for BrokerKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        by_name(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown broker \"{name}\"; expected one of {}", names())))
    }
}

impl clap::ValueEnum for BrokerKind {
    fn value_variants<'a>() -> &'a [Self] {
        ALL
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.name()).help(self.driver().describe()))
    }
}
