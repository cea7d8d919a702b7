//! The call's side after answer as a sans-IO state machine: it is told what
//! happens ([`FlowEvent`]) and answers with what to do ([`FlowAction`]). A
//! campaign's script is one; [`PlayPrompts`] is the simplest.

use std::time::Duration;

use dialhound_media::encoded::EncodedPrompt;

/// What happens on an answered call, as the conversation is told it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowEvent {
    /// The callee picked up.
    Answered,
    /// Every prompt asked for so far has been played (or cut short).
    PromptsDone,
    /// A key pressed.
    Digit(char),
    /// The callee started to speak (also told at the start of a listen when
    /// they are speaking already).
    SpeechStarted,
    /// The last listen's time ran out.
    Silence,
}

/// What the conversation asks of the call.
#[derive(Debug, Clone)]
pub enum FlowAction {
    /// Queue a prompt after any playing.
    Play(EncodedPrompt),
    /// Tell [`FlowEvent::Silence`] after this long, unless something else
    /// is told first; a new listen replaces the last one.
    Listen(Duration),
    /// End the call.
    HangUp,
}

/// The call's side after answer, driven by events: a campaign's script.
/// Sans-IO: it never waits, it answers each event with actions.
pub trait Conversation: Send {
    fn handle(&mut self, event: FlowEvent) -> Vec<FlowAction>;
}

/// The simplest conversation: plays its prompts once answered and stays on
/// the line until the call's hold runs out.
pub struct PlayPrompts<'a>(pub &'a [EncodedPrompt]);

impl Conversation for PlayPrompts<'_> {
    fn handle(&mut self, event: FlowEvent) -> Vec<FlowAction> {
        match event {
            FlowEvent::Answered => self.0.iter().cloned().map(FlowAction::Play).collect(),
            _ => Vec::new(),
        }
    }
}
