//! smi-client: what every meshed process links to reach the control service and call other
//! services.
//!
//! - [`control`]: enrollment (a key made here, a CSR, a join token on first contact), renewal
//!   over mTLS, and the authenticated channel for policy and registration streams.
//!
//! The outbound layers (routing, balancing, pooled mTLS) are built in the data-plane issue.
#![forbid(unsafe_code)]

pub mod control;
