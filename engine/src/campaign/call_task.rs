//! One campaign call: its prompts prepared, the call placed, its script
//! run, and its CDR written.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::time::{Duration, Instant};

use dialhound_media::encoded::EncodedPrompt;
use dialhound_media::tts::TtsEngine;
use dialhound_rules::script::{Action, Script, ScriptEvent, ScriptRun, Step, Template, Trigger};
use dialhound_rules::{Program, Record};
use jiff::Timestamp;
use tokio::sync::mpsc;

use super::services::Services;
use crate::call::conversation::{Conversation, FlowAction, FlowEvent};
use crate::campaign::pacer::{Pacer, Ringing, Talking};
use crate::config::CampaignConfig;
use crate::sms::SmsRequest;
use crate::store::attempt::{Attempt, CallOutcome, Cdr};
use crate::store::customer::CustomerId;
use crate::store::sms::SmsContent;
use dialhound_line_pool::TierFallback;

use crate::call::dial::{Dial, Route};
use crate::call::report::CallReport;

/// A call the driver decided to make; its attempt is in the ledger.
pub(super) struct CallPlan {
    pub attempt: Attempt,
    pub customer: CustomerId,
    pub priority: i64,
    /// E.164, as stored.
    pub phone: String,
    pub tier: String,
    pub record: Record,
    pub program: Arc<Program>,
    pub config: CampaignConfig,
    /// The line taken for it before its attempt was written.
    pub reservation: Option<dialhound_line_pool::Reservation>,
}

impl CallPlan {
    pub fn route(&self) -> Route {
        Route::Tier {
            tier: self.tier.clone(),
            fallback: TierFallback::LaterTiers,
        }
    }
}

/// What the driver hears when a call's CDR is written.
pub(super) struct Finished {
    pub customer: CustomerId,
    pub outcome: CallOutcome,
}

/// Runs one call to its CDR.
pub(super) async fn run(
    mut plan: CallPlan,
    ringing: Ringing,
    services: Arc<Services>,
    tts: Arc<TtsEngine>,
    pacer: Arc<Mutex<Pacer>>,
    shared: Arc<SharedPrompts>,
    finished: mpsc::UnboundedSender<Finished>,
) {
    let program = Arc::clone(&plan.program);
    let script = plan
        .attempt
        .script
        .as_deref()
        .and_then(|name| program.script(name))
        .unwrap_or(&DEFAULT_SCRIPT);
    let prompts = speak_customer_lines(script, &plan.record, &program, tts).await;
    let phone = plan.phone.clone();
    let directory = services.directory.clone();
    let campaign = plan.config.name.clone();
    let block = move || {
        let reason = format!("opted out during a call of campaign `{campaign}`");
        if let Err(error) = directory.block(&phone, &reason, Timestamp::now()) {
            tracing::error!(%error, "cannot put an opted-out number on the DNC list");
        }
    };
    let reservation = plan.reservation.take();
    let script_sms = |template: &str| {
        let within = Duration::from_secs(services.sms_settings.default_within_seconds);
        queue_sms(&plan, &services, template, "script", within);
    };
    let mut conversation = CampaignConversation {
        run: ScriptRun::new(script, &plan.record, program.schema()),
        prompts,
        shared: &shared,
        pacer: &pacer,
        ringing: Some(ringing),
        talking: None,
        abandoned: false,
        answered_at: None,
        block: &block,
        send_sms: &script_sms,
    };
    let record_to = plan.config.record.then(|| {
        services
            .data_dir
            .join("recordings")
            .join(&plan.config.name)
            .join(format!("{}.wav", plan.attempt.id))
    });
    if let Some(folder) = record_to.as_ref().and_then(|path| path.parent()) {
        let _ = std::fs::create_dir_all(folder);
    }
    let dial = Dial {
        route: plan.route(),
        to_user: plan.phone.clone(),
        hold: Duration::from_secs(plan.config.max_call_seconds),
        ring_timeout: Some(Duration::from_secs(plan.config.ring_timeout_seconds)),
        with_media: true,
        prompts: Vec::new(),
        record: record_to,
        barge_in: true,
    };
    let placed = services
        .agent
        .dial_conversation(dial, reservation, Some(&mut conversation))
        .await;
    let now = Instant::now();
    {
        let mut pacer = pacer.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(ringing) = conversation.ringing.take() {
            pacer.handle_unanswered(now, ringing);
        }
        if let Some(talking) = conversation.talking.take() {
            pacer.handle_ended(now, talking);
        }
    }
    let cdr = match placed {
        Ok(report) => cdr_of(&plan.attempt, &report, &conversation),
        Err(error) => Cdr::ended(
            &plan.attempt,
            CallOutcome::Failed,
            error.to_string(),
            Timestamp::now(),
        ),
    };
    let outcome = cdr.outcome;
    drop(conversation);
    if let Some(fallback) = program.fallback_for(&plan.attempt.rule, outcome.for_history()) {
        let within = fallback
            .within
            .and_then(|seconds| u64::try_from(seconds).ok())
            .unwrap_or(services.sms_settings.default_within_seconds);
        // Written before the CDR: a crash between the two leaves the
        // attempt open, never the SMS unasked.
        if let Some(queued) = queue_sms(
            &plan,
            &services,
            &fallback.template,
            outcome.name(),
            Duration::from_secs(within),
        ) {
            let _ = queued.await;
        }
    }
    let store = Arc::clone(&services.store);
    match tokio::task::spawn_blocking(move || store.finish_attempt(&cdr)).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => {
            tracing::error!(attempt = plan.attempt.id, %error, "cannot write the CDR; the attempt reads as interrupted after a restart");
        }
        Err(error) => tracing::error!(%error, "the CDR writer panicked"),
    }
    let _ = finished.send(Finished {
        customer: plan.customer,
        outcome,
    });
}

/// Asks the SMS stage for template `template` for this call's customer,
/// within `within` from now, off the reactor; the task that writes it.
fn queue_sms(
    plan: &CallPlan,
    services: &Services,
    template: &str,
    trigger: &str,
    within: Duration,
) -> Option<tokio::task::JoinHandle<()>> {
    let Some(declared) = plan.program.sms_template(template).cloned() else {
        tracing::warn!(
            template,
            "the rules ask for an SMS template they do not declare"
        );
        return None;
    };
    let program = Arc::clone(&plan.program);
    let record = plan.record.clone();
    let campaign = plan.config.name.clone();
    let target = plan.config.sms_link.clone().unwrap_or_default();
    let providers = plan.config.sms_providers.clone();
    let customer = plan.customer.to_string();
    let rule = plan.attempt.rule.clone();
    let attempt = plan.attempt.id;
    let phone = plan.phone.clone();
    let template = template.to_owned();
    let trigger = trigger.to_owned();
    let sender = services.sms.clone();
    Some(tokio::task::spawn_blocking(move || {
        // `{link}`: a tracked link unique to this SMS with `[links]`, else
        // the campaign's `sms_link` as written.
        let tracked = if target.is_empty() {
            Ok(None)
        } else {
            sender.new_link(
                &target,
                &[
                    ("customer", customer.as_str()),
                    ("campaign", campaign.as_str()),
                ],
            )
        };
        let (link, tracked) = match tracked {
            Ok(Some((text, link))) => (text, Some(link)),
            Ok(None) => (target, None),
            Err(error) => {
                tracing::error!(%error, "cannot make the SMS's tracked link; it is not sent");
                return;
            }
        };
        let text = declared.render(&record, program.schema(), &link);
        let keep_whole = if link.is_empty() {
            Vec::new()
        } else {
            text.match_indices(link.as_str())
                .map(|(start, found)| (start, start + found.len()))
                .collect()
        };
        let now = Timestamp::now();
        let deadline = now + within;
        let request = SmsRequest {
            campaign,
            customer,
            rule,
            template,
            trigger,
            attempt: Some(attempt),
            content: SmsContent {
                phone,
                sender: declared.sender.clone(),
                text,
                keep_whole,
            },
            not_before: program.next_sms_time(&record, now, deadline),
            deadline,
            providers,
            link: tracked,
        };
        match sender.queue(request) {
            Ok(record) => tracing::debug!(
                sms = record.id,
                status = record.status.name(),
                "SMS written"
            ),
            Err(error) => tracing::error!(%error, "cannot write an SMS; it is not sent"),
        }
    }))
}

fn cdr_of(attempt: &Attempt, report: &CallReport, conversation: &CampaignConversation<'_>) -> Cdr {
    let run = &conversation.run;
    let outcome = if conversation.abandoned {
        CallOutcome::Abandoned
    } else if run.opted_out() {
        CallOutcome::OptedOut
    } else {
        match report.outcome {
            "answered" => CallOutcome::Answered,
            "busy" | "rejected" => CallOutcome::Busy,
            "no_answer" | "cancelled" => CallOutcome::NoAnswer,
            _ => CallOutcome::Failed,
        }
    };
    Cdr {
        trunk: (!report.trunk.is_empty()).then(|| report.trunk.clone()),
        call_id: Some(report.call_id.clone()),
        answered_at: conversation.answered_at,
        sip_status: report.sip_status,
        dtmf: report.dtmf.clone(),
        script_path: run.trail(),
        barge_in_ms: report.media.as_ref().and_then(|media| media.barge_in_ms),
        mos: report.media.as_ref().and_then(|media| media.mos),
        recording: report
            .recording
            .as_ref()
            .map(|path| path.display().to_string()),
        ..Cdr::ended(attempt, outcome, report.reason.clone(), Timestamp::now())
    }
}

/// The script when the rules name none the file declares: a greeting, a
/// chance to opt out, goodbye.
pub(super) static DEFAULT_SCRIPT: LazyLock<Script> = LazyLock::new(|| {
    let say = |text: &str| Step::Say(Template::literal(text));
    Script {
        name: "default".into(),
        steps: vec![
            say("您好，这里是客户回访。感谢您的接听。如不希望再接到我们的电话，请按9。"),
            Step::Listen {
                within: Duration::from_secs(5),
                branches: vec![(
                    Trigger::Digit('9'),
                    vec![Step::OptOut, say("已为您退订，再见。"), Step::HangUp],
                )],
            },
            say("再见。"),
            Step::HangUp,
        ],
    }
});

/// The prompts every call of a campaign shares, by key: the `say` lines
/// that name no customer field, the `play` files, and the apology to an
/// abandoned call. Made once when the campaign starts or its rules change.
#[derive(Default)]
pub(super) struct SharedPrompts {
    prompts: HashMap<String, EncodedPrompt>,
    apology: Option<EncodedPrompt>,
}

impl SharedPrompts {
    /// Speaks and loads them (blocking: run it off the reactor). A line
    /// that cannot be spoken or a file that cannot be read is left out and
    /// its step skipped; the apology missing means abandoned calls hang up
    /// silently.
    pub fn make(
        program: &Program,
        rules_folder: &Path,
        tts: &TtsEngine,
        apology: &str,
    ) -> SharedPrompts {
        let mut says = Vec::new();
        let mut plays = Vec::new();
        collect(&DEFAULT_SCRIPT.steps, true, &mut says, &mut plays);
        for name in program.script_names() {
            if let Some(script) = program.script(name) {
                collect(&script.steps, true, &mut says, &mut plays);
            }
        }
        let mut prompts = HashMap::new();
        for text in says.iter().filter_map(|template| template.fixed_text()) {
            let key = say_key(&text);
            if !prompts.contains_key(&key)
                && let Some(prompt) = speak(tts, &text)
            {
                prompts.insert(key, prompt);
            }
        }
        for path in plays {
            match dialhound_media::prompt::load_wav(rules_folder.join(&path)) {
                Ok(audio) => {
                    prompts.insert(play_key(&path), EncodedPrompt::from_pcm_8k(audio.samples()));
                }
                Err(error) => {
                    tracing::warn!(%path, %error, "a script's audio file cannot be played; it is skipped")
                }
            }
        }
        SharedPrompts {
            prompts,
            apology: speak(tts, apology),
        }
    }
}

fn speak(tts: &TtsEngine, text: &str) -> Option<EncodedPrompt> {
    match tts.speak(text) {
        Ok(spoken) => Some(EncodedPrompt::from_pcm_8k(spoken.samples())),
        Err(error) => {
            tracing::warn!(%error, "a script line cannot be spoken; it is skipped");
            None
        }
    }
}

/// The script's lines that name customer fields, filled in and spoken
/// before the call is placed, so the callee never waits on text-to-speech;
/// but for the lines only an `on intent` branch reaches, which no call takes
/// while the daemon has no speech recognizer.
async fn speak_customer_lines(
    script: &Script,
    record: &Record,
    program: &Program,
    tts: Arc<TtsEngine>,
) -> HashMap<String, EncodedPrompt> {
    let mut says = Vec::new();
    collect(&script.steps, false, &mut says, &mut Vec::new());
    let texts: Vec<String> = says
        .iter()
        .filter(|template| template.fixed_text().is_none())
        .map(|template| template.render(record, program.schema()))
        .collect();
    if texts.is_empty() {
        return HashMap::new();
    }
    let spoken = tokio::task::spawn_blocking(move || {
        texts
            .into_iter()
            .filter_map(|text| Some((say_key(&text), speak(&tts, &text)?)))
            .collect()
    })
    .await;
    spoken.unwrap_or_default()
}

/// The `say` templates and `play` files of `steps`, branches included; with
/// `heard_branches` false, not those of `on intent` branches, which a call
/// cannot take while the daemon has no speech recognizer.
fn collect<'a>(
    steps: &'a [Step],
    heard_branches: bool,
    says: &mut Vec<&'a Template>,
    plays: &mut Vec<String>,
) {
    for step in steps {
        match step {
            Step::Say(template) => says.push(template),
            Step::Play(path) => plays.push(path.clone()),
            Step::Listen { branches, .. } => {
                for (trigger, steps) in branches {
                    if heard_branches || !matches!(trigger, Trigger::Intent(_)) {
                        collect(steps, heard_branches, says, plays);
                    }
                }
            }
            Step::OptOut | Step::HangUp | Step::SendSms(_) => {}
        }
    }
}

fn say_key(text: &str) -> String {
    format!("say:{text}")
}

fn play_key(path: &str) -> String {
    format!("play:{path}")
}

/// A campaign call after answer: the pacer admits it (or it is abandoned
/// with an apology), then the script runs.
struct CampaignConversation<'a> {
    run: ScriptRun<'a>,
    /// This customer's lines.
    prompts: HashMap<String, EncodedPrompt>,
    shared: &'a SharedPrompts,
    pacer: &'a Mutex<Pacer>,
    ringing: Option<Ringing>,
    talking: Option<Talking>,
    abandoned: bool,
    answered_at: Option<Timestamp>,
    block: &'a (dyn Fn() + Send + Sync),
    /// Queues an SMS template for this customer (a script's `send sms`).
    send_sms: &'a (dyn Fn(&str) + Send + Sync),
}

impl Conversation for CampaignConversation<'_> {
    fn handle(&mut self, event: FlowEvent) -> Vec<FlowAction> {
        let actions = match event {
            FlowEvent::Answered => {
                self.answered_at = Some(Timestamp::now());
                if let Some(ringing) = self.ringing.take() {
                    let admission = self
                        .pacer
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .handle_answered(Instant::now(), ringing);
                    self.talking = Some(admission.talking());
                    if !admission.is_connect() {
                        self.abandoned = true;
                        return match self.shared.apology.clone() {
                            Some(apology) => vec![FlowAction::Play(apology)],
                            None => vec![FlowAction::HangUp],
                        };
                    }
                }
                self.run.start()
            }
            FlowEvent::PromptsDone if self.abandoned => return vec![FlowAction::HangUp],
            _ if self.abandoned => return Vec::new(),
            FlowEvent::PromptsDone => self.run.handle(ScriptEvent::PromptDone),
            FlowEvent::Digit(digit) => self.run.handle(ScriptEvent::Digit(digit)),
            FlowEvent::SpeechStarted => self.run.handle(ScriptEvent::SpeechStarted),
            FlowEvent::Silence => self.run.handle(ScriptEvent::ListenTimedOut),
        };
        self.carry_out(actions)
    }
}

impl CampaignConversation<'_> {
    fn prompt(&self, key: &str) -> Option<EncodedPrompt> {
        self.prompts
            .get(key)
            .or_else(|| self.shared.prompts.get(key))
            .cloned()
    }

    /// The script's actions as the call does them; a prompt that could not
    /// be prepared counts as played at once.
    fn carry_out(&mut self, mut actions: Vec<Action>) -> Vec<FlowAction> {
        let mut flow = Vec::new();
        while !actions.is_empty() {
            let mut more = Vec::new();
            for action in actions {
                match action {
                    Action::Say(text) => match self.prompt(&say_key(&text)) {
                        Some(prompt) => flow.push(FlowAction::Play(prompt)),
                        None => more.extend(self.run.handle(ScriptEvent::PromptDone)),
                    },
                    Action::Play(path) => match self.prompt(&play_key(&path)) {
                        Some(prompt) => flow.push(FlowAction::Play(prompt)),
                        None => more.extend(self.run.handle(ScriptEvent::PromptDone)),
                    },
                    Action::Listen(within) => flow.push(FlowAction::Listen(within)),
                    Action::OptOut => (self.block)(),
                    Action::SendSms(name) => (self.send_sms)(&name),
                    Action::HangUp => flow.push(FlowAction::HangUp),
                }
            }
            actions = more;
        }
        flow
    }
}
