//! Error types of the crate.

use thiserror::Error;

/// A customer record could not be built from the given attributes.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RecordError {
    #[error("customer attributes must be a JSON object")]
    NotAnObject,
    #[error("field `{0}` is not in the schema")]
    UnknownField(String),
    #[error("field `{0}` is missing and has no default")]
    Missing(String),
    #[error("field `{field}` must be of type `{expected}`")]
    Type { field: String, expected: String },
    #[error("`{value}` is not one of the values of field `{field}`")]
    Variant { field: String, value: String },
    #[error("`{0}` is not a known time zone")]
    UnknownZone(String),
}

/// Why a rule could not be evaluated for one record. The effect is defined:
/// the rule does not fire, and `explain` shows this reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum EvalError {
    #[error("arithmetic overflow")]
    Overflow,
    #[error("a value that may be none is none")]
    NoneValue,
    #[error("the customer's time zone is missing or the time is out of range")]
    Zone,
}

/// The compiled bytecode failed verification.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("bytecode rejected at {pc}: {reason}")]
pub struct VerifyError {
    pub pc: usize,
    pub reason: String,
}
