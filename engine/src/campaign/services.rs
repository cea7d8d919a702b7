//! What every campaign's calls use: the daemon's parts, handed to the
//! campaigns when the daemon starts.

use std::sync::Arc;

use crate::call::sip_agent::SipAgent;
use crate::campaign::metrics::CampaignMetrics;
use crate::config::SmsConfig;
use crate::ingest::Directory;
use crate::sms::SmsSender;
use crate::store::Store;

/// What every campaign's calls use: the daemon's parts.
pub struct Services {
    pub store: Arc<dyn Store>,
    pub directory: Directory,
    pub agent: SipAgent,
    /// Where recordings and the prompt cache go.
    pub data_dir: std::path::PathBuf,
    /// espeak-ng's settings when a campaign names no voice.
    pub voice: String,
    pub tts_rate: f32,
    /// The tiers in the order of `[[trunk]]`; the first is used when a rule
    /// names no line.
    pub tiers: Vec<String>,
    /// All trunks' channels and calls per second together: the pacer never
    /// asks for more.
    pub max_channels: u32,
    pub max_cps: u32,
    pub metrics: Arc<CampaignMetrics>,
    /// What the campaigns' SMS go out through.
    pub sms: SmsSender,
    pub sms_settings: SmsConfig,
}
