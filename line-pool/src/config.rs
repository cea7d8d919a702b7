//! `[[trunk]]` tables.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// One trunk as configured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrunkConfig {
    pub name: String,
    /// Where INVITEs go.
    pub proxy: SocketAddr,
    /// The tier the rules' `line` names, such as `premium` or `standard`.
    pub tier: String,
    /// Concurrent calls the carrier allows.
    pub channels: u32,
    /// New calls per second the carrier allows.
    pub cps: u32,
    #[serde(default)]
    pub from_domain: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    /// Used to prefer cheaper trunks among equally healthy ones.
    #[serde(default)]
    pub cost_per_minute: f64,
    /// Caller IDs presented on this trunk, rotated per call.
    #[serde(default)]
    pub caller_ids: Vec<String>,
    #[serde(default)]
    pub codecs: Vec<String>,
    #[serde(default = "enabled")]
    pub enabled: bool,
}

fn enabled() -> bool {
    true
}

/// A configuration the pool cannot run with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("trunk `{0}` is declared twice")]
    Duplicate(String),
    #[error("trunk `{name}`: `{field}` must be at least 1")]
    Zero { name: String, field: &'static str },
    #[error("trunk `{0}`: the name must not be empty")]
    EmptyName(String),
    #[error("more than {max} trunks")]
    TooMany { max: usize },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trunk_table_reads_with_defaults() {
        let trunk: TrunkConfig = toml::from_str(
            "name = \"a\"\nproxy = \"127.0.0.1:5070\"\ntier = \"premium\"\nchannels = 10\ncps = 5\n",
        )
        .unwrap();
        assert!(trunk.enabled);
        assert_eq!(trunk.cost_per_minute, 0.0);
        assert!(trunk.caller_ids.is_empty());
    }

    #[test]
    fn unknown_trunk_key_is_refused() {
        let error = toml::from_str::<TrunkConfig>(
            "name = \"a\"\nproxy = \"127.0.0.1:5070\"\ntier = \"p\"\nchannels = 1\ncps = 1\nchanels = 3\n",
        )
        .unwrap_err();
        assert!(
            error.to_string().contains("unknown field `chanels`"),
            "{error}"
        );
    }
}
