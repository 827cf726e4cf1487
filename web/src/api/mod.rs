//! The JSON API under `/api/v1`: one file per resource; query strings are read by
//! `params::Query` into one typed parameter struct per endpoint.

pub(crate) mod clusters;
pub(crate) mod counters;
pub(crate) mod incidents;
pub(crate) mod moved;
pub(crate) mod params;
pub(crate) mod traces;
