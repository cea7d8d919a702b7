//! dialhound-sip
