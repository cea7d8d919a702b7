//! Shared helpers for dialhound's criterion benchmarks.
