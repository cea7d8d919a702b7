//! dialhound's SMPP 3.4 client (ESME), sans-IO: bytes from the SMSC and `now`
//! go in; bytes to send, events and the next wake-up come out. Nothing here
//! opens a socket or reads the clock. PDUs are rusmpp's types, read and
//! written by rusmpp.
//!
//! The client is the `session` feature, on by default. Without it the crate
//! is [`text`] alone (the GSM 03.38 alphabet, the coding a text needs and its
//! split into parts), which depends on neither rusmpp nor tokio.

#[cfg(feature = "session")]
pub mod pdu;
#[cfg(feature = "session")]
pub mod receipt;
#[cfg(feature = "session")]
pub mod session;
#[cfg(feature = "session")]
pub mod status;
pub mod text;

#[cfg(feature = "session")]
pub use receipt::{ReceiptState, SmscTime};
#[cfg(feature = "session")]
pub use session::{
    CloseReason, Event, InputError, Message, Receipt, Sender, Session, Settings, SettingsError,
    SubmitError, SubmitId,
};
#[cfg(feature = "session")]
pub use status::Status;
