//! One call with its media: an RTP leg is opened before the INVITE so that
//! our offer can name its port, takes whatever the callee's SDP settles (early
//! media, the answer, a re-INVITE), plays the prompts once the callee answers,
//! hears the keys pressed, and is closed with the call, its figures going
//! into the call's report.

use std::sync::Arc;

use dialhound_media::encoded::EncodedPrompt;
use dialhound_media::engine::{LegConfig, LegEvent, LegHandle, LegReport, MediaEngine};
use dialhound_media::sdp::Codec;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::sip_agent::{AgentError, CallOrder, CallReport, CallUpdate, MediaOffer, SipAgent};

/// A call's media as `dialhound call --json` and the CDRs show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MediaSummary {
    /// `PCMU` or `PCMA`, once the callee's SDP settled one.
    pub codec: Option<&'static str>,
    pub local_rtp_port: u16,
    pub packets_sent: u64,
    pub packets_received: u64,
    pub packets_lost: u64,
    pub jitter_ms: f64,
    /// Estimated mean opinion score (1 to 4.5), when the callee sent audio.
    pub mos: Option<f64>,
    /// Datagrams on our RTP port that were not the callee's RTP.
    pub malformed_received: u64,
    pub send_failures: u64,
}

/// Places `order` with a media leg from `media` and plays `prompts` once the
/// callee answers. The report carries the keys pressed (`dtmf`) and the
/// media figures.
pub async fn place_with_media(
    agent: &SipAgent,
    media: &Arc<MediaEngine>,
    mut order: CallOrder,
    prompts: &[EncodedPrompt],
) -> Result<CallReport, AgentError> {
    // Until the callee's SDP says where to send, the leg listens only.
    let placeholder = std::net::SocketAddr::from(([127, 0, 0, 1], 9));
    let mut leg = media
        .open_leg(LegConfig {
            sending: false,
            ..LegConfig::new(Codec::Pcmu, placeholder)
        })
        .map_err(|error| AgentError::Media(error.to_string()))?;
    let (updates, mut settled) = mpsc::unbounded_channel();
    order.media = Some(MediaOffer {
        local_rtp: leg.local_addr(),
        updates,
    });
    let call = agent.call(order);
    tokio::pin!(call);
    let mut codec: Option<Codec> = None;
    let result = loop {
        tokio::select! {
            result = &mut call => break result,
            Some(update) = settled.recv() => match update {
                CallUpdate::Media(negotiated) => {
                    codec = Some(negotiated.codec);
                    let _ = leg.negotiate(&negotiated);
                }
                CallUpdate::Answered => {
                    for prompt in prompts {
                        let _ = leg.play(prompt.clone());
                    }
                }
                CallUpdate::MediaFailed(_) => {}
            },
            Some(event) = leg.next_event() => log_event(&event),
        }
    };
    let closed = close(leg).await;
    let mut report = result?;
    if let Some(leg_report) = closed {
        report.dtmf = leg_report.digits.clone();
        report.media = Some(summary(codec, &leg_report));
    }
    Ok(report)
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
    }
}
