//! Host-CPU oracles.
pub mod native;
