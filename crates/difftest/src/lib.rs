//! stub
pub mod conformance;
pub mod engines;
pub mod host;
pub mod metadata;
pub mod moo;
