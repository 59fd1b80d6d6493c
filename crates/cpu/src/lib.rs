//! morph86's CPU: architectural state and the reference interpreter.
//!
//! The interpreter is the reference engine: every other engine (the JIT)
//! must agree with it, and it is checked against real-hardware test suites
//! and the host CPU (see the `morph86-difftest` crate).

pub mod bus;
pub mod decode;
pub mod engine;
pub mod fault;
pub mod flags;
pub mod fpu;
pub mod interp;
pub mod mmu;
pub mod model;
pub mod robustness;
pub mod state;
pub mod workloads;

pub use bus::{Bus, CpuEvent, FlatRam};
pub use engine::{Engine, EngineExit, Interpreter, RunRequest};
pub use fault::Fault;
pub use interp::{Cpu, StepOutcome};
pub use model::CpuModel;
pub use state::{CpuState, SegReg, Segment};
