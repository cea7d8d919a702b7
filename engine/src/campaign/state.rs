//! What the store keeps of a campaign, so that a restart carries on.

use serde::{Deserialize, Serialize};

/// Where a campaign stands, as operators and the store see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// Never started, or stopped.
    Stopped,
    Running,
    /// No new calls; calls in progress go on.
    Paused,
}

/// A campaign's state as the store keeps it, so a restart carries on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedCampaign {
    pub state: RunState,
    /// Every customer has been looked at once; after this, wakes and
    /// changes are enough.
    pub scanned: bool,
}
