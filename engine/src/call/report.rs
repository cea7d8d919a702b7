//! What a call's outcome is reported as: the SIP result, the trunks that
//! failed it first, and what its media heard.

use serde::Serialize;

use dialhound_line_pool::CallResult;

/// A trunk that failed a call for a trunk-side reason before another trunk
/// took it over. Such a try is not an attempt on the customer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailedTrunk {
    pub trunk: String,
    pub outcome: &'static str,
    pub sip_status: Option<u16>,
    pub reason: String,
}

/// What `dialhound call` prints.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallReport {
    pub outcome: &'static str,
    pub sip_status: Option<u16>,
    pub reason: String,
    pub trunk: String,
    pub call_id: String,
    pub post_dial_delay_ms: Option<u64>,
    pub ring_ms: u64,
    pub talk_ms: u64,
    pub hung_up_by: Option<&'static str>,
    pub retry_after_seconds: Option<u64>,
    pub redirect_to: Option<String>,
    pub retransmissions: u64,
    /// Trunks that failed this call before `trunk` took it, in order.
    pub failovers: Vec<FailedTrunk>,
    /// Why the callee's SDP could not be used, when it could not.
    pub media_error: Option<String>,
    /// The keys the callee pressed, in order (RFC 4733 events, or tones heard
    /// in the audio when the callee offers no events).
    pub dtmf: String,
    /// The call's RTP figures; absent for a call placed without media.
    pub media: Option<MediaSummary>,
    /// The stereo WAV of the call (left: the callee, right: us), if recorded.
    pub recording: Option<std::path::PathBuf>,
    /// How the line pool counted the call on `trunk`.
    #[serde(skip)]
    pub result: CallResult,
}

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
    /// The callee's speech, as voice activity detection heard it.
    pub speech: Vec<SpeechSegment>,
    /// When the callee's speech cut a playing prompt short (barge-in), in
    /// the media time of their stream.
    pub barge_in_ms: Option<u64>,
}
/// One stretch of the callee's speech, in the media time of their stream.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpeechSegment {
    pub start_ms: u64,
    /// Absent when the call ended mid-speech.
    pub end_ms: Option<u64>,
}

impl CallReport {
    pub(super) fn as_failed_trunk(&self) -> FailedTrunk {
        FailedTrunk {
            trunk: self.trunk.clone(),
            outcome: self.outcome,
            sip_status: self.sip_status,
            reason: self.reason.clone(),
        }
    }
}
