//! The host CPU as an oracle: random 32-bit user-mode instructions run both
//! natively (in compatibility mode) and on the interpreter.

pub mod cases;
pub mod native;
pub mod oracle;
pub mod rng;
pub mod x87cases;
