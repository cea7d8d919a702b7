//! Campaigns: a rules file deciding who to call, run against the customer
//! store by a driver task that places the calls.
//!
//! ```text
//!  import / API ──changed──┐
//!                          ▼
//!  store wakes ──▶ wake wheel ──due──▶ evaluate ──eligible──▶ ready queue
//!                     ▲                   │                       │
//!                     └──── next wake ────┘           pacer says how many
//!                                                                 ▼
//!           ledger (flushed) ──▶ INVITE ──▶ script ──▶ CDR + history ──▶ evaluate
//! ```
//!
//! A customer is looked at when its record changes, when a call to it ends,
//! and when the rules say its decision can next change; never by polling.
//! Every customer the campaign may still call has a wake in the store (one
//! due now while it waits in the ready queue), or an open attempt in the
//! ledger, so a restart finds everyone again.

mod call_task;
mod driver;
pub mod metrics;
mod pacer;
mod ready;
mod services;
mod state;
mod wake_wheel;

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

pub use driver::CampaignStatus;
use driver::Command;
pub use services::Services;
pub use state::{RunState, SavedCampaign};

use crate::config::CampaignConfig;
use crate::store::attempt::Cdr;
use crate::store::customer::CustomerId;

#[derive(Debug, thiserror::Error)]
pub enum CampaignError {
    #[error("no campaign named `{0}`; the [[campaign]] tables name: {1}")]
    Unknown(String, String),
    #[error("campaign `{0}` is not running")]
    NotRunning(String),
    #[error("campaign `{0}` is running already")]
    AlreadyRunning(String),
    #[error("campaign `{name}`: {message}")]
    Rules { name: String, message: String },
    #[error("campaign `{0}`: {1}")]
    Store(String, String),
}

struct Running {
    commands: mpsc::UnboundedSender<Command>,
    task: tokio::task::JoinHandle<()>,
}

/// The campaigns the configuration names, and the drivers of the running
/// ones.
pub struct Campaigns {
    configs: BTreeMap<String, CampaignConfig>,
    services: Arc<Services>,
    running: tokio::sync::Mutex<BTreeMap<String, Running>>,
}

impl Campaigns {
    pub fn new(configs: &[CampaignConfig], services: Arc<Services>) -> Campaigns {
        Campaigns {
            configs: configs
                .iter()
                .map(|config| (config.name.clone(), config.clone()))
                .collect(),
            services,
            running: tokio::sync::Mutex::new(BTreeMap::new()),
        }
    }

    /// After a restart: attempts that were in flight are ended as
    /// interrupted, and campaigns that were running or paused carry on.
    pub async fn recover(&self) -> Result<usize, CampaignError> {
        let store = Arc::clone(&self.services.store);
        let now = jiff::Timestamp::now();
        let (interrupted, saved) = tokio::task::spawn_blocking(move || {
            let open = store.open_attempts()?;
            let mut by_campaign: BTreeMap<String, Vec<CustomerId>> = BTreeMap::new();
            for attempt in &open {
                store.finish_attempt(&Cdr::interrupted(attempt, now))?;
                if let Some(customer) = CustomerId::parse(&attempt.customer) {
                    by_campaign
                        .entry(attempt.campaign.clone())
                        .or_default()
                        .push(customer);
                }
            }
            store.flush()?;
            let saved = store.campaigns()?;
            Ok::<_, crate::store::StoreError>((by_campaign, saved))
        })
        .await
        .map_err(|error| CampaignError::Store("*".into(), error.to_string()))?
        .map_err(|error| CampaignError::Store("*".into(), error.to_string()))?;
        let count = interrupted.values().map(Vec::len).sum();
        if count > 0 {
            tracing::warn!(
                attempts = count,
                "attempts in flight when the daemon stopped are marked interrupted"
            );
        }
        for (name, bytes) in saved {
            let Ok(saved) = serde_json::from_slice::<SavedCampaign>(&bytes) else {
                tracing::warn!(campaign = %name, "a saved campaign state is damaged; it stays stopped");
                continue;
            };
            if saved.state == RunState::Stopped || !self.configs.contains_key(&name) {
                continue;
            }
            let changed = interrupted.get(&name).cloned().unwrap_or_default();
            // A campaign that cannot carry on (its rules file broke while the
            // daemon was down) waits for an operator; the others go on.
            if let Err(error) = self.launch(&name, saved, changed).await {
                tracing::error!(campaign = %name, %error, "the campaign cannot carry on; fix it and run `dialhound campaign start`");
            }
        }
        Ok(count)
    }

    pub async fn start(&self, name: &str) -> Result<(), CampaignError> {
        let saved = self.saved(name)?;
        self.launch(
            name,
            SavedCampaign {
                state: RunState::Running,
                scanned: saved.is_some_and(|saved| saved.scanned),
            },
            Vec::new(),
        )
        .await
    }

    async fn launch(
        &self,
        name: &str,
        saved: SavedCampaign,
        changed: Vec<CustomerId>,
    ) -> Result<(), CampaignError> {
        let config = self.config(name)?;
        let program = load_rules(config)?;
        let mut running = self.running.lock().await;
        if let Some(previous) = running.get(name)
            && !previous.task.is_finished()
        {
            return Err(CampaignError::AlreadyRunning(name.to_owned()));
        }
        let (commands, receiver) = mpsc::unbounded_channel();
        if !changed.is_empty() {
            let _ = commands.send(Command::Changed(changed));
        }
        let task = driver::spawn(
            config.clone(),
            Arc::new(program),
            saved,
            Arc::clone(&self.services),
            receiver,
        )
        .map_err(|message| CampaignError::Rules {
            name: name.to_owned(),
            message,
        })?;
        running.insert(name.to_owned(), Running { commands, task });
        Ok(())
    }

    pub async fn pause(&self, name: &str) -> Result<(), CampaignError> {
        self.send(name, Command::Pause).await
    }

    pub async fn resume(&self, name: &str) -> Result<(), CampaignError> {
        self.send(name, Command::Resume).await
    }

    /// No new calls; calls in progress finish, then the driver ends.
    pub async fn stop(&self, name: &str) -> Result<(), CampaignError> {
        self.send(name, Command::Stop).await
    }

    /// Compiles every campaign's rules file again; a file with errors is
    /// refused and its campaign keeps the rules it had. Returns the
    /// campaigns given new rules.
    pub async fn reload(&self) -> Result<Vec<String>, CampaignError> {
        let mut programs = Vec::new();
        for (name, config) in &self.configs {
            programs.push((name.clone(), load_rules(config)?));
        }
        let running = self.running.lock().await;
        let mut reloaded = Vec::new();
        for (name, program) in programs {
            if let Some(driver) = running.get(&name)
                && driver
                    .commands
                    .send(Command::Reload(Arc::new(program)))
                    .is_ok()
            {
                reloaded.push(name);
            }
        }
        Ok(reloaded)
    }

    /// An import changed customers: each running campaign looks at every
    /// customer again.
    pub async fn customers_imported(&self) {
        for driver in self.running.lock().await.values() {
            let _ = driver.commands.send(Command::Rescan);
        }
    }

    /// Something the rules read about one customer changed (a click on an
    /// SMS link): each running campaign looks at them again.
    pub async fn customer_changed(&self, customer: CustomerId) {
        for driver in self.running.lock().await.values() {
            let _ = driver
                .commands
                .send(Command::Changed(vec![customer.clone()]));
        }
    }

    pub async fn list(&self) -> Vec<CampaignStatus> {
        let mut list = Vec::new();
        for name in self.configs.keys() {
            if let Ok(status) = self.show(name).await {
                list.push(status);
            }
        }
        list
    }

    pub async fn show(&self, name: &str) -> Result<CampaignStatus, CampaignError> {
        let config = self.config(name)?;
        let asked = {
            let running = self.running.lock().await;
            running.get(name).and_then(|driver| {
                let (reply, answer) = oneshot::channel();
                driver.commands.send(Command::Status(reply)).ok()?;
                Some(answer)
            })
        };
        if let Some(answer) = asked
            && let Ok(status) = answer.await
        {
            return Ok(status);
        }
        Ok(CampaignStatus::idle(config))
    }

    /// Ends every driver at once (daemon shutdown); calls in flight stay
    /// in the ledger and read as interrupted after the restart.
    pub async fn abort_all(&self) {
        for driver in self.running.lock().await.values() {
            driver.task.abort();
        }
    }

    /// Whether the configuration names the campaign; the error lists the
    /// ones it does.
    pub fn known(&self, name: &str) -> Result<(), CampaignError> {
        self.config(name).map(drop)
    }

    async fn send(&self, name: &str, command: Command) -> Result<(), CampaignError> {
        self.config(name)?;
        let running = self.running.lock().await;
        match running.get(name) {
            Some(driver) if !driver.task.is_finished() => driver
                .commands
                .send(command)
                .map_err(|_| CampaignError::NotRunning(name.to_owned())),
            _ => Err(CampaignError::NotRunning(name.to_owned())),
        }
    }

    fn config(&self, name: &str) -> Result<&CampaignConfig, CampaignError> {
        self.configs.get(name).ok_or_else(|| {
            CampaignError::Unknown(
                name.to_owned(),
                self.configs.keys().cloned().collect::<Vec<_>>().join(", "),
            )
        })
    }

    fn saved(&self, name: &str) -> Result<Option<SavedCampaign>, CampaignError> {
        self.config(name)?;
        let saved = self
            .services
            .store
            .campaigns()
            .map_err(|error| CampaignError::Store(name.to_owned(), error.to_string()))?;
        Ok(saved
            .into_iter()
            .find(|(saved, _)| saved == name)
            .and_then(|(_, bytes)| serde_json::from_slice(&bytes).ok()))
    }
}

/// Compiles a campaign's rules file, or says why it cannot be used.
fn load_rules(config: &CampaignConfig) -> Result<dialhound_rules::Program, CampaignError> {
    let refused = |message: String| CampaignError::Rules {
        name: config.name.clone(),
        message,
    };
    let source = std::fs::read_to_string(&config.rules).map_err(|error| {
        refused(format!(
            "cannot read rules file `{}`: {error}",
            config.rules.display()
        ))
    })?;
    dialhound_rules::compile(&source, &config.rules.display().to_string()).map_err(|diagnostics| {
        refused(format!(
            "rules file `{}` has errors; the campaign keeps the rules it had (run `dialhound rules check` on it):\n{}",
            config.rules.display(),
            diagnostics.render(&source, false)
        ))
    })
}
