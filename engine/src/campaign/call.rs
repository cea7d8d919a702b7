//! One campaign call: its prompts prepared, the call placed, its script
//! run, and its CDR written.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use dialhound_media::encoded::EncodedPrompt;
use dialhound_media::tts::TtsEngine;
use dialhound_rules::script::{Action, Part, Script, ScriptEvent, ScriptRun, Step, Template};
use dialhound_rules::{Program, Record};
use jiff::Timestamp;
use tokio::sync::mpsc;

use super::driver::Services;
use crate::attempt::{Attempt, CallOutcome, Cdr};
use crate::call_flow::{Conversation, FlowAction, FlowEvent};
use crate::config::CampaignConfig;
use crate::customer::CustomerId;
use crate::pacer::{Pacer, Ringing, Talking};
use dialhound_line_pool::TierFallback;

use crate::sip_agent::{CallReport, Dial, Route};

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
    apology: Option<EncodedPrompt>,
    finished: mpsc::UnboundedSender<Finished>,
) {
    let program = Arc::clone(&plan.program);
    let default_script = default_script();
    let script = plan
        .attempt
        .script
        .as_deref()
        .and_then(|name| program.script(name))
        .unwrap_or(&default_script);
    let prompts = prepare_prompts(script, &plan, &program, tts).await;
    let phone = plan.phone.clone();
    let directory = services.directory.clone();
    let campaign = plan.config.name.clone();
    let block = move || {
        let reason = format!("opted out during a call of campaign `{campaign}`");
        if let Err(error) = directory.block(&phone, &reason, Timestamp::now()) {
            tracing::error!(%error, "cannot put an opted-out number on the DNC list");
        }
    };
    let mut conversation = CampaignConversation {
        run: ScriptRun::new(script, &plan.record, program.schema()),
        prompts,
        pacer: &pacer,
        ringing: Some(ringing),
        talking: None,
        abandoned: false,
        answered_at: None,
        apology,
        block: &block,
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
        .dial_conversation(dial, plan.reservation.take(), Some(&mut conversation))
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
        Err(error) => {
            let mut cdr = Cdr::interrupted(&plan.attempt, Timestamp::now());
            cdr.outcome = CallOutcome::Failed;
            cdr.reason = error.to_string();
            cdr
        }
    };
    let outcome = cdr.outcome;
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
        attempt: attempt.id,
        campaign: attempt.campaign.clone(),
        customer: attempt.customer.clone(),
        rule: attempt.rule.clone(),
        script: attempt.script.clone(),
        trunk: (!report.trunk.is_empty()).then(|| report.trunk.clone()),
        call_id: Some(report.call_id.clone()),
        started_at: attempt.started_at,
        answered_at: conversation.answered_at,
        ended_at: Timestamp::now(),
        sip_status: report.sip_status,
        outcome,
        dtmf: report.dtmf.clone(),
        script_path: run.trail(),
        barge_in_ms: report.media.as_ref().and_then(|media| media.barge_in_ms),
        mos: report.media.as_ref().and_then(|media| media.mos),
        recording: report
            .recording
            .as_ref()
            .map(|path| path.display().to_string()),
        reason: report.reason.clone(),
    }
}

/// The script when the rules name none the file declares: a greeting, a
/// chance to opt out, goodbye.
pub(super) fn default_script() -> Script {
    let text = |text: &str| {
        Step::Say(Template {
            source: text.to_owned(),
            parts: vec![Part::Text(text.to_owned())],
        })
    };
    Script {
        name: "default".into(),
        steps: vec![
            text("您好，这里是客户回访。感谢您的接听。如不希望再接到我们的电话，请按9。"),
            Step::Listen {
                within: Duration::from_secs(5),
                branches: vec![(
                    dialhound_rules::script::Trigger::Digit('9'),
                    vec![Step::OptOut, text("已为您退订，再见。"), Step::HangUp],
                )],
            },
            text("再见。"),
            Step::HangUp,
        ],
    }
}

/// Every prompt the script can ask for, spoken or loaded before the call
/// is placed, so the callee never waits on text-to-speech.
async fn prepare_prompts(
    script: &Script,
    plan: &CallPlan,
    program: &Program,
    tts: Arc<TtsEngine>,
) -> HashMap<String, EncodedPrompt> {
    let mut says = Vec::new();
    let mut plays = Vec::new();
    collect(&script.steps, &mut says, &mut plays);
    let texts: Vec<String> = says
        .iter()
        .map(|template| template.render(&plan.record, program.schema()))
        .collect();
    let folder = plan
        .config
        .rules
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    let made = tokio::task::spawn_blocking(move || {
        let mut prompts = HashMap::new();
        for text in texts {
            match tts.speak(&text) {
                Ok(spoken) => {
                    prompts.insert(say_key(&text), EncodedPrompt::from_pcm_8k(spoken.samples()));
                }
                Err(error) => tracing::warn!(%error, "a script line cannot be spoken; it is skipped"),
            }
        }
        for path in plays {
            match dialhound_media::prompt::load_wav(folder.join(&path)) {
                Ok(audio) => {
                    prompts.insert(play_key(&path), EncodedPrompt::from_pcm_8k(audio.samples()));
                }
                Err(error) => tracing::warn!(%path, %error, "a script's audio file cannot be played; it is skipped"),
            }
        }
        prompts
    })
    .await;
    made.unwrap_or_default()
}

fn collect<'a>(steps: &'a [Step], says: &mut Vec<&'a Template>, plays: &mut Vec<String>) {
    for step in steps {
        match step {
            Step::Say(template) => says.push(template),
            Step::Play(path) => plays.push(path.clone()),
            Step::Listen { branches, .. } => {
                for (_, steps) in branches {
                    collect(steps, says, plays);
                }
            }
            Step::OptOut | Step::HangUp => {}
        }
    }
}

/// The script's `say` lines that name no customer field: the same for
/// every call.
pub(super) fn fixed_lines(script: &Script) -> Vec<String> {
    let mut says = Vec::new();
    collect(&script.steps, &mut says, &mut Vec::new());
    says.into_iter()
        .filter(|template| {
            template
                .parts
                .iter()
                .all(|part| matches!(part, Part::Text(_)))
        })
        .map(|template| {
            template
                .parts
                .iter()
                .map(|part| match part {
                    Part::Text(text) => text.as_str(),
                    Part::Field { .. } => "",
                })
                .collect()
        })
        .collect()
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
    prompts: HashMap<String, EncodedPrompt>,
    pacer: &'a Mutex<Pacer>,
    ringing: Option<Ringing>,
    talking: Option<Talking>,
    abandoned: bool,
    answered_at: Option<Timestamp>,
    apology: Option<EncodedPrompt>,
    block: &'a (dyn Fn() + Send + Sync),
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
                        return match self.apology.clone() {
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
    /// The script's actions as the call does them; a prompt that could not
    /// be prepared counts as played at once.
    fn carry_out(&mut self, mut actions: Vec<Action>) -> Vec<FlowAction> {
        let mut flow = Vec::new();
        while !actions.is_empty() {
            let mut more = Vec::new();
            for action in actions {
                match action {
                    Action::Say(text) => match self.prompts.get(&say_key(&text)) {
                        Some(prompt) => flow.push(FlowAction::Play(prompt.clone())),
                        None => more.extend(self.run.handle(ScriptEvent::PromptDone)),
                    },
                    Action::Play(path) => match self.prompts.get(&play_key(&path)) {
                        Some(prompt) => flow.push(FlowAction::Play(prompt.clone())),
                        None => more.extend(self.run.handle(ScriptEvent::PromptDone)),
                    },
                    Action::Listen(within) => flow.push(FlowAction::Listen(within)),
                    Action::OptOut => (self.block)(),
                    Action::HangUp => flow.push(FlowAction::HangUp),
                }
            }
            actions = more;
        }
        flow
    }
}
