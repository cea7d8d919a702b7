//! The control socket's protocol: JSON lines, one request and one response.
//!
//! A request is one JSON object with a `command` field:
//! ```json
//! {"command":"customer_find","phone":"138 0013 8000"}
//! ```
//! The response is one line, `{"ok":true,"result":{..}}` or
//! `{"ok":false,"error":{"code":"..","message":".."}}`. Error codes are stable;
//! messages are for people. An `import` request with `"progress":true` may receive
//! `{"event":"progress",..}` lines before its response.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::ingest::ColumnMapping;

/// The longest request line the daemon reads; a longer one is refused and skipped.
pub const MAX_REQUEST_BYTES: usize = 1 << 20;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    Status,
    Import {
        /// Absolute path of a file the daemon can read.
        path: PathBuf,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mapping: Option<ColumnMapping>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rejects: Option<PathBuf>,
        #[serde(default)]
        progress: bool,
    },
    CustomerShow {
        id: String,
    },
    CustomerFind {
        phone: String,
    },
    DncAdd {
        phone: String,
        #[serde(default)]
        reason: Option<String>,
    },
    DncRemove {
        phone: String,
    },
    DncList,
    TrunkList,
    TrunkDrain {
        name: String,
    },
    TrunkEnable {
        name: String,
    },
    /// An operator's test call: on one named trunk, or on a tier's best trunk
    /// with failover (the first tier when neither is named).
    Call {
        #[serde(default)]
        trunk: Option<String>,
        #[serde(default)]
        tier: Option<String>,
        /// With `tier`: stay in that tier rather than fall back to later ones.
        #[serde(default)]
        same_tier: bool,
        to: String,
        /// Seconds on the line once answered before we hang up.
        #[serde(default)]
        hold_seconds: Option<f64>,
        /// Seconds of ringing before we give up; the `[sip]` default otherwise.
        #[serde(default)]
        ring_timeout_seconds: Option<f64>,
        /// Place this many calls (a load test); the answer is a summary.
        #[serde(default)]
        count: Option<u32>,
        /// New calls per second when `count` is set.
        #[serde(default)]
        rate: Option<f64>,
        /// Text spoken (espeak-ng, the `[media]` voice) once the callee answers.
        #[serde(default)]
        say: Option<String>,
        /// A WAV file played once the callee answers, after `say`.
        #[serde(default)]
        play: Option<PathBuf>,
        /// Place the call without RTP: a signalling test.
        #[serde(default)]
        no_media: bool,
        /// Record both directions to a stereo WAV at this path.
        #[serde(default)]
        record: Option<PathBuf>,
        /// Let the prompts play on when the callee speaks.
        #[serde(default)]
        no_barge_in: bool,
    },
    CampaignStart {
        name: String,
    },
    CampaignPause {
        name: String,
    },
    CampaignResume {
        name: String,
    },
    CampaignStop {
        name: String,
    },
    CampaignList,
    CampaignShow {
        name: String,
    },
    /// Compile every campaign's rules file again; a file with errors is
    /// refused and the campaign keeps its rules.
    Reload,
    /// A campaign's call detail records, oldest first.
    Cdr {
        campaign: String,
        /// RFC 3339; from the first record when absent.
        #[serde(default)]
        since: Option<String>,
        /// At most this many records [default: 100,000].
        #[serde(default)]
        limit: Option<usize>,
    },
    /// A campaign's SMS records, in the order they were asked for.
    Sms {
        campaign: String,
        /// Only records with ids above this one (paging).
        #[serde(default)]
        after: Option<u64>,
        /// At most this many records [default: 100,000].
        #[serde(default)]
        limit: Option<usize>,
    },
}

/// Every command name, for errors and metrics labels.
pub const COMMANDS: &[&str] = &[
    "status",
    "import",
    "customer_show",
    "customer_find",
    "dnc_add",
    "dnc_remove",
    "dnc_list",
    "trunk_list",
    "trunk_drain",
    "trunk_enable",
    "call",
    "campaign_start",
    "campaign_pause",
    "campaign_resume",
    "campaign_stop",
    "campaign_list",
    "campaign_show",
    "reload",
    "cdr",
    "sms",
];

impl Request {
    pub fn command(&self) -> &'static str {
        match self {
            Request::Status => "status",
            Request::Import { .. } => "import",
            Request::CustomerShow { .. } => "customer_show",
            Request::CustomerFind { .. } => "customer_find",
            Request::DncAdd { .. } => "dnc_add",
            Request::DncRemove { .. } => "dnc_remove",
            Request::DncList => "dnc_list",
            Request::TrunkList => "trunk_list",
            Request::TrunkDrain { .. } => "trunk_drain",
            Request::TrunkEnable { .. } => "trunk_enable",
            Request::Call { .. } => "call",
            Request::CampaignStart { .. } => "campaign_start",
            Request::CampaignPause { .. } => "campaign_pause",
            Request::CampaignResume { .. } => "campaign_resume",
            Request::CampaignStop { .. } => "campaign_stop",
            Request::CampaignList => "campaign_list",
            Request::CampaignShow { .. } => "campaign_show",
            Request::Reload => "reload",
            Request::Cdr { .. } => "cdr",
            Request::Sms { .. } => "sms",
        }
    }

    /// Parses one request line; the error is the response to send.
    pub fn parse(line: &[u8]) -> Result<Request, ErrorBody> {
        let value: serde_json::Value = serde_json::from_slice(line).map_err(|error| {
            ErrorBody::new(
                "malformed_request",
                format!("the request is not valid JSON: {error}"),
            )
        })?;
        let command = value
            .get("command")
            .ok_or_else(|| ErrorBody::new("invalid_request", "the request has no `command` field"))?
            .as_str()
            .ok_or_else(|| ErrorBody::new("invalid_request", "`command` must be a string"))?;
        let Some(command) = COMMANDS.iter().find(|known| **known == command) else {
            return Err(ErrorBody::new(
                "unknown_command",
                format!(
                    "unknown command `{command}`; known commands: {}",
                    COMMANDS.join(", ")
                ),
            ));
        };
        let request: Request = serde_json::from_value(value.clone()).map_err(|error| {
            ErrorBody::new(
                "invalid_request",
                format!("invalid `{command}` request: {error}"),
            )
        })?;
        // serde does not refuse extra fields on commands without fields; do it here.
        let known = serde_json::to_value(&request).unwrap_or_default();
        if let (Some(given), Some(known)) = (value.as_object(), known.as_object()) {
            let optional = [
                "mapping",
                "rejects",
                "reason",
                "progress",
                "hold_seconds",
                "ring_timeout_seconds",
                "count",
                "rate",
            ];
            if let Some(extra) = given
                .keys()
                .find(|key| !known.contains_key(*key) && !optional.contains(&key.as_str()))
            {
                return Err(ErrorBody::new(
                    "invalid_request",
                    format!("invalid `{command}` request: unknown field `{extra}`"),
                ));
            }
        }
        Ok(request)
    }
}

/// What the daemon sends back: exactly one per request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
}

impl ErrorBody {
    pub fn new(code: &str, message: impl Into<String>) -> ErrorBody {
        ErrorBody {
            code: code.to_owned(),
            message: message.into(),
        }
    }
}

impl Response {
    pub fn success(result: impl Serialize) -> Response {
        match serde_json::to_value(result) {
            Ok(value) => Response {
                ok: true,
                result: Some(value),
                error: None,
            },
            Err(error) => Response::failure(ErrorBody::new("internal", error.to_string())),
        }
    }

    pub fn failure(error: ErrorBody) -> Response {
        Response {
            ok: false,
            result: None,
            error: Some(error),
        }
    }

    pub fn to_line(&self) -> Vec<u8> {
        let mut line = serde_json::to_vec(self).expect("responses are plain JSON values");
        line.push(b'\n');
        line
    }
}

/// A line sent before the response of a long request.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    Progress { rows: u64, fraction: f64 },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip() {
        for request in [
            Request::Status,
            Request::CustomerFind {
                phone: "+86 138".into(),
            },
            Request::Import {
                path: "/tmp/a.csv".into(),
                mapping: None,
                rejects: None,
                progress: true,
            },
        ] {
            let line = serde_json::to_vec(&request).unwrap();
            assert_eq!(Request::parse(&line).unwrap(), request);
        }
    }

    #[test]
    fn bad_requests_get_stable_codes() {
        assert_eq!(
            Request::parse(b"{nope").unwrap_err().code,
            "malformed_request"
        );
        assert_eq!(Request::parse(b"[]").unwrap_err().code, "invalid_request");
        assert_eq!(
            Request::parse(br#"{"command":7}"#).unwrap_err().code,
            "invalid_request"
        );
        let unknown = Request::parse(br#"{"command":"launch"}"#).unwrap_err();
        assert_eq!(unknown.code, "unknown_command");
        assert!(unknown.message.contains("`launch`"));
        let missing = Request::parse(br#"{"command":"customer_show"}"#).unwrap_err();
        assert_eq!(missing.code, "invalid_request");
        assert!(
            missing.message.contains("missing field `id`"),
            "{}",
            missing.message
        );
        let extra = Request::parse(br#"{"command":"status","verbose":true}"#).unwrap_err();
        assert_eq!(extra.code, "invalid_request");
    }
}
