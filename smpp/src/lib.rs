//! dialhound's SMPP 3.4 client (ESME), sans-IO: bytes from the SMSC and `now`
//! go in; bytes to send, events and the next wake-up come out. Nothing here
//! opens a socket or reads the clock. PDUs are rusmpp's types, read and
//! written by rusmpp.

pub mod pdu;
pub mod receipt;
pub mod session;
pub mod status;
pub mod text;

pub use receipt::{ReceiptState, SmscTime};
pub use session::{
    CloseReason, Event, InputError, Message, Receipt, Sender, Session, Settings, SettingsError,
    SubmitError, SubmitId,
};
pub use status::Status;
