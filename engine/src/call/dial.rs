//! Placing a call on its route: a trunk reserved from the line pool, the call
//! placed with its media and conversation, and, when the trunk fails it for
//! a trunk-side reason, placed again at once on the next trunk the route
//! allows.

use std::time::{Duration, Instant};

use dialhound_line_pool::{Reservation, SelectError, TierFallback, TrunkId};
use dialhound_media::encoded::EncodedPrompt;

use crate::call::conversation::{Conversation, PlayPrompts};
use crate::call::media_call::place_with_media;
use crate::call::report::{CallReport, FailedTrunk};
use crate::call::sip_agent::{AgentError, CallOrder, SipAgent};

/// Where a call may go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// One trunk and no other: an operator's test of that trunk.
    Trunk(TrunkId),
    /// The best trunk of a tier; a trunk-side failure moves the call to the
    /// tier's next trunk and then, when `fallback` allows, to later tiers.
    Tier {
        tier: String,
        fallback: TierFallback,
    },
}

/// One call to a customer, before a trunk is chosen.
#[derive(Debug, Clone)]
pub struct Dial {
    pub route: Route,
    pub to_user: String,
    pub hold: Duration,
    pub ring_timeout: Option<Duration>,
    /// Open an RTP leg and offer it (when the agent has a media engine).
    pub with_media: bool,
    /// Played one after the other once the callee answers.
    pub prompts: Vec<EncodedPrompt>,
    /// Record both directions to a stereo WAV here.
    pub record: Option<std::path::PathBuf>,
    /// Stop the prompts when the callee starts to speak.
    pub barge_in: bool,
}

impl Dial {
    /// The order for one try of this dial on the trunk `reservation` holds,
    /// without media (the media side adds its own).
    pub fn order(&self, reservation: Reservation) -> CallOrder {
        CallOrder {
            reservation,
            to_user: self.to_user.clone(),
            hold: self.hold,
            ring_timeout: self.ring_timeout,
            media: None,
        }
    }
}

/// How long a dial waits for a channel or a call-rate slot to come free
/// before it gives up.
const CAPACITY_WAIT: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum DialError {
    #[error(transparent)]
    Agent(#[from] AgentError),
    #[error(
        "trunk `{0}` takes no call now: drained, failing, or at its channel or call-rate limit"
    )]
    TrunkUnavailable(String),
    #[error(transparent)]
    NoTrunk(#[from] SelectError),
}

impl SipAgent {
    /// Places a call on its route: reserves a trunk, and when that trunk fails
    /// the call for a trunk-side reason (5xx, no response, refused
    /// credentials), places it again at once on the next trunk the route
    /// allows. The report is the call's last try, with the failed trunks
    /// before it in `failovers`.
    pub async fn dial(&self, dial: Dial) -> Result<CallReport, DialError> {
        self.dial_reserved(dial, None).await
    }

    /// As [`SipAgent::dial`], with the first try's channel and call-rate slot
    /// already taken (by [`SipAgent::reserve`]): a caller that starts calls
    /// at a steady rate reserves in order, so that starts do not race each
    /// other for the trunk's call-rate slots.
    pub async fn dial_reserved(
        &self,
        dial: Dial,
        first: Option<Reservation>,
    ) -> Result<CallReport, DialError> {
        self.dial_conversation(dial, first, None).await
    }

    /// As [`SipAgent::dial_reserved`], with `conversation` driving the
    /// answered call in place of `dial.prompts`.
    pub async fn dial_conversation(
        &self,
        dial: Dial,
        mut first: Option<Reservation>,
        mut conversation: Option<&mut dyn Conversation>,
    ) -> Result<CallReport, DialError> {
        let mut failovers: Vec<FailedTrunk> = Vec::new();
        let mut failed_trunks: Vec<TrunkId> = Vec::new();
        let mut last_failure: Option<CallReport> = None;
        loop {
            let reserved = match first.take() {
                Some(reservation) => Ok(reservation),
                None => self.reserve(&dial.route, &failed_trunks).await,
            };
            let reservation = match reserved {
                Ok(reservation) => reservation,
                Err(error) => match last_failure {
                    // Every trunk the route allows has failed this call.
                    Some(mut report) => {
                        report.failovers = failovers;
                        return Ok(report);
                    }
                    None => return Err(error),
                },
            };
            let trunk = reservation.trunk();
            let order = dial.order(reservation);
            let mut report = match (&self.media, dial.with_media) {
                (Some(media), true) => {
                    let mut prompts = PlayPrompts(&dial.prompts);
                    let talk: &mut dyn Conversation = match &mut conversation {
                        Some(conversation) => &mut **conversation,
                        None => &mut prompts,
                    };
                    place_with_media(
                        self,
                        media,
                        order,
                        talk,
                        dial.record.as_ref(),
                        dial.barge_in,
                    )
                    .await?
                }
                _ => self.call(order).await?,
            };
            let fails_over =
                matches!(dial.route, Route::Tier { .. }) && report.result.is_trunk_failure();
            if !fails_over {
                failovers.extend(last_failure.map(|failure| failure.as_failed_trunk()));
                report.failovers = failovers;
                return Ok(report);
            }
            failed_trunks.push(trunk);
            // The latest failure stays out of the list: it is the report when
            // no trunk is left to try.
            if let Some(previous) = last_failure.replace(report) {
                failovers.push(previous.as_failed_trunk());
            }
        }
    }

    /// A channel and a call-rate slot on the route, waiting up to
    /// [`CAPACITY_WAIT`] for one to come free.
    pub async fn reserve(
        &self,
        route: &Route,
        exclude: &[TrunkId],
    ) -> Result<Reservation, DialError> {
        self.reserve_by(route, exclude, tokio::time::Instant::now() + CAPACITY_WAIT)
            .await
    }

    /// As [`SipAgent::reserve`], giving up at `give_up`.
    pub async fn reserve_by(
        &self,
        route: &Route,
        exclude: &[TrunkId],
        give_up: tokio::time::Instant,
    ) -> Result<Reservation, DialError> {
        loop {
            let error = match self.try_reserve(route, exclude) {
                Ok(reservation) => return Ok(reservation),
                Err(error @ DialError::NoTrunk(SelectError::UnknownTier(_))) => return Err(error),
                Err(error) => error,
            };
            if tokio::time::Instant::now() >= give_up {
                return Err(error);
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// A channel and a call-rate slot on the route now, or why there is none.
    pub fn try_reserve(
        &self,
        route: &Route,
        exclude: &[TrunkId],
    ) -> Result<Reservation, DialError> {
        let now = Instant::now();
        match route {
            Route::Trunk(trunk) => self.pool.reserve_on(*trunk, now).ok_or_else(|| {
                DialError::TrunkUnavailable(
                    self.pool
                        .config(*trunk)
                        .map_or_else(|| format!("#{}", trunk.0), |c| c.name.clone()),
                )
            }),
            Route::Tier { tier, fallback } => Ok(self
                .pool
                .select_and_reserve(tier, *fallback, exclude, now)?),
        }
    }
}
