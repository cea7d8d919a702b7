//! dialhound-rules
