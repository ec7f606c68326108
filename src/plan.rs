//! Campaign → Plan: everything one run needs, resolved once, before anything starts.
//!
//! A campaign file says what to test; the command line may change its seed and duration, switch
//! the faults off or point it at brokers ackcheck did not start. The [`Plan`] is the result of
//! all of that: the campaign as it will really run (overrides applied), the seed drawn, the run's
//! id and output directory, and where the nodes are ([`Placement`]). The runner runs a plan and
//! nothing else, and the history header records the plan ([`Plan::header`]), so a history says
//! exactly what ran.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::broker::{BrokerKind, ClientContext, LogSink};
use crate::campaign::{Campaign, CampaignError};
use crate::history::{Guarantee, Header, FORMAT_VERSION};
use crate::workload::Settings;

/// What `ackcheck run` was asked to do.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub campaign: PathBuf,
    pub out: Option<PathBuf>,
    pub seed: Option<u64>,
    pub duration: Option<Duration>,
    /// Use the campaign's `[external]` endpoints; start nothing; faults only through the user's
    /// commands and Toxiproxy declared there.
    pub external: bool,
    /// No broker faults and no client crashes.
    pub no_faults: bool,
    /// Leave a cluster this run started running afterwards.
    pub keep_cluster: bool,
    /// Leave the topics or queues this run created (else deleted at the end).
    pub keep_dests: bool,
    pub examples: usize,
    /// The evidence grade a holding claim needs (else exit 3).
    pub min_evidence: Option<crate::checker::evidence::Grade>,
    /// Record the history to nowhere and skip the check (measures what writing it costs).
    pub discard_history: bool,
    /// Also write the verdict as JUnit XML here.
    pub junit: Option<PathBuf>,
}

impl RunOptions {
    /// `run CAMPAIGN` with nothing else asked: the defaults the other commands start from.
    pub fn for_campaign(campaign: &Path) -> RunOptions {
        RunOptions {
            campaign: campaign.to_path_buf(),
            out: None,
            seed: None,
            duration: None,
            external: false,
            no_faults: false,
            keep_cluster: false,
            keep_dests: false,
            examples: 3,
            min_evidence: None,
            discard_history: false,
            junit: None,
        }
    }

    /// The options of `run CAMPAIGN --external` with nothing else asked: what `validate
    /// --external` resolves to check a campaign's [external] table.
    pub fn external_check(campaign: &Path) -> RunOptions {
        RunOptions {
            external: true,
            ..RunOptions::for_campaign(campaign)
        }
    }
}

/// A run asked for something its campaign cannot do (exit 2, like a bad campaign), as opposed
/// to infrastructure that failed (exit 4).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Why a plan could not be made: the campaign file, or what the command line asked of it.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Campaign(#[from] CampaignError),
    #[error(transparent)]
    Usage(#[from] UsageError),
}

/// Where the brokers of a run are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// Nodes ackcheck starts on this machine (or finds already up), behind its proxies.
    Local { nodes: usize },
    /// Brokers something else runs, reached at these client addresses; faults through the
    /// campaign's `[external]` commands and Toxiproxy.
    External { endpoints: Vec<String> },
}

/// One run, resolved.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The campaign as it runs: seed, duration and `--no-faults` applied.
    pub campaign: Campaign,
    /// The file it came from.
    pub campaign_file: PathBuf,
    /// The campaign's name (its `name`, else the file name).
    pub name: String,
    pub seed: u64,
    /// Unique to this run: added to topic, group and transactional-id names.
    pub run_id: String,
    /// Where the history, verdict and run log go.
    pub out: PathBuf,
    pub placement: Placement,
    /// Leave the topics or queues the run creates (`--keep-dests`); else deleted at its end.
    pub keep_dests: bool,
}

impl Plan {
    /// Load the campaign and apply what `opts` asks of it. Nothing is started or written.
    pub fn resolve(opts: &RunOptions) -> Result<Plan, PlanError> {
        let mut campaign = Campaign::load(&opts.campaign)?;
        if let Some(seed) = opts.seed {
            campaign.seed = Some(seed);
        }
        if let Some(d) = opts.duration {
            campaign.duration = d;
        }
        if opts.no_faults {
            campaign.nemesis.faults.clear();
            campaign.crashes.interval = 0.0;
        }
        let seed = *campaign.seed.get_or_insert_with(|| rand::random::<u32>() as u64);
        let name = campaign.name.clone().unwrap_or_else(|| stem(&opts.campaign));
        let run_id = format!(
            "{:x}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64 % 0xffff_ffff)
        );
        let out = opts
            .out
            .clone()
            .unwrap_or_else(|| PathBuf::from("runs").join(format!("{name}-seed{seed}-{run_id}")));
        let placement = match (&campaign.external, opts.external) {
            (Some(x), true) => {
                // Every fault the nemesis may make needs the user's command or Toxiproxy for it.
                let kinds = campaign
                    .nemesis
                    .faults
                    .iter()
                    .copied()
                    .chain(campaign.nemesis.steps.iter().map(|s| s.fault));
                for kind in kinds {
                    if let Some(why) = x.cannot(kind) {
                        return Err(UsageError(format!("{why} (or pass --no-faults)")).into());
                    }
                }
                Placement::External {
                    endpoints: x.endpoints.clone(),
                }
            }
            (None, true) => {
                return Err(UsageError(format!(
                    "--external needs an [external] table with `endpoints` in {}",
                    opts.campaign.display()
                ))
                .into())
            }
            (_, false) => Placement::Local { nodes: campaign.nodes },
        };
        if matches!(placement, Placement::Local { .. })
            && campaign.node_network() == crate::nodes::NodeNetwork::Namespaces
        {
            // Said before anything starts: a cluster must not be half built in namespaces.
            crate::nodes::netns::capability().map_err(UsageError)?;
        }
        Ok(Plan {
            campaign,
            campaign_file: opts.campaign.clone(),
            name,
            seed,
            run_id,
            out,
            placement,
            keep_dests: opts.keep_dests,
        })
    }

    pub fn broker(&self) -> BrokerKind {
        self.campaign.broker
    }

    /// The broker version the run asks for (the campaign's `version`, else the driver's default
    /// where it runs several); `None` for external brokers, whose version ackcheck cannot know.
    pub fn broker_version(&self) -> Option<String> {
        match self.placement {
            Placement::External { .. } => None,
            Placement::Local { .. } => self
                .campaign
                .version
                .clone()
                .or_else(|| self.broker().driver().versions().first().map(|v| v.to_string())),
        }
    }

    pub fn duration(&self) -> Duration {
        self.campaign.duration
    }

    /// The effective configuration, as the history header and the run log record it.
    pub fn config(&self) -> serde_json::Value {
        // A campaign is plain data (strings, numbers, tables): it always serializes.
        serde_json::to_value(&self.campaign).unwrap_or(serde_json::Value::Null)
    }

    /// The history header of this run: claim, broker, seed, effective configuration, the groups
    /// the claim is about, what positions mean, the run id and the campaign name.
    pub fn header(&self) -> Header {
        let mut header = Header {
            history: FORMAT_VERSION,
            claim: Some(self.campaign.claim()),
            broker: Some(self.broker().name().into()),
            seed: Some(self.seed),
            config: Some(self.config()),
            claim_groups: crate::workload::claim_groups(&self.campaign.workload),
            positions: Some(self.broker().driver().positions()),
            ..Header::default()
        };
        if let Some(version) = self.broker_version() {
            header.extra.insert("broker_version".into(), version.into());
        }
        header.extra.insert("run".into(), self.run_id.clone().into());
        header.extra.insert("campaign".into(), self.name.clone().into());
        header
    }

    /// What the driver needs to make this run's clients against `endpoints`.
    pub fn client_context<'a>(&'a self, endpoints: &'a [String], log: LogSink) -> ClientContext<'a> {
        ClientContext {
            endpoints,
            nodes: self.campaign.nodes,
            mode: self.campaign.mode,
            run: &self.run_id,
            dest_settings: &self.campaign.dest_settings,
            client: &self.campaign.client_settings,
            log,
        }
    }

    /// The workload's settings.
    pub fn workload_settings(&self) -> Settings {
        let c = &self.campaign;
        Settings {
            mode: c.mode,
            seed: self.seed,
            config: c.workload.clone(),
            crash_interval: c.crashes.interval,
            duration: c.duration,
            run: self.run_id.clone(),
            effects: (c.mode == Guarantee::ExactlyOnce).then(|| self.out.join("effects.log")),
            out: self.out.clone(),
        }
    }
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .map_or_else(|| "campaign".into(), |s| s.to_string_lossy().into_owned())
}
