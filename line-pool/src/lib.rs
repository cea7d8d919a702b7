//! dialhound's line pool: trunks from `[[trunk]]` tables, grouped in tiers, with
//! lock-free capacity and call-rate accounting, a sans-IO health state machine per
//! trunk, and selection that fails over to the next trunk of the tier, then the
//! next tier.

pub mod capacity;
pub mod config;
pub mod health;
pub mod pool;
pub mod window;

pub use config::{ConfigError, TrunkConfig};
pub use health::{BreakerState, CallDetail, CallResult, Health, HealthConfig, WindowFigures};
pub use pool::{
    AdminState, LinePool, Reservation, SelectError, TierFallback, TrunkId, TrunkSnapshot,
};
