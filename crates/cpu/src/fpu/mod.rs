//! The x87 floating-point unit (state and arithmetic).
//!
//! Placeholder: the state is filled in by the x87 work.

use serde::{Deserialize, Serialize};

/// x87 register file and control/status state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FpuState {}
