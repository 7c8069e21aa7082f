//! Deep copy of a template organization: kind selection and ordering ([`graph`]), pure
//! per-object decisions ([`plan`]), and the executor ([`exec`]).

pub mod exec;
pub mod graph;
pub mod plan;
pub mod templates;

pub use exec::{CopyInputs, CopyJob, CopyReport, KindProgress, ProgressSink, copy_template};
pub use templates::{TemplateCache, TemplateSource};
