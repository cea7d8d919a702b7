//! One call with its media: an RTP leg is opened before the INVITE so that
//! our offer can name its port, takes whatever the callee's SDP settles (early
//! media, the answer, a re-INVITE), plays the prompts once the callee answers,
//! hears the keys pressed, and is closed with the call, its figures going
//! into the call's report.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use dialhound_media::encoded::EncodedPrompt;
use dialhound_media::engine::{
    AudioTap, LegConfig, LegEvent, LegHandle, LegReport, MediaEngine, TapAction,
};
use dialhound_media::recording::CallRecording;
use dialhound_media::sdp::Codec;
use dialhound_media::vad::{VadEvent, VoiceDetector};
use tokio::sync::mpsc;

use crate::call::conversation::{Conversation, FlowAction, FlowEvent};
use crate::call::report::{CallReport, MediaSummary, SpeechSegment};
use crate::call::sip_agent::{AgentError, CallOrder, CallUpdate, MediaOffer, SipAgent};

/// Places `order` with a media leg from `media` and lets `conversation`
/// drive the call once the callee answers; with `record`, both directions go
/// to a stereo WAV there. The report carries the keys pressed (`dtmf`), the
/// media figures and the recording's path.
pub async fn place_with_media(
    agent: &SipAgent,
    media: &Arc<MediaEngine>,
    mut order: CallOrder,
    conversation: &mut dyn Conversation,
    record: Option<&PathBuf>,
    barge_in: bool,
) -> Result<CallReport, AgentError> {
    let recording = match record {
        Some(path) => Some(Arc::new(Mutex::new(
            CallRecording::create(path).map_err(|error| AgentError::Media(error.to_string()))?,
        ))),
        None => None,
    };
    // Until the callee's SDP says where to send, the leg listens only.
    let placeholder = std::net::SocketAddr::from(([127, 0, 0, 1], 9));
    let mut config = LegConfig {
        sending: false,
        ..LegConfig::new(Codec::Pcmu, placeholder)
    };
    let (heard_sender, mut heard) = mpsc::unbounded_channel();
    config = config.with_tap(Box::new(CallTap {
        voice: VoiceDetector::default(),
        barge_in,
        recording: recording.clone(),
        heard: heard_sender,
    }));
    let mut leg = media
        .open_leg(config)
        .map_err(|error| AgentError::Media(error.to_string()))?;
    // Our side of the recording: the prompts as the callee hears them,
    // written as their time comes.
    let mut played = PlayedAudio::default();
    let mut recording_clock = tokio::time::interval(Duration::from_millis(100));
    let (updates, mut settled) = mpsc::unbounded_channel();
    order.media = Some(MediaOffer {
        local_rtp: leg.local_addr(),
        updates,
    });
    let call = agent.call(order);
    tokio::pin!(call);
    let mut codec: Option<Codec> = None;
    let mut speech: Vec<SpeechSegment> = Vec::new();
    let mut barge_in_at: Option<Duration> = None;
    let mut prompt_stopped = false;
    let mut flow = Flow::default();
    let listen_timer = tokio::time::sleep(Duration::from_secs(86_400));
    tokio::pin!(listen_timer);
    let result = loop {
        let mut actions = Vec::new();
        tokio::select! {
            result = &mut call => break result,
            Some(update) = settled.recv() => match update {
                CallUpdate::Media(negotiated) => {
                    codec = Some(negotiated.codec);
                    let _ = leg.negotiate(&negotiated);
                }
                CallUpdate::Answered { call_id } => {
                    flow.call_id = Some(call_id);
                    actions = conversation.handle(FlowEvent::Answered);
                }
                CallUpdate::MediaFailed(_) => {}
            },
            Some(event) = leg.next_event() => {
                log_event(&event);
                match event {
                    LegEvent::PlaybackDone(_) | LegEvent::PlaybackStopped(_) => {
                        prompt_stopped |= matches!(event, LegEvent::PlaybackStopped(_));
                        flow.prompts_playing = flow.prompts_playing.saturating_sub(1);
                        if flow.prompts_playing == 0 {
                            actions = conversation.handle(FlowEvent::PromptsDone);
                        }
                    }
                    LegEvent::Dtmf(digit) => actions = conversation.handle(FlowEvent::Digit(digit)),
                    LegEvent::FirstPacket { .. } => {}
                }
            }
            () = &mut listen_timer, if flow.listening => {
                flow.listening = false;
                actions = conversation.handle(FlowEvent::Silence);
            }
            Some(event) = heard.recv() => match event {
                Heard::Speech(VadEvent::SpeechStart { at }) => {
                    speech.push(SpeechSegment {
                        start_ms: at.as_millis() as u64,
                        end_ms: None,
                    });
                    flow.speaking = true;
                    if flow.listening {
                        flow.listening = false;
                        actions = conversation.handle(FlowEvent::SpeechStarted);
                    }
                }
                Heard::Speech(VadEvent::SpeechEnd { at }) => {
                    flow.speaking = false;
                    if let Some(segment) = speech.last_mut() {
                        segment.end_ms = Some(at.as_millis() as u64);
                    }
                }
                Heard::BargeIn(at) => {
                    barge_in_at.get_or_insert(at);
                }
            },
            _ = recording_clock.tick(), if recording.is_some() => {
                if let Some(recording) = &recording {
                    played.write_due(recording);
                }
            }
        }
        // An action can answer at once (a listen while the callee speaks).
        while !actions.is_empty() {
            let mut more = Vec::new();
            for action in actions {
                match action {
                    FlowAction::Play(prompt) => {
                        if recording.is_some() {
                            played.queue(&prompt, codec.unwrap_or(Codec::Pcmu));
                        }
                        if leg.play(prompt).is_ok() {
                            flow.prompts_playing += 1;
                        }
                    }
                    FlowAction::Listen(within) => {
                        if flow.speaking {
                            flow.listening = false;
                            more.extend(conversation.handle(FlowEvent::SpeechStarted));
                        } else {
                            flow.listening = true;
                            listen_timer
                                .as_mut()
                                .reset(tokio::time::Instant::now() + within);
                        }
                    }
                    FlowAction::HangUp => {
                        flow.listening = false;
                        if let Some(call_id) = flow.call_id.take() {
                            agent.hang_up(call_id).await;
                        }
                    }
                }
            }
            actions = more;
        }
    };
    let closed = close(leg).await;
    let mut report = result?;
    // What the tap said before the leg closed.
    while let Ok(event) = heard.try_recv() {
        if let Heard::Speech(VadEvent::SpeechEnd { at }) = event
            && let Some(segment) = speech.last_mut()
        {
            segment.end_ms = Some(at.as_millis() as u64);
        }
    }
    if let Some(leg_report) = closed {
        report.dtmf = leg_report.digits.clone();
        let mut media = summary(codec, &leg_report);
        media.speech = speech;
        // A barge-in counts when it cut a prompt short.
        media.barge_in_ms = barge_in_at
            .filter(|_| prompt_stopped)
            .map(|at| at.as_millis() as u64);
        report.media = Some(media);
    }
    if let Some(recording) = recording {
        played.write_due(&recording);
        // The tap went with the leg, so this is the last holder.
        match Arc::try_unwrap(recording) {
            Ok(lock) => {
                let recording = lock.into_inner().unwrap_or_else(PoisonError::into_inner);
                match recording.finish() {
                    Ok(path) => report.recording = Some(path),
                    Err(error) => tracing::warn!(%error, "the call's recording is lost"),
                }
            }
            Err(_) => tracing::warn!("the call's recording is still in use; it is not finished"),
        }
    }
    Ok(report)
}

/// Where the conversation stands, as the call loop tracks it.
#[derive(Debug, Default)]
struct Flow {
    /// Known once answered; cleared when we hang up.
    call_id: Option<String>,
    prompts_playing: usize,
    listening: bool,
    speaking: bool,
}

/// Listens to the callee on the media thread: voice activity (and barge-in),
/// and the recording.
struct CallTap {
    voice: VoiceDetector,
    barge_in: bool,
    recording: Option<Arc<Mutex<CallRecording>>>,
    heard: mpsc::UnboundedSender<Heard>,
}

/// What the tap tells the call.
#[derive(Debug)]
enum Heard {
    Speech(VadEvent),
    /// Speech began while a prompt may have been playing, so playback was
    /// told to stop; the callee's media time.
    BargeIn(Duration),
}

impl AudioTap for CallTap {
    fn on_frame(&mut self, media_time: Duration, samples: &[i16]) -> TapAction {
        if let Some(recording) = &self.recording {
            let mut recording = recording.lock().unwrap_or_else(PoisonError::into_inner);
            if let Err(error) = recording.push_received(media_time, samples) {
                tracing::debug!(%error, "a received frame missed the recording");
            }
        }
        self.voice.push_frame(media_time, samples);
        let mut action = TapAction::Continue;
        while let Some(event) = self.voice.poll_event() {
            if self.barge_in && matches!(event, VadEvent::SpeechStart { .. }) {
                action = TapAction::StopPlayback;
                let _ = self.heard.send(Heard::BargeIn(media_time));
            }
            let _ = self.heard.send(Heard::Speech(event));
        }
        action
    }
}

/// The prompts of a call decoded as the callee hears them, and how much of
/// them the recording has.
#[derive(Default)]
struct PlayedAudio {
    samples: Vec<i16>,
    started: Option<tokio::time::Instant>,
    written: usize,
}

impl PlayedAudio {
    /// Adds a prompt after the ones queued, or now when they have all
    /// played (the gap is silence).
    fn queue(&mut self, prompt: &EncodedPrompt, codec: Codec) {
        let started = *self.started.get_or_insert_with(tokio::time::Instant::now);
        let now = (started.elapsed().as_secs_f64() * 8000.0) as usize;
        if self.samples.len() < now {
            self.samples.resize(now, 0);
        }
        let mut index = 0;
        while let Some(frame) = prompt.frame(codec, index) {
            self.samples.extend(frame.iter().map(|&code| match codec {
                Codec::Pcmu => dialhound_media::g711::mulaw_decode(code),
                Codec::Pcma => dialhound_media::g711::alaw_decode(code),
            }));
            index += 1;
        }
    }

    /// Writes the samples whose time has come; the prompts start at media
    /// time zero, as the callee's audio does.
    fn write_due(&mut self, recording: &Mutex<CallRecording>) {
        let Some(started) = self.started else {
            return;
        };
        let due = (started.elapsed().as_secs_f64() * 8000.0) as usize;
        let end = due.min(self.samples.len());
        if end <= self.written {
            return;
        }
        let at = Duration::from_secs_f64(self.written as f64 / 8000.0);
        let mut recording = recording.lock().unwrap_or_else(PoisonError::into_inner);
        if let Err(error) = recording.push_sent(at, &self.samples[self.written..end]) {
            tracing::debug!(%error, "played audio missed the recording");
        }
        self.written = end;
    }
}

fn log_event(event: &LegEvent) {
    match event {
        LegEvent::Dtmf(digit) => tracing::debug!(%digit, "the callee pressed a key"),
        LegEvent::FirstPacket { source } => tracing::debug!(%source, "first RTP from the callee"),
        LegEvent::PlaybackDone(_) | LegEvent::PlaybackStopped(_) => {}
    }
}

async fn close(leg: LegHandle) -> Option<LegReport> {
    match leg.close().await {
        Ok(report) => Some(report),
        Err(error) => {
            tracing::warn!(%error, "a media leg closed without its report");
            None
        }
    }
}

fn summary(codec: Option<Codec>, leg: &LegReport) -> MediaSummary {
    let quality = &leg.quality;
    MediaSummary {
        codec: codec.map(|codec| match codec {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
        }),
        local_rtp_port: leg.local_port,
        packets_sent: quality.packets_sent,
        packets_received: quality.packets_received,
        packets_lost: quality.lost,
        jitter_ms: quality.jitter_ms,
        mos: (quality.packets_received > 0).then_some(quality.mos),
        malformed_received: leg.malformed_received,
        send_failures: leg.send_failures,
        speech: Vec::new(),
        barge_in_ms: None,
    }
}
