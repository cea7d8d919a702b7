//! The daemon's TOML configuration.
//!
//! Every section refuses unknown keys, so a typo is an error that names the key and
//! its line instead of a setting that silently does nothing.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::ingest::ColumnMapping;
use crate::store::customer::AttributeSchema;

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub daemon: DaemonConfig,
    #[serde(default)]
    pub sip: SipConfig,
    #[serde(default)]
    pub media: MediaConfig,
    #[serde(default)]
    pub import: ImportConfig,
    #[serde(default)]
    pub health: HealthSettings,
    #[serde(default, rename = "trunk")]
    pub trunks: Vec<dialhound_line_pool::TrunkConfig>,
    #[serde(default, rename = "campaign")]
    pub campaigns: Vec<CampaignConfig>,
    #[serde(default)]
    pub sms: SmsConfig,
    #[serde(default, rename = "sms_provider")]
    pub sms_providers: Vec<SmsProviderConfig>,
    #[serde(default)]
    pub links: Option<LinksConfig>,
}

/// `[links]`: tracked short links. With it, a template's `{link}` becomes a
/// link unique to each SMS, `public` + `/` + a token, which the daemon
/// answers on `listen` by recording the click and redirecting to the
/// campaign's `sms_link`; without it, `{link}` is `sms_link` as written.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LinksConfig {
    /// Where the daemon serves its short links over HTTP (a proxy in front
    /// of it holds the public name and TLS).
    pub listen: std::net::SocketAddr,
    /// How texts write the links before `/TOKEN`: a host and, if wanted, a
    /// path (`https://` may be left out, phones open such links anyway).
    pub public: String,
    /// Take the visitor's address from the `X-Forwarded-For` a proxy in
    /// front adds, instead of the peer's (which is then the proxy's).
    #[serde(default)]
    pub trust_proxy: bool,
}

impl LinksConfig {
    fn problem(&self) -> Option<String> {
        let public = &self.public;
        let longest = dialhound_rules::sms::LINK_LENGTH;
        let length = public.chars().count() + 1 + crate::store::sms::TrackedLink::TOKEN_LENGTH;
        if public.is_empty() || public.chars().any(|c| c.is_whitespace() || c.is_control()) {
            Some(format!(
                "[links] public `{public}` must be a host such as `dh.example.cn`, without spaces"
            ))
        } else if public.ends_with('/') {
            Some(format!(
                "[links] public `{public}` must not end with `/`: the daemon adds `/` and the token"
            ))
        } else if length > longest {
            Some(format!(
                "[links] public `{public}` makes links of {length} characters, and templates are checked for links of {longest}: use a shorter host (the `https://` can go)"
            ))
        } else {
            None
        }
    }
}

/// `[sms]`: what every SMS keeps to, whichever campaign sends it.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SmsConfig {
    /// The most SMS one customer gets in 24 hours, across campaigns.
    #[serde(default = "SmsConfig::default_per_day")]
    pub per_day: u32,
    /// Replies that put the sender's number on the DNC list, compared with
    /// the reply trimmed and, for Latin letters, in any case.
    #[serde(default = "SmsConfig::default_opt_out_words")]
    pub opt_out_words: Vec<String>,
    /// How long an `on OUTCOME send sms` without `within`, or a script's
    /// `send sms`, may wait for the policy's hours or a provider.
    #[serde(default = "SmsConfig::default_within")]
    pub default_within_seconds: u64,
}

impl SmsConfig {
    fn default_per_day() -> u32 {
        2
    }
    fn default_opt_out_words() -> Vec<String> {
        ["TD", "T", "STOP", "退订", "N"].map(str::to_owned).to_vec()
    }
    fn default_within() -> u64 {
        3600
    }
}

impl Default for SmsConfig {
    fn default() -> SmsConfig {
        SmsConfig {
            per_day: SmsConfig::default_per_day(),
            opt_out_words: SmsConfig::default_opt_out_words(),
            default_within_seconds: SmsConfig::default_within(),
        }
    }
}

/// One `[[sms_provider]]`: an SMS center dialhound submits to.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SmsProviderConfig {
    pub name: String,
    /// `smpp` (SMPP 3.4, bound as a transceiver); the only one built.
    #[serde(default = "SmsProviderConfig::default_protocol")]
    pub protocol: String,
    /// `host:port` of the SMS center.
    pub address: String,
    pub system_id: String,
    pub password: String,
    #[serde(default)]
    pub system_type: String,
    /// Submits sent and not yet answered, at most.
    #[serde(default = "SmsProviderConfig::default_window")]
    pub window: usize,
    /// Messages a second, at most (a token bucket holding one second's).
    #[serde(default = "SmsProviderConfig::default_rate")]
    pub rate: f64,
}

impl SmsProviderConfig {
    fn default_protocol() -> String {
        "smpp".to_owned()
    }
    fn default_window() -> usize {
        10
    }
    fn default_rate() -> f64 {
        100.0
    }

    /// What is wrong with the table, if anything.
    pub fn problem(&self) -> Option<String> {
        if self.protocol != "smpp" {
            return Some(format!(
                "sms_provider `{}`: protocol `{}` is not supported; use `smpp`",
                self.name, self.protocol
            ));
        }
        if self.window == 0 || self.rate.is_nan() || self.rate <= 0.0 {
            return Some(format!(
                "sms_provider `{}`: window and rate must be above 0",
                self.name
            ));
        }
        if self.system_id.len() > 15 || self.password.len() > 8 || self.system_type.len() > 12 {
            return Some(format!(
                "sms_provider `{}`: SMPP allows a system_id of 15 characters, a password of 8 and a system_type of 12",
                self.name
            ));
        }
        None
    }
}

/// One `[[campaign]]` table: who it calls is the rules file's business; how
/// many at once and how fast is the pacer's.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CampaignConfig {
    pub name: String,
    /// The `.rules` file: its rules decide who is called and with which
    /// script; its `script` blocks are what the calls say.
    pub rules: PathBuf,
    /// Answered calls the campaign can carry at once.
    #[serde(default = "CampaignConfig::default_capacity")]
    pub capacity: u32,
    /// The pacer's guess before it has measured one.
    #[serde(default = "CampaignConfig::default_answer_rate")]
    pub initial_answer_rate: f64,
    /// Abandoned calls allowed, as a share of answered calls.
    #[serde(default = "CampaignConfig::default_abandon_target")]
    pub abandon_target: f64,
    /// How long the pacer's measurements look back.
    #[serde(default = "CampaignConfig::default_window")]
    pub window_seconds: u64,
    /// How long a call rings before we give up.
    #[serde(default = "CampaignConfig::default_ring_timeout")]
    pub ring_timeout_seconds: u64,
    /// The longest an answered call lasts, whatever its script does.
    #[serde(default = "CampaignConfig::default_max_call")]
    pub max_call_seconds: u64,
    /// Record every answered call to a stereo WAV under the data directory.
    #[serde(default)]
    pub record: bool,
    /// The espeak-ng voice of this campaign's scripts; `[media] voice` when
    /// absent.
    #[serde(default)]
    pub voice: Option<String>,
    /// Refuse to start when espeak-ng cannot speak the voice; `false` runs
    /// the scripts with silent prompts instead (the demo, on a machine
    /// without espeak-ng).
    #[serde(default = "CampaignConfig::default_require_voice")]
    pub require_voice: bool,
    /// Spoken to a customer who answers while every line of the campaign is
    /// taken, before we hang up.
    #[serde(default = "CampaignConfig::default_apology")]
    pub apology: String,
    /// The address an SMS template's `{link}` becomes (not yet a tracked
    /// short link: the address itself).
    #[serde(default)]
    pub sms_link: Option<String>,
    /// The `[[sms_provider]]` names this campaign's SMS go through, the
    /// first that is up first; every provider in file order when absent.
    #[serde(default)]
    pub sms_providers: Vec<String>,
}

impl CampaignConfig {
    fn default_capacity() -> u32 {
        50
    }
    fn default_answer_rate() -> f64 {
        0.3
    }
    fn default_abandon_target() -> f64 {
        0.03
    }
    fn default_window() -> u64 {
        60
    }
    fn default_ring_timeout() -> u64 {
        30
    }
    fn default_max_call() -> u64 {
        180
    }
    fn default_require_voice() -> bool {
        true
    }
    fn default_apology() -> String {
        "抱歉，现在线路繁忙，我们稍后再联系您。".to_owned()
    }

    /// What is wrong with the table, if anything.
    pub fn problem(&self) -> Option<String> {
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 64
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !name_ok {
            return Some(format!(
                "campaign name `{}` must be 1 to 64 letters, digits, `-` or `_`",
                self.name
            ));
        }
        if self.capacity == 0 {
            return Some(format!(
                "campaign `{}`: capacity must be at least 1",
                self.name
            ));
        }
        if !(self.initial_answer_rate > 0.0 && self.initial_answer_rate <= 1.0) {
            return Some(format!(
                "campaign `{}`: initial_answer_rate must be above 0 and at most 1",
                self.name
            ));
        }
        if !(self.abandon_target > 0.0 && self.abandon_target < 1.0) {
            return Some(format!(
                "campaign `{}`: abandon_target must be between 0 and 1",
                self.name
            ));
        }
        if self.window_seconds == 0 || self.ring_timeout_seconds == 0 || self.max_call_seconds == 0
        {
            return Some(format!(
                "campaign `{}`: window_seconds, ring_timeout_seconds and max_call_seconds must be above 0",
                self.name
            ));
        }
        None
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonConfig {
    /// The sled database, recordings and prompt cache live here.
    pub data_dir: PathBuf,
    /// The control socket (a Unix socket, mode 0600).
    pub socket: PathBuf,
    /// Where `GET /metrics` is served; absent means no metrics listener.
    pub metrics: Option<SocketAddr>,
    /// The AES-256-GCM key file, created with mode 0600 when absent.
    pub key_file: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SipConfig {
    pub listen: SocketAddr,
    /// RFC 3261's T1, the first retransmission interval.
    #[serde(default = "default_t1_ms")]
    pub t1_ms: u64,
    /// RFC 3261's T2, the longest retransmission interval.
    #[serde(default = "default_t2_ms")]
    pub t2_ms: u64,
    /// How long a callee may ring before we CANCEL.
    #[serde(default = "default_ring_timeout_seconds")]
    pub ring_timeout_seconds: u64,
    /// OPTIONS keepalives to every trunk at this interval; 0 turns them off.
    #[serde(default = "default_keepalive_seconds")]
    pub keepalive_seconds: u64,
    /// The user part of our From and Contact when a trunk lists no caller IDs.
    #[serde(default = "default_caller_user")]
    pub caller_user: String,
}

fn default_t1_ms() -> u64 {
    500
}

fn default_t2_ms() -> u64 {
    4000
}

fn default_ring_timeout_seconds() -> u64 {
    30
}

fn default_keepalive_seconds() -> u64 {
    30
}

fn default_caller_user() -> String {
    "dialhound".to_owned()
}

impl Default for SipConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 5060)),
            t1_ms: default_t1_ms(),
            t2_ms: default_t2_ms(),
            ring_timeout_seconds: default_ring_timeout_seconds(),
            keepalive_seconds: default_keepalive_seconds(),
            caller_user: default_caller_user(),
        }
    }
}

impl SipConfig {
    /// The agent's settings.
    pub fn agent_settings(&self) -> crate::call::sip_agent::AgentSettings {
        let t1 = std::time::Duration::from_millis(self.t1_ms.max(1));
        crate::call::sip_agent::AgentSettings {
            listen: self.listen,
            timers: dialhound_sip::Timers {
                t1,
                t2: std::time::Duration::from_millis(self.t2_ms).max(t1),
                ..dialhound_sip::Timers::default()
            },
            ring_timeout: std::time::Duration::from_secs(self.ring_timeout_seconds.max(1)),
            keepalive_interval: (self.keepalive_seconds > 0)
                .then(|| std::time::Duration::from_secs(self.keepalive_seconds)),
            caller_user: self.caller_user.clone(),
            seed: None,
        }
    }
}

/// `[health]`: when a trunk stops taking calls and how it comes back. Every
/// trunk shares these; the defaults suit a carrier trunk.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthSettings {
    /// Share of trunk-side failures (5xx, timeouts, auth failures) in the
    /// window that opens the trunk: `0.10` is 10 %.
    pub failure_threshold: f64,
    /// Attempts the window must hold before the share counts.
    pub min_attempts: u32,
    pub window_seconds: u64,
    /// How long an open trunk rests before it is probed.
    pub cool_down_seconds: u64,
    /// The longest rest after the trunk fails its trial again and again.
    pub max_cool_down_seconds: u64,
    /// Trial calls a half-open trunk takes; all must succeed to close it.
    pub trial_calls: u32,
    /// Successful OPTIONS probes a half-open trunk needs.
    pub probes_to_close: u32,
    /// Consecutive unanswered OPTIONS keepalives that open a trunk.
    pub probe_failures_to_open: u32,
}

impl Default for HealthSettings {
    fn default() -> Self {
        let defaults = dialhound_line_pool::HealthConfig::default();
        Self {
            failure_threshold: defaults.failure_threshold,
            min_attempts: defaults.min_attempts,
            window_seconds: defaults.window.as_secs(),
            cool_down_seconds: defaults.cool_down.as_secs(),
            max_cool_down_seconds: defaults.max_cool_down.as_secs(),
            trial_calls: defaults.trial_calls,
            probes_to_close: defaults.probes_to_close,
            probe_failures_to_open: defaults.probe_failures_to_open,
        }
    }
}

impl HealthSettings {
    /// The line pool's health configuration, or what is wrong with these settings.
    pub fn health_config(&self) -> Result<dialhound_line_pool::HealthConfig, String> {
        use std::time::Duration;
        if !(self.failure_threshold > 0.0 && self.failure_threshold <= 1.0) {
            return Err(format!(
                "[health] failure_threshold must be above 0 and at most 1, not {}",
                self.failure_threshold
            ));
        }
        for (key, value) in [
            ("window_seconds", self.window_seconds),
            ("cool_down_seconds", self.cool_down_seconds),
            ("min_attempts", u64::from(self.min_attempts)),
        ] {
            if value == 0 {
                return Err(format!("[health] {key} must be at least 1"));
            }
        }
        let cool_down = Duration::from_secs(self.cool_down_seconds);
        Ok(dialhound_line_pool::HealthConfig {
            failure_threshold: self.failure_threshold,
            min_attempts: self.min_attempts,
            window: Duration::from_secs(self.window_seconds),
            cool_down,
            max_cool_down: Duration::from_secs(self.max_cool_down_seconds).max(cool_down),
            trial_calls: self.trial_calls,
            probes_to_close: self.probes_to_close,
            probe_failures_to_open: self.probe_failures_to_open.max(1),
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MediaConfig {
    /// An inclusive range such as `"20000-29999"`: each call takes an even
    /// port for RTP and the next one for RTCP.
    pub rtp_ports: String,
    /// The address the RTP sockets bind to and our SDP offers; the SIP
    /// listen address's when absent.
    pub address: Option<std::net::IpAddr>,
    /// Media threads, each with one 20 ms clock for all its calls; by
    /// default one per core, at most [`DEFAULT_MAX_MEDIA_WORKERS`].
    pub workers: Option<usize>,
    /// Whether the media threads ask for real-time scheduling (`SCHED_FIFO`
    /// priority 10), so that busy threads elsewhere on the host do not make
    /// frames late. It needs `CAP_SYS_NICE` (root, or
    /// `AmbientCapabilities=CAP_SYS_NICE` in a systemd unit) or an
    /// `RLIMIT_RTPRIO` of 10; refused, the threads ask for nice -10 and
    /// then run as any other, and the log says why.
    pub realtime: bool,
    pub prompts: PathBuf,
    /// espeak-ng voice for spoken prompts: `cmn` (Mandarin), `en`, ...
    pub voice: String,
    /// Speaking rate, 0.9 to 1.2 times espeak-ng's normal speed.
    pub tts_rate: f32,
}

/// The most media threads started when `[media] workers` is not set: one
/// sends for a few thousand calls, and each of them, real-time, takes a core
/// first; the cores left serve signalling and the rest.
pub const DEFAULT_MAX_MEDIA_WORKERS: usize = 4;

/// One media thread per core, at most [`DEFAULT_MAX_MEDIA_WORKERS`]. Two
/// threads on two cores send with a quarter of the lateness of one, which
/// the SIP stack and the peer's traffic keep busy most of each millisecond.
fn default_media_workers() -> usize {
    std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .clamp(1, DEFAULT_MAX_MEDIA_WORKERS)
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            rtp_ports: "20000-29999".to_owned(),
            address: None,
            workers: None,
            realtime: true,
            prompts: PathBuf::from("examples/prompts"),
            voice: "cmn".to_owned(),
            tts_rate: 1.0,
        }
    }
}

impl MediaConfig {
    /// The engine's settings, or what is wrong with these; `sip_address` is
    /// used when `address` is absent.
    pub fn engine_config(
        &self,
        sip_address: std::net::IpAddr,
    ) -> Result<dialhound_media::engine::MediaConfig, String> {
        let range = self
            .rtp_ports
            .split_once('-')
            .and_then(|(low, high)| {
                Some((
                    low.trim().parse::<u16>().ok()?,
                    high.trim().parse::<u16>().ok()?,
                ))
            })
            .filter(|(low, high)| low < high)
            .ok_or_else(|| {
                format!(
                    "[media] rtp_ports = \"{}\" is not a range of ports such as \"20000-29999\"",
                    self.rtp_ports
                )
            })?;
        let workers = match self.workers {
            Some(workers) if !(1..=64).contains(&workers) => {
                return Err(format!("[media] workers must be 1 to 64, not {workers}"));
            }
            Some(workers) => workers,
            None => default_media_workers(),
        };
        let bind_ip = match self.address {
            Some(address) => address,
            None if sip_address.is_unspecified() => {
                return Err(
                    "[media] address is needed when [sip] listens on every address: our SDP must name one"
                        .to_owned(),
                );
            }
            None => sip_address,
        };
        Ok(dialhound_media::engine::MediaConfig {
            workers,
            port_range: range.0..=range.1,
            bind_ip,
            realtime: self.realtime,
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportConfig {
    /// ISO 3166 region used for numbers written without a country code.
    #[serde(default = "default_region")]
    pub default_region: String,
    /// IANA zone for times written without an offset.
    #[serde(default = "default_zone")]
    pub default_zone: String,
    /// The rules file whose `schema customer { .. }` block types the attributes
    /// that import fills from extra columns. Absent: no attributes.
    #[serde(default)]
    pub schema: Option<PathBuf>,
    /// Which spreadsheet column feeds each customer field.
    #[serde(default)]
    pub columns: ColumnMapping,
    /// Loaded from `schema` when the file is read.
    #[serde(skip)]
    pub attributes: AttributeSchema,
}

impl Default for ImportConfig {
    fn default() -> Self {
        Self {
            default_region: default_region(),
            default_zone: default_zone(),
            schema: None,
            attributes: AttributeSchema::default(),
            columns: ColumnMapping::default(),
        }
    }
}

fn default_region() -> String {
    "CN".to_owned()
}

fn default_zone() -> String {
    "Asia/Shanghai".to_owned()
}

/// A configuration file that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config `{path}`: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
}

impl Config {
    /// Reads and checks a configuration file. Relative paths inside it are taken
    /// relative to the file's own directory, so the daemon and the `dialhound`
    /// command agree on them from any working directory.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new(""));
        Self::parse_in(&text, path, base)
    }

    /// Parses configuration text; `path` is only used in error messages, and
    /// relative paths stay as written.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        Self::parse_in(text, path, Path::new(""))
    }

    fn parse_in(text: &str, path: &Path, base: &Path) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|error| {
            let offset = error.span().map(|span| span.start).unwrap_or(0);
            let (line, column) = line_and_column(text, offset);
            ConfigError::Invalid {
                path: path.to_owned(),
                line,
                column,
                message: error.message().trim().to_owned(),
            }
        })?;
        let mut config = config;
        for relative in [
            &mut config.daemon.data_dir,
            &mut config.daemon.socket,
            &mut config.daemon.key_file,
            &mut config.media.prompts,
        ] {
            *relative = base.join(&*relative);
        }
        if let Some(schema) = &mut config.import.schema {
            *schema = base.join(&*schema);
        }
        for campaign in &mut config.campaigns {
            campaign.rules = base.join(&campaign.rules);
        }
        config.check(text, path)?;
        config.import.attributes = config.load_schema(text, path)?;
        Ok(config)
    }

    /// Compiles the schema's rules file and takes its customer fields.
    fn load_schema(&self, text: &str, path: &Path) -> Result<AttributeSchema, ConfigError> {
        let Some(rules) = &self.import.schema else {
            return Ok(AttributeSchema::default());
        };
        let (line, column) = line_and_column(text, text.find("schema").unwrap_or(0));
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_owned(),
            line,
            column,
            message,
        };
        let source = std::fs::read_to_string(rules).map_err(|error| {
            invalid(format!(
                "cannot read schema rules file `{}`: {error}",
                rules.display()
            ))
        })?;
        let program = dialhound_rules::compile(&source, &rules.display().to_string()).map_err(
            |diagnostics| {
                invalid(format!(
                    "schema rules file `{}` has errors (run `dialhound rules check` on it):\n{}",
                    rules.display(),
                    diagnostics.render_short(&source)
                ))
            },
        )?;
        let schema = AttributeSchema::from_rules(program.schema())
            .map_err(|message| invalid(format!("schema in `{}`: {message}", rules.display())))?;
        for name in self.import.columns.attributes.keys() {
            if !schema.attributes.contains_key(name) {
                return Err(invalid(format!(
                    "column mapping names attribute `{name}`, which the schema in `{}` does not declare",
                    rules.display()
                )));
            }
        }
        Ok(schema)
    }

    /// Checks that serde cannot express: value ranges and cross-references.
    /// The import settings this configuration describes.
    pub fn import_settings(&self) -> crate::ingest::import::ImportSettings {
        crate::ingest::import::ImportSettings {
            schema: self.import.attributes.clone(),
            region: crate::ingest::phone::Region::parse(&self.import.default_region)
                .expect("checked when the config was loaded"),
            civil_zone: jiff::tz::TimeZone::get(&self.import.default_zone)
                .expect("checked when the config was loaded"),
        }
    }

    fn check(&self, text: &str, path: &Path) -> Result<(), ConfigError> {
        let invalid = |needle: &str, message: String| {
            let offset = text.find(needle).unwrap_or(0);
            let (line, column) = line_and_column(text, offset);
            ConfigError::Invalid {
                path: path.to_owned(),
                line,
                column,
                message,
            }
        };
        if crate::ingest::phone::Region::parse(&self.import.default_region).is_none() {
            return Err(invalid(
                "default_region",
                format!(
                    "`{}` is not a known region code; use an ISO 3166 code such as `CN`",
                    self.import.default_region
                ),
            ));
        }
        if jiff::tz::TimeZone::get(&self.import.default_zone).is_err() {
            return Err(invalid(
                "default_zone",
                format!(
                    "`{}` is not a known time zone; use an IANA name such as `Asia/Shanghai`",
                    self.import.default_zone
                ),
            ));
        }
        let mut campaign_names = std::collections::BTreeSet::new();
        for campaign in &self.campaigns {
            let needle = format!("\"{}\"", campaign.name);
            if let Some(problem) = campaign.problem() {
                return Err(invalid(&needle, problem));
            }
            if !campaign_names.insert(campaign.name.as_str()) {
                return Err(invalid(
                    &needle,
                    format!("two [[campaign]] tables are named `{}`", campaign.name),
                ));
            }
        }
        if let Some(problem) = self.links.as_ref().and_then(LinksConfig::problem) {
            return Err(invalid("public", problem));
        }
        let mut providers = std::collections::BTreeSet::new();
        for provider in &self.sms_providers {
            let needle = format!("\"{}\"", provider.name);
            if let Some(problem) = provider.problem() {
                return Err(invalid(&needle, problem));
            }
            if !providers.insert(provider.name.as_str()) {
                return Err(invalid(
                    &needle,
                    format!("two [[sms_provider]] tables are named `{}`", provider.name),
                ));
            }
        }
        for campaign in &self.campaigns {
            if let Some(unknown) = campaign
                .sms_providers
                .iter()
                .find(|name| !providers.contains(name.as_str()))
            {
                return Err(invalid(
                    &format!("\"{unknown}\""),
                    format!(
                        "campaign `{}` names sms_provider `{unknown}`, which no [[sms_provider]] table declares",
                        campaign.name
                    ),
                ));
            }
        }
        let mut names = std::collections::BTreeSet::new();
        for trunk in &self.trunks {
            if !names.insert(trunk.name.as_str()) {
                return Err(invalid(
                    &trunk.name,
                    format!("trunk `{}` is declared twice", trunk.name),
                ));
            }
        }
        Ok(())
    }
}

/// 1-based line and column of a byte offset.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |s| s.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[daemon]
data_dir = "var/data"
socket = "var/dialhound.sock"
key_file = "var/dialhound.key"
"#;

    #[test]
    fn minimal_config_takes_defaults() {
        let config = Config::parse(MINIMAL, Path::new("t.toml")).unwrap();
        assert_eq!(config.import.default_region, "CN");
        assert_eq!(config.import.columns.phone, "phone");
        assert!(config.trunks.is_empty());
    }

    #[test]
    fn health_settings_reach_the_line_pool_and_nonsense_is_refused() {
        let text = format!("{MINIMAL}[health]\nfailure_threshold = 0.25\ncool_down_seconds = 5\n");
        let config = Config::parse(&text, Path::new("t.toml")).unwrap();
        let health = config.health.health_config().unwrap();
        assert_eq!(health.failure_threshold, 0.25);
        assert_eq!(health.cool_down, std::time::Duration::from_secs(5));
        assert_eq!(health.min_attempts, 20, "unset keys keep the defaults");

        let too_high = format!("{MINIMAL}[health]\nfailure_threshold = 1.5\n");
        let config = Config::parse(&too_high, Path::new("t.toml")).unwrap();
        let error = config.health.health_config().unwrap_err();
        assert!(error.contains("failure_threshold"), "{error}");
        let no_window = format!("{MINIMAL}[health]\nwindow_seconds = 0\n");
        let config = Config::parse(&no_window, Path::new("t.toml")).unwrap();
        let error = config.health.health_config().unwrap_err();
        assert!(error.contains("window_seconds"), "{error}");
    }

    #[test]
    fn media_threads_are_realtime_unless_turned_off() {
        let address = std::net::IpAddr::from([127, 0, 0, 1]);
        let config = Config::parse(MINIMAL, Path::new("t.toml")).unwrap();
        assert!(config.media.engine_config(address).unwrap().realtime);

        let text = format!("{MINIMAL}[media]\nrealtime = false\n");
        let config = Config::parse(&text, Path::new("t.toml")).unwrap();
        assert!(!config.media.engine_config(address).unwrap().realtime);

        let text = format!("{MINIMAL}[media]\nrealtime = \"yes\"\n");
        let shown = Config::parse(&text, Path::new("t.toml"))
            .unwrap_err()
            .to_string();
        assert!(shown.starts_with("t.toml:7:"), "{shown}");
        assert!(shown.contains("invalid type"), "{shown}");
    }

    #[test]
    fn media_threads_are_one_per_core_up_to_a_cap_unless_set() {
        let address = std::net::IpAddr::from([127, 0, 0, 1]);
        let cores = std::thread::available_parallelism().map_or(1, |cores| cores.get());
        let config = Config::parse(MINIMAL, Path::new("t.toml")).unwrap();
        let workers = config.media.engine_config(address).unwrap().workers;
        assert_eq!(workers, cores.min(DEFAULT_MAX_MEDIA_WORKERS));
        assert!((1..=DEFAULT_MAX_MEDIA_WORKERS).contains(&workers));

        let text = format!("{MINIMAL}[media]\nworkers = 7\n");
        let config = Config::parse(&text, Path::new("t.toml")).unwrap();
        assert_eq!(config.media.engine_config(address).unwrap().workers, 7);

        let text = format!("{MINIMAL}[media]\nworkers = 0\n");
        let config = Config::parse(&text, Path::new("t.toml")).unwrap();
        let error = config.media.engine_config(address).unwrap_err();
        assert_eq!(error, "[media] workers must be 1 to 64, not 0");
    }

    #[test]
    fn unknown_key_names_the_key_and_line() {
        let text = format!("{MINIMAL}metrix = \"127.0.0.1:1\"\n");
        let error = Config::parse(&text, Path::new("t.toml")).unwrap_err();
        let shown = error.to_string();
        assert!(shown.starts_with("t.toml:6:"), "{shown}");
        assert!(shown.contains("unknown field `metrix`"), "{shown}");
    }

    #[test]
    fn wrong_type_names_the_line() {
        let text = MINIMAL.replace("\"var/data\"", "42");
        let shown = Config::parse(&text, Path::new("t.toml"))
            .unwrap_err()
            .to_string();
        assert!(shown.starts_with("t.toml:3:"), "{shown}");
        assert!(shown.contains("invalid type"), "{shown}");
    }

    #[test]
    fn unknown_region_is_refused() {
        let text = format!("{MINIMAL}[import]\ndefault_region = \"XX\"\n");
        let shown = Config::parse(&text, Path::new("t.toml"))
            .unwrap_err()
            .to_string();
        assert!(shown.contains("`XX` is not a known region code"), "{shown}");
        assert!(shown.starts_with("t.toml:7:"), "{shown}");
    }

    #[test]
    fn a_links_address_too_long_for_the_templates_checks_is_refused() {
        let links = |public: &str| {
            format!("{MINIMAL}[links]\nlisten = \"127.0.0.1:8088\"\npublic = \"{public}\"\n")
        };
        let config = Config::parse(&links("dh.example.cn"), Path::new("t.toml")).unwrap();
        assert_eq!(config.links.map(|l| l.public), Some("dh.example.cn".into()));
        let shown = Config::parse(
            &links("https://links.goodshop.example.cn"),
            Path::new("t.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(shown.contains("makes links of 42 characters"), "{shown}");
        assert!(shown.starts_with("t.toml:8:1:"), "{shown}");
        let shown = Config::parse(&links("dh.example.cn/"), Path::new("t.toml"))
            .unwrap_err()
            .to_string();
        assert!(shown.contains("must not end with `/`"), "{shown}");
    }

    #[test]
    fn shipped_example_config_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/dialhound.toml");
        let config = Config::load(&path).unwrap();
        assert!(!config.trunks.is_empty());
        assert!(
            config
                .import
                .attributes
                .attributes
                .contains_key("cart_value")
        );
        // Relative paths are taken from the config file's directory.
        assert!(config.daemon.data_dir.starts_with(path.parent().unwrap()));
    }
}
