//! dialhound's SIP user agent, sans-IO: messages in and out as bytes, time passed
//! in as `Instant`, and state machines that say what to send and when to wake.

pub mod call;
pub mod dialog;
pub mod digest;
pub mod message;
pub mod transaction;

pub use call::{
    CallError, CallEvent, CallSettings, HangUp, OutboundCall, Outcome, OutcomeKind, Side, Transmit,
};
pub use dialog::Dialog;
pub use digest::Credentials;
pub use message::{Identity, Message, MessageError};
pub use transaction::{ClientInvite, ClientNonInvite, ServerNonInvite, Timers, TransactionEvent};
