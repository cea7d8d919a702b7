//! SMS as the store keeps them: one record per text, written (and flushed)
//! before its first part leaves, and its status history after.
//!
//! The number and the text are personal data: they travel sealed in
//! [`SmsRecord::sealed`], opened only by the SMS stage on the way to the
//! SMS center.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// Where an SMS is in its life. The first three are open: the sender
/// still owes the SMS center a submit, or may; the rest are final but for
/// `Accepted`, which waits for its receipts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmsStatus {
    /// Written, waiting for its time (the policy's hours) or a provider.
    Queued,
    /// Handed to a provider's session: its parts may have left.
    Submitting,
    /// Every part accepted by the SMS center; no final receipt yet.
    Accepted,
    /// Every part's receipt says delivered.
    Delivered,
    /// A part's receipt says it could not be delivered (or was rejected or
    /// deleted by the network).
    Undeliverable,
    /// A part's validity ran out, or the text's deadline passed before it
    /// could leave: it was not sent late.
    Expired,
    /// The SMS center refused a part for good.
    Failed,
    /// Not sent, by compliance: the number is on the DNC list, the day's
    /// cap is reached, or the policy's hours stay shut until the deadline.
    Skipped,
}

impl SmsStatus {
    pub const ALL: [SmsStatus; 8] = [
        SmsStatus::Queued,
        SmsStatus::Submitting,
        SmsStatus::Accepted,
        SmsStatus::Delivered,
        SmsStatus::Undeliverable,
        SmsStatus::Expired,
        SmsStatus::Failed,
        SmsStatus::Skipped,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SmsStatus::Queued => "queued",
            SmsStatus::Submitting => "submitting",
            SmsStatus::Accepted => "accepted",
            SmsStatus::Delivered => "delivered",
            SmsStatus::Undeliverable => "undeliverable",
            SmsStatus::Expired => "expired",
            SmsStatus::Failed => "failed",
            SmsStatus::Skipped => "skipped",
        }
    }

    /// Still owed a submit: kept in the store's open index, and sent (again)
    /// after a restart.
    pub fn is_open(self) -> bool {
        matches!(self, SmsStatus::Queued | SmsStatus::Submitting)
    }

    /// Counts against the customer's SMS cap: everything but a skip.
    pub fn counts_as_sent(self) -> bool {
        self != SmsStatus::Skipped
    }
}

/// One change of an SMS's status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SmsEvent {
    pub at: Timestamp,
    pub status: SmsStatus,
    /// Why, in words: the provider, a receipt's error code, the rule that
    /// skipped it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// One part as the SMS center named it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SmsPart {
    pub message_id: String,
    /// The part's receipt state (`DELIVRD`, `UNDELIV`, …) once it came.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
}

/// One SMS.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SmsRecord {
    /// Unique and increasing across restarts.
    pub id: u64,
    pub campaign: String,
    pub customer: String,
    /// The rule whose `on OUTCOME send sms` asked for it; empty for a
    /// script's `send sms`.
    #[serde(default)]
    pub rule: String,
    pub template: String,
    /// What asked for it: a call outcome such as `no_answer`, or `script`.
    pub trigger: String,
    /// The call attempt it follows or came from.
    #[serde(default)]
    pub attempt: Option<u64>,
    pub created_at: Timestamp,
    /// Not before this: the policy's hours open.
    pub not_before: Timestamp,
    /// Not after this: a text that cannot leave by then expires unsent.
    pub deadline: Timestamp,
    /// The providers to try, in order; every provider when empty.
    #[serde(default)]
    pub providers: Vec<String>,
    /// The provider that took it, once one did.
    #[serde(default)]
    pub provider: Option<String>,
    /// How many parts the text is, as the sender split it.
    #[serde(default)]
    pub part_count: u8,
    /// `gsm7` or `ucs2`.
    #[serde(default)]
    pub coding: String,
    /// Each accepted part, in the order the SMS center accepted them.
    #[serde(default)]
    pub parts: Vec<SmsPart>,
    /// Times it was handed to a session; above one, it was resent after a
    /// session or the daemon ended with it in doubt.
    #[serde(default)]
    pub submissions: u32,
    pub status: SmsStatus,
    pub history: Vec<SmsEvent>,
    /// The number (E.164), the sender id and the text, sealed with the
    /// record's id as context.
    pub sealed: Vec<u8>,
    /// The tracked short link the text carries, when `{link}` became one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<TrackedLink>,
}

/// A short link unique to one SMS: `{link}` in its text is the daemon's
/// public link address and this token; opening it is a click, and goes on
/// to `target`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackedLink {
    /// Random, URL-safe; the store's index finds the SMS by it.
    pub token: String,
    /// Where the link goes: the campaign's `sms_link` with the customer's
    /// parameters.
    pub target: String,
}

impl TrackedLink {
    /// Characters in a token: 62^8, about 2 × 10^14 links, so that a guess
    /// finds nothing.
    pub const TOKEN_LENGTH: usize = 8;
}

/// One opening of an SMS's tracked link by a person (link-preview fetches
/// are not clicks).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmsClick {
    pub sms: u64,
    pub at: Timestamp,
    /// A keyed hash of the address it came from: the same address reads
    /// the same, and the address itself is not kept.
    pub visitor: String,
    /// The browser's `User-Agent`, cut to [`SmsClick::MAX_USER_AGENT`]
    /// bytes.
    #[serde(default)]
    pub user_agent: String,
}

impl SmsClick {
    pub const MAX_USER_AGENT: usize = 256;
}

/// An SMS as `dialhound sms` lists it: the record without its sealed
/// part, and the clicks on its link.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SmsListing {
    #[serde(flatten)]
    pub record: SmsRecord,
    #[serde(default)]
    pub clicks: Vec<SmsClick>,
}

impl SmsListing {
    /// The distinct visitors among the clicks.
    pub fn unique_clicks(&self) -> usize {
        let mut visitors: Vec<&str> = self.clicks.iter().map(|c| c.visitor.as_str()).collect();
        visitors.sort_unstable();
        visitors.dedup();
        visitors.len()
    }

    pub const CSV_HEADER: &'static str = "id,campaign,customer,rule,template,trigger,attempt,created_at,submitted_at,settled_at,status,provider,parts,coding,message_ids,submissions,detail,link,clicks,unique_clicks,first_click_at";

    /// One CSV row (RFC 4180 quoting), in [`SmsListing::CSV_HEADER`]'s
    /// order.
    pub fn csv_row(&self) -> String {
        let link = self
            .record
            .link
            .as_ref()
            .map(|link| link.token.clone())
            .unwrap_or_default();
        let first = self
            .clicks
            .iter()
            .map(|click| click.at)
            .min()
            .map(|at| at.to_string())
            .unwrap_or_default();
        let mut fields = self.record.csv_fields().to_vec();
        fields.extend([
            link,
            self.clicks.len().to_string(),
            self.unique_clicks().to_string(),
            first,
        ]);
        super::attempt::csv_line(&fields)
    }
}

impl SmsRecord {
    /// Moves to `status`, keeping the change in the history.
    pub fn set_status(&mut self, status: SmsStatus, detail: impl Into<String>, at: Timestamp) {
        self.status = status;
        self.history.push(SmsEvent {
            at,
            status,
            detail: detail.into(),
        });
    }

    /// When it left for the SMS center, if it did.
    pub fn submitted_at(&self) -> Option<Timestamp> {
        self.event_at(SmsStatus::Submitting)
    }

    /// When it reached a final status, if it did.
    pub fn settled_at(&self) -> Option<Timestamp> {
        (!self.status.is_open() && self.status != SmsStatus::Accepted)
            .then(|| self.history.last().map(|event| event.at))
            .flatten()
    }

    fn event_at(&self, status: SmsStatus) -> Option<Timestamp> {
        self.history
            .iter()
            .find(|event| event.status == status)
            .map(|event| event.at)
    }

    /// The last change's words.
    pub fn detail(&self) -> &str {
        self.history
            .last()
            .map(|event| event.detail.as_str())
            .unwrap_or("")
    }

    /// The record's CSV fields, in the order of [`SmsListing::CSV_HEADER`].
    fn csv_fields(&self) -> [String; 17] {
        let show = |t: Option<Timestamp>| t.map(|t| t.to_string()).unwrap_or_default();
        [
            self.id.to_string(),
            self.campaign.clone(),
            self.customer.clone(),
            self.rule.clone(),
            self.template.clone(),
            self.trigger.clone(),
            self.attempt.map(|a| a.to_string()).unwrap_or_default(),
            self.created_at.to_string(),
            show(self.submitted_at()),
            show(self.settled_at()),
            self.status.name().to_owned(),
            self.provider.clone().unwrap_or_default(),
            self.part_count.to_string(),
            self.coding.clone(),
            self.parts
                .iter()
                .map(|part| part.message_id.as_str())
                .collect::<Vec<_>>()
                .join(" "),
            self.submissions.to_string(),
            self.detail().to_owned(),
        ]
    }
}

/// What [`SmsRecord::sealed`] holds once opened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SmsContent {
    /// E.164.
    pub phone: String,
    /// The sender id; `None` is the provider's default.
    pub sender: Option<String>,
    pub text: String,
    /// Byte ranges of `text` that must stay in one part (the links).
    #[serde(default)]
    pub keep_whole: Vec<(usize, usize)>,
}
