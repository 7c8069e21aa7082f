//! `triggers`: made by Rossum with a queue's default e-mail templates; read-only here.

use super::{Api, KindRules};

/// `triggers`.
pub struct Triggers;

impl KindRules for Triggers {
    fn name(&self) -> &'static str {
        "triggers"
    }

    fn api(&self) -> Api {
        Api::ReadOnly
    }
}
