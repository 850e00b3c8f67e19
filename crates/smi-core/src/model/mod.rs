//! The normalized SMI model: one type per concept, whatever apiVersion it was written in.
//!
//! The loader (`crate::load`) maps every supported version into these types; everything
//! downstream (compilation, decisions, the control service) sees only them.

mod method;
mod resources;

pub use method::{Method, MethodSet};
pub use resources::{
    Backend, HttpMatch, HttpRouteGroup, L4Protocol, L4Route, Meta, Origin, PolicySet, RouteKind,
    Rule, TrafficSplit, TrafficTarget,
};
