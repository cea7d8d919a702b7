//! One campaign's driver: a task that keeps the wake wheel, the ready queue
//! and the pacer, and starts the calls.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use dialhound_media::tts::TtsEngine;
use dialhound_rules::{Program, Record};
use jiff::Timestamp;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use super::call_task::{self, CallPlan, Finished, SharedPrompts};
use super::ready::ReadyQueue;
use super::services::Services;
use super::state::{RunState, SavedCampaign};
use crate::campaign::pacer::{Pacer, PacerConfig, PacerFigures};
use crate::campaign::wake_wheel::{Placed, WakeWheel};
use crate::config::CampaignConfig;
use crate::store::attempt::{Attempt, CallOutcome};
use crate::store::customer::CustomerId;

/// What a driver is asked to do.
pub(crate) enum Command {
    Pause,
    Resume,
    Stop,
    Reload(Arc<dialhound_rules::Program>),
    Changed(Vec<CustomerId>),
    /// Look at every customer again (an import changed some).
    Rescan,
    Status(oneshot::Sender<CampaignStatus>),
}

/// A campaign as `campaign show` and `campaign list` print it.
#[derive(Debug, Clone, Serialize)]
pub struct CampaignStatus {
    pub name: String,
    pub state: RunState,
    pub rules: String,
    pub capacity: u32,
    /// Customers looked at once since the campaign first started.
    pub scanned: bool,
    pub ready: usize,
    /// Customers with a wake in the next minutes (the wheel's).
    pub waking_soon: usize,
    pub in_flight: usize,
    /// CDRs written since this driver started, by outcome.
    pub outcomes: BTreeMap<&'static str, u64>,
    pub pacer: Option<PacerFigures>,
}

impl CampaignStatus {
    pub(super) fn idle(config: &CampaignConfig) -> CampaignStatus {
        CampaignStatus {
            name: config.name.clone(),
            state: RunState::Stopped,
            rules: config.rules.display().to_string(),
            capacity: config.capacity,
            scanned: false,
            ready: 0,
            waking_soon: 0,
            in_flight: 0,
            outcomes: BTreeMap::new(),
            pacer: None,
        }
    }
}

/// How often the driver wakes to pace calls and take due wakes.
const TICK: Duration = Duration::from_millis(50);
/// How far ahead the wheel holds wakes; later ones stay in the store.
const WHEEL_HORIZON: Duration = Duration::from_secs(600);
/// Customers read per turn on the first scan.
const SCAN_PAGE: usize = 256;

/// Starts the driver; errors when the campaign's voice cannot be used.
pub(super) fn spawn(
    config: CampaignConfig,
    program: Arc<Program>,
    saved: SavedCampaign,
    services: Arc<Services>,
    commands: mpsc::UnboundedReceiver<Command>,
) -> Result<tokio::task::JoinHandle<()>, String> {
    let voice = config
        .voice
        .clone()
        .unwrap_or_else(|| services.voice.clone());
    let tts = Arc::new(
        TtsEngine::new(
            services.data_dir.join("tts-cache"),
            voice.clone(),
            services.tts_rate,
        )
        .map_err(|error| format!("its voice cannot be used: {error}"))?,
    );
    if let Err(error) = tts.check_voice() {
        if config.require_voice {
            return Err(format!(
                "espeak-ng cannot speak its voice `{voice}`: {error} (install espeak-ng, or set `voice`)"
            ));
        }
        tracing::warn!(campaign = %config.name, %error, "espeak-ng cannot speak; the scripts run with silent prompts");
    }
    let now = Instant::now();
    let pacer = Pacer::new(
        PacerConfig {
            capacity: config.capacity,
            max_channels: services.max_channels.max(1),
            max_cps: services.max_cps.max(1),
            window: Duration::from_secs(config.window_seconds),
            abandon_target: config.abandon_target,
            initial_answer_rate: config.initial_answer_rate,
        },
        now,
    );
    let (finished_sender, finished) = mpsc::unbounded_channel();
    let driver = Driver {
        wheel: WakeWheel::new(Timestamp::now(), TICK, WHEEL_HORIZON),
        ready: ReadyQueue::new(),
        pacer: Arc::new(Mutex::new(pacer)),
        in_flight: HashSet::new(),
        state: saved.state,
        scan: if saved.scanned {
            Scan::Done
        } else {
            Scan::From(None)
        },
        loaded_until: Timestamp::MIN,
        outcomes: BTreeMap::new(),
        dirty: false,
        shared: Arc::new(SharedPrompts::default()),
        stopping: false,
        finished_sender,
        config,
        program,
        services,
        tts,
    };
    Ok(tokio::spawn(driver.run(commands, finished)))
}

enum Scan {
    /// Reading every customer, from after this one.
    From(Option<CustomerId>),
    Done,
}

struct Driver {
    config: CampaignConfig,
    program: Arc<Program>,
    services: Arc<Services>,
    tts: Arc<TtsEngine>,
    wheel: WakeWheel,
    ready: ReadyQueue,
    pacer: Arc<Mutex<Pacer>>,
    /// Customers with an attempt in flight: never queued twice.
    in_flight: HashSet<CustomerId>,
    state: RunState,
    scan: Scan,
    /// Store wakes before this are in the wheel (or were due).
    loaded_until: Timestamp,
    outcomes: BTreeMap<&'static str, u64>,
    /// CDRs written since the last flush.
    dirty: bool,
    /// The prompts every call shares.
    shared: Arc<SharedPrompts>,
    /// Stop asked: no new calls; the driver ends when the last call does.
    stopping: bool,
    finished_sender: mpsc::UnboundedSender<Finished>,
}

impl Driver {
    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        mut finished: mpsc::UnboundedReceiver<Finished>,
    ) {
        self.save().await;
        self.prepare_shared_prompts().await;
        tracing::info!(campaign = %self.config.name, state = ?self.state, "campaign driver started");
        let mut ticker = tokio::time::interval(TICK);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => self.tick().await,
                Some(done) = finished.recv() => {
                    self.finish(done);
                    while let Ok(done) = finished.try_recv() {
                        self.finish(done);
                    }
                }
                command = commands.recv() => match command {
                    Some(command) => self.obey(command).await,
                    // The daemon is going away.
                    None => break,
                },
            }
            if self.stopping && self.in_flight.is_empty() {
                self.flush().await;
                tracing::info!(campaign = %self.config.name, "campaign stopped");
                break;
            }
        }
    }

    async fn obey(&mut self, command: Command) {
        match command {
            Command::Pause if !self.stopping => {
                self.state = RunState::Paused;
                self.save().await;
            }
            Command::Resume if !self.stopping => {
                self.state = RunState::Running;
                self.save().await;
            }
            Command::Pause | Command::Resume => {}
            Command::Stop => {
                self.stopping = true;
                self.state = RunState::Stopped;
                self.save().await;
            }
            Command::Reload(program) => {
                tracing::info!(campaign = %self.config.name, "new rules take effect for the next decision");
                self.program = program;
                self.prepare_shared_prompts().await;
                // Queued customers are decided again when they are dialled.
            }
            Command::Changed(customers) => {
                let now = Timestamp::now();
                for customer in customers {
                    self.evaluate(&customer, now);
                }
            }
            Command::Rescan => self.scan = Scan::From(None),
            Command::Status(reply) => {
                let _ = reply.send(self.status());
            }
        }
    }

    fn status(&self) -> CampaignStatus {
        let pacer = self
            .pacer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .figures(Instant::now());
        CampaignStatus {
            name: self.config.name.clone(),
            state: self.state,
            rules: self.config.rules.display().to_string(),
            capacity: self.config.capacity,
            scanned: matches!(self.scan, Scan::Done),
            ready: self.ready.len(),
            waking_soon: self.wheel.len(),
            in_flight: self.in_flight.len(),
            outcomes: self.outcomes.clone(),
            pacer: Some(pacer),
        }
    }

    async fn tick(&mut self) {
        let now = Timestamp::now();
        if self.dirty {
            self.flush().await;
        }
        self.scan_page(now);
        self.take_due(now);
        if self.state == RunState::Running && !self.stopping {
            self.dial(now).await;
        }
        let figures = self
            .pacer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .figures(Instant::now());
        self.services
            .metrics
            .observe(&self.config.name, &figures, self.ready.len());
    }

    /// The first look at every customer, a page per tick.
    fn scan_page(&mut self, now: Timestamp) {
        let Scan::From(after) = &self.scan else {
            return;
        };
        let page = match self
            .services
            .store
            .customers_after(after.as_ref(), SCAN_PAGE)
        {
            Ok(page) => page,
            Err(error) => {
                tracing::error!(campaign = %self.config.name, %error, "cannot read customers; the scan waits");
                return;
            }
        };
        let full = page.len() == SCAN_PAGE;
        let last = page.last().map(|customer| customer.id.clone());
        for sealed in page {
            let id = sealed.id.clone();
            self.evaluate_sealed(&id, Some(sealed), now);
        }
        match last {
            Some(last) if full => self.scan = Scan::From(Some(last)),
            _ => {
                self.scan = Scan::Done;
                tracing::info!(campaign = %self.config.name, ready = self.ready.len(), waking = self.wheel.len(), "every customer looked at");
                let store = Arc::clone(&self.services.store);
                let name = self.config.name.clone();
                let saved = self.saved();
                // Best effort: without it, a restart scans again.
                let _ = store.save_campaign(&name, &saved);
            }
        }
    }

    /// Wakes that came due, and the store's wakes the wheel's horizon now
    /// reaches.
    fn take_due(&mut self, now: Timestamp) {
        let horizon = self.wheel.horizon_end();
        if horizon > self.loaded_until {
            match self.services.store.wakes_between(
                &self.config.name,
                self.loaded_until,
                horizon,
                usize::MAX,
            ) {
                Ok(wakes) => {
                    for (at, customer) in wakes {
                        if at <= now {
                            self.evaluate(&customer, now);
                        } else {
                            let _ = self.wheel.load(customer, at);
                        }
                    }
                    self.loaded_until = horizon;
                }
                Err(error) => {
                    tracing::error!(campaign = %self.config.name, %error, "cannot read wakes");
                }
            }
        }
        for (_, customer) in self.wheel.poll_due(now) {
            self.evaluate(&customer, now);
        }
    }

    fn evaluate(&mut self, customer: &CustomerId, now: Timestamp) {
        self.evaluate_sealed(customer, None, now);
    }

    /// Decides for one customer: into the ready queue, onto a wake, or
    /// nowhere (the rules will never call it).
    fn evaluate_sealed(
        &mut self,
        id: &CustomerId,
        sealed: Option<crate::store::SealedCustomer>,
        now: Timestamp,
    ) {
        if self.in_flight.contains(id) {
            return; // looked at again when its call ends
        }
        let verdict = self.decide(id, sealed, now);
        let name = &self.config.name;
        let store = &self.services.store;
        self.wheel.cancel(id);
        let written = match verdict {
            Verdict::Call { priority } => {
                self.ready.push(id.clone(), priority);
                // Due now in the store: a restart finds it waiting.
                store.set_wake(name, id, now)
            }
            Verdict::WakeAt(at) => {
                if self.wheel.schedule(id.clone(), at) == Placed::BeyondHorizon {
                    tracing::trace!(customer = %id, %at, "wake beyond the wheel; kept in the store");
                }
                store.set_wake(name, id, at)
            }
            Verdict::Never => store.clear_wake(name, id).map(|_| ()),
        };
        if let Err(error) = written {
            tracing::error!(campaign = %name, customer = %id, %error, "cannot store the customer's wake");
        }
    }

    fn decide(
        &self,
        id: &CustomerId,
        sealed: Option<crate::store::SealedCustomer>,
        now: Timestamp,
    ) -> Verdict {
        match self.customer_record(id, sealed) {
            Ok(Some((customer, record))) => {
                match self.services.directory.is_blocked(&customer.phone) {
                    Ok(false) => {}
                    Ok(true) => return Verdict::Never,
                    Err(error) => {
                        tracing::error!(customer = %id, %error, "cannot read the DNC list");
                        return Verdict::Never;
                    }
                }
                let history = match self.services.store.history(id) {
                    Ok(history) => history,
                    Err(error) => {
                        tracing::error!(customer = %id, %error, "cannot read the contact history");
                        return Verdict::Never;
                    }
                };
                let decision = self.program.decide(&record, &history, now);
                if decision.eligible() {
                    Verdict::Call {
                        priority: decision.priority,
                    }
                } else {
                    match self.program.next_wake(&record, &history, now) {
                        Some(at) => Verdict::WakeAt(at),
                        None => Verdict::Never,
                    }
                }
            }
            Ok(None) => Verdict::Never,
            Err(error) => {
                tracing::warn!(campaign = %self.config.name, customer = %id, %error, "the customer does not fit the rules' schema; not called");
                Verdict::Never
            }
        }
    }

    fn customer_record(
        &self,
        id: &CustomerId,
        sealed: Option<crate::store::SealedCustomer>,
    ) -> Result<Option<(crate::store::customer::Customer, Record)>, String> {
        let sealed = match sealed {
            Some(sealed) => sealed,
            None => match self.services.store.customer(id) {
                Ok(Some(sealed)) => sealed,
                Ok(None) => return Ok(None),
                Err(error) => return Err(error.to_string()),
            },
        };
        let customer = self
            .services
            .directory
            .open_customer(sealed)
            .map_err(|error| error.to_string())?;
        let record = Record::from_json(self.program.schema(), &customer.rules_json())
            .map_err(|error| error.to_string())?;
        Ok(Some((customer, record)))
    }

    /// Starts as many calls as the pacer asks for: their attempts go in
    /// the ledger and are flushed first, all in one write.
    async fn dial(&mut self, now: Timestamp) {
        let wanted = self
            .pacer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .poll_dial(Instant::now());
        let mut plans = Vec::new();
        while plans.len() < wanted as usize {
            let Some(ready) = self.ready.pop() else {
                break;
            };
            // Decided again: time has passed, the rules may be new, another
            // campaign may have called.
            let Some(mut plan) = self.plan(&ready.customer, now) else {
                self.evaluate(&ready.customer, now);
                continue;
            };
            // A line first: an attempt is only written when its INVITE can
            // leave at once.
            match self.services.agent.try_reserve(&plan.route(), &[]) {
                Ok(reservation) => {
                    plan.reservation = Some(reservation);
                    plans.push(plan);
                }
                Err(error) => {
                    tracing::debug!(%error, "no line free; the customer waits");
                    self.ready.push(ready.customer, ready.priority);
                    break;
                }
            }
        }
        if plans.is_empty() {
            return;
        }
        let attempts: Vec<Attempt> = plans.iter().map(|plan| plan.attempt.clone()).collect();
        let store = Arc::clone(&self.services.store);
        let written = tokio::task::spawn_blocking(move || {
            store.begin_attempts(&attempts)?;
            store.flush()
        })
        .await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::error!(campaign = %self.config.name, %error, "cannot write the attempt ledger; no call placed");
                for plan in plans {
                    self.ready.push(plan.customer, plan.priority);
                }
                return;
            }
            Err(error) => {
                tracing::error!(%error, "the ledger writer panicked");
                return;
            }
        }
        for plan in plans {
            let customer = plan.customer.clone();
            // The open attempt stands for it now.
            if let Err(error) = self.services.store.clear_wake(&self.config.name, &customer) {
                tracing::debug!(%error, "a waiting customer's wake stays");
            }
            self.in_flight.insert(customer);
            let ringing = self
                .pacer
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .handle_dialed(Instant::now());
            tokio::spawn(call_task::run(
                plan,
                ringing,
                Arc::clone(&self.services),
                Arc::clone(&self.tts),
                Arc::clone(&self.pacer),
                Arc::clone(&self.shared),
                self.finished_sender.clone(),
            ));
        }
    }

    /// The call to make to a queued customer, if it is still to be made.
    fn plan(&self, id: &CustomerId, now: Timestamp) -> Option<CallPlan> {
        let (customer, record) = self.customer_record(id, None).ok()??;
        if self
            .services
            .directory
            .is_blocked(&customer.phone)
            .unwrap_or(true)
        {
            return None;
        }
        let history = self.services.store.history(id).ok()?;
        let decision = self.program.decide(&record, &history, now);
        let rule = decision.rule_name?;
        let attempt = Attempt {
            id: self.services.store.next_attempt_id().ok()?,
            campaign: self.config.name.clone(),
            customer: id.as_str().to_owned(),
            rule: rule.to_owned(),
            script: decision.script.map(str::to_owned),
            tier: decision.line.map(str::to_owned),
            started_at: now,
        };
        let tier = decision
            .line
            .filter(|line| self.services.tiers.iter().any(|tier| tier == line))
            .map(str::to_owned)
            .or_else(|| self.services.tiers.first().cloned())?;
        Some(CallPlan {
            attempt,
            customer: id.clone(),
            priority: decision.priority,
            phone: customer.phone.clone(),
            tier,
            record,
            program: Arc::clone(&self.program),
            config: self.config.clone(),
            reservation: None,
        })
    }

    fn finish(&mut self, done: Finished) {
        self.in_flight.remove(&done.customer);
        *self.outcomes.entry(done.outcome.name()).or_default() += 1;
        self.services
            .metrics
            .count_outcome(&self.config.name, done.outcome);
        self.dirty = true;
        if done.outcome == CallOutcome::OptedOut {
            // On the DNC list: nothing more to decide.
            return;
        }
        self.evaluate(&done.customer, Timestamp::now());
    }

    async fn flush(&mut self) {
        let store = Arc::clone(&self.services.store);
        match tokio::task::spawn_blocking(move || store.flush()).await {
            Ok(Ok(())) => self.dirty = false,
            Ok(Err(error)) => tracing::error!(%error, "cannot flush the store"),
            Err(error) => tracing::error!(%error, "the store flush panicked"),
        }
    }

    fn saved(&self) -> Vec<u8> {
        serde_json::to_vec(&SavedCampaign {
            state: self.state,
            scanned: matches!(self.scan, Scan::Done),
        })
        .unwrap_or_default()
    }

    async fn save(&mut self) {
        let store = Arc::clone(&self.services.store);
        let name = self.config.name.clone();
        let saved = self.saved();
        let written = tokio::task::spawn_blocking(move || {
            store.save_campaign(&name, &saved)?;
            store.flush()
        })
        .await;
        if !matches!(written, Ok(Ok(()))) {
            tracing::error!(campaign = %self.config.name, "cannot save the campaign's state");
        }
    }

    /// Speaks the lines every call shares (and loads the `play` files),
    /// once per campaign and again when its rules change.
    async fn prepare_shared_prompts(&mut self) {
        let program = Arc::clone(&self.program);
        let tts = Arc::clone(&self.tts);
        let apology = self.config.apology.clone();
        let folder = self
            .config
            .rules
            .parent()
            .map(std::path::Path::to_path_buf)
            .unwrap_or_default();
        match tokio::task::spawn_blocking(move || {
            SharedPrompts::make(&program, &folder, &tts, &apology)
        })
        .await
        {
            Ok(shared) => self.shared = Arc::new(shared),
            Err(error) => tracing::error!(%error, "the shared prompts could not be made"),
        }
    }
}

enum Verdict {
    Call { priority: i64 },
    WakeAt(Timestamp),
    Never,
}
