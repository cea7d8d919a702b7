//! dialhound's daemon: config, customer store, import, control socket, metrics.
