//! stub
pub mod conformance;
pub mod host;
pub mod metadata;
pub mod moo;
