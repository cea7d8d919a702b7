//! dialhound-line-pool
