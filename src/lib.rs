//! orgops: declarative tenant organizations at SaaS vendors, as a Kubernetes operator and a CLI.
//!
//! Data flows one way: `cli` (and later the controller) → [`engine`] → [`vendors`] → HTTP.

pub mod api;
pub mod cli;
pub mod controller;
pub mod engine;
pub mod simulator;
pub mod vendors;
