//! What a reconcile would change at the vendor, without changing it: the [`Change`]s an
//! observe-only reconcile records (`orgops plan`, and Organizations with `suspend: true`),
//! printed as a diff and counted in a [`PlanSummary`].

use std::collections::BTreeSet;
use std::fmt;

use serde_json::Value;

/// Lines of a plan kept in an Organization's status.
pub const STATUS_LINES: usize = 20;

/// Longest value shown for a setting; longer ones are cut (a diff line stays one line).
const MAX_VALUE_CHARS: usize = 80;
/// Deepest setting path shown; deeper differences show at this depth.
const MAX_SETTING_DEPTH: usize = 3;

/// One change a reconcile would make.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// The organization would be created.
    CreateOrg {
        /// Its display name.
        name: String,
    },
    /// An existing organization is adopted (managed from now on). Nothing is written at the
    /// vendor for that, so it is shown but is not a change.
    AdoptOrg {
        /// Its vendor id.
        id: String,
        /// How it was found.
        how: String,
    },
    /// A setting differs from the spec.
    Setting {
        /// Dot path in the vendor's organization (`name`, `metadata.orgops`).
        field: String,
        /// The vendor's value, where the organization as read shows it.
        from: Option<String>,
        /// The desired value.
        to: String,
    },
    /// A template object has no copy yet.
    CreateCopy {
        /// Kind (`queues`).
        kind: &'static str,
        /// The template object's id.
        source: String,
        /// The template object's name, where it has one.
        name: Option<String>,
    },
    /// A copy differs from its template object.
    UpdateCopy {
        /// Kind.
        kind: &'static str,
        /// The copy's id.
        target: String,
        /// The copy's name, where it has one.
        name: Option<String>,
        /// The fields that differ.
        fields: BTreeSet<String>,
    },
    /// A copy whose template object is gone would be deleted (`spec.template.prune`).
    PruneCopy {
        /// Kind.
        kind: &'static str,
        /// The copy's id.
        target: String,
        /// The copy's name, where it has one.
        name: Option<String>,
        /// Why it goes.
        why: &'static str,
    },
    /// A template object cannot be copied (reported; not a change).
    Blocked {
        /// Kind.
        kind: &'static str,
        /// The template object's id.
        source: String,
        /// Why not.
        reason: String,
    },
    /// A person would be given access (or invited).
    AddMember {
        /// E-mail.
        email: String,
        /// Roles.
        roles: BTreeSet<String>,
        /// Scopes, when the spec manages them.
        scopes: Option<BTreeSet<String>>,
    },
    /// A person's roles would change.
    SetRoles {
        /// E-mail.
        email: String,
        /// Roles given.
        grant: BTreeSet<String>,
        /// Roles taken away.
        revoke: BTreeSet<String>,
    },
    /// A person's scopes would become exactly these.
    SetScopes {
        /// E-mail.
        email: String,
        /// The desired scopes.
        scopes: BTreeSet<String>,
    },
}

impl Change {
    /// The diff marker: `+` create, `~` change, `-` delete, `!` cannot be done, `=` no write.
    pub fn symbol(&self) -> char {
        match self {
            Change::CreateOrg { .. } | Change::CreateCopy { .. } | Change::AddMember { .. } => '+',
            Change::AdoptOrg { .. } => '=',
            Change::Setting { .. }
            | Change::UpdateCopy { .. }
            | Change::SetRoles { .. }
            | Change::SetScopes { .. } => '~',
            Change::PruneCopy { .. } => '-',
            Change::Blocked { .. } => '!',
        }
    }
}

fn named(name: &Option<String>) -> String {
    name.as_deref()
        .map(|n| format!(" {:?}", cut(n)))
        .unwrap_or_default()
}

fn list(items: &BTreeSet<String>) -> String {
    items.iter().cloned().collect::<Vec<_>>().join(", ")
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.symbol();
        match self {
            Change::CreateOrg { name } => write!(f, "{s} organization {:?} (create)", cut(name)),
            Change::AdoptOrg { id, how } => write!(f, "{s} organization {id} adopted, found {how}"),
            Change::Setting {
                field,
                from: Some(from),
                to,
            } => write!(f, "{s} setting {field}: {from} → {to}"),
            Change::Setting {
                field,
                from: None,
                to,
            } => write!(f, "{s} setting {field}: → {to}"),
            Change::CreateCopy { kind, source, name } => {
                write!(
                    f,
                    "{s} {kind}{} (copy of template {kind}/{source})",
                    named(name)
                )
            }
            Change::UpdateCopy {
                kind,
                target,
                name,
                fields,
            } => write!(f, "{s} {kind}/{target}{}: {}", named(name), list(fields)),
            Change::PruneCopy {
                kind,
                target,
                name,
                why,
            } => write!(f, "{s} {kind}/{target}{} (prune: {why})", named(name)),
            Change::Blocked {
                kind,
                source,
                reason,
            } => write!(f, "{s} {kind}/{source} cannot be copied: {}", cut(reason)),
            Change::AddMember {
                email,
                roles,
                scopes,
            } => {
                write!(f, "{s} member {email} as {}", list(roles))?;
                match scopes {
                    Some(scopes) => write!(f, ", scopes [{}]", list(scopes)),
                    None => Ok(()),
                }
            }
            Change::SetRoles {
                email,
                grant,
                revoke,
            } => {
                let mut parts = Vec::new();
                if !grant.is_empty() {
                    parts.push(format!("give {}", list(grant)));
                }
                if !revoke.is_empty() {
                    parts.push(format!("take away {}", list(revoke)));
                }
                write!(f, "{s} member {email}: roles: {}", parts.join("; "))
            }
            Change::SetScopes { email, scopes } => {
                write!(f, "{s} member {email}: scopes → [{}]", list(scopes))
            }
        }
    }
}

/// Counts of a plan, by what would happen.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlanSummary {
    /// Organizations to create.
    pub orgs_to_create: u32,
    /// Settings that differ.
    pub settings_to_change: u32,
    /// Copies to create.
    pub copies_to_create: u32,
    /// Copies to update.
    pub copies_to_update: u32,
    /// Copies to delete (prune).
    pub copies_to_prune: u32,
    /// Template objects that cannot be copied.
    pub blocked: u32,
    /// Members to add or invite.
    pub members_to_add: u32,
    /// Members whose roles or scopes change.
    pub members_to_change: u32,
}

impl PlanSummary {
    /// Counts `changes`.
    pub fn of<'a>(changes: impl IntoIterator<Item = &'a Change>) -> Self {
        let mut s = Self::default();
        for c in changes {
            s.count(c);
        }
        s
    }

    /// Adds one change.
    pub fn count(&mut self, change: &Change) {
        let slot = match change {
            Change::CreateOrg { .. } => &mut self.orgs_to_create,
            Change::AdoptOrg { .. } => return,
            Change::Setting { .. } => &mut self.settings_to_change,
            Change::CreateCopy { .. } => &mut self.copies_to_create,
            Change::UpdateCopy { .. } => &mut self.copies_to_update,
            Change::PruneCopy { .. } => &mut self.copies_to_prune,
            Change::Blocked { .. } => &mut self.blocked,
            Change::AddMember { .. } => &mut self.members_to_add,
            Change::SetRoles { .. } | Change::SetScopes { .. } => &mut self.members_to_change,
        };
        *slot = slot.saturating_add(1);
    }

    /// Adds another summary.
    pub fn add(&mut self, other: &PlanSummary) {
        let pairs = [
            (&mut self.orgs_to_create, other.orgs_to_create),
            (&mut self.settings_to_change, other.settings_to_change),
            (&mut self.copies_to_create, other.copies_to_create),
            (&mut self.copies_to_update, other.copies_to_update),
            (&mut self.copies_to_prune, other.copies_to_prune),
            (&mut self.blocked, other.blocked),
            (&mut self.members_to_add, other.members_to_add),
            (&mut self.members_to_change, other.members_to_change),
        ];
        for (mine, theirs) in pairs {
            *mine = mine.saturating_add(theirs);
        }
    }

    /// True when applying would change something at the vendor (blocked objects are not
    /// changes: applying cannot make them either).
    pub fn has_changes(&self) -> bool {
        Self {
            blocked: 0,
            ..self.clone()
        } != Self::default()
    }

    /// One line, as `terraform plan` ends: `Plan: 1 organization to create, …`, or
    /// `No changes.` when there are none.
    pub fn line(&self) -> String {
        let parts: Vec<String> = [
            (self.orgs_to_create, "organization", "to create"),
            (self.settings_to_change, "setting", "to change"),
            (self.copies_to_create, "copy", "to create"),
            (self.copies_to_update, "copy", "to update"),
            (self.copies_to_prune, "copy", "to prune"),
            (self.members_to_add, "member", "to add"),
            (self.members_to_change, "member", "to change"),
        ]
        .into_iter()
        .filter(|(n, _, _)| *n > 0)
        .map(|(n, what, verb)| format!("{n} {} {verb}", plural(what, n)))
        .collect();
        let blocked = match self.blocked {
            0 => String::new(),
            n => format!(" {n} template {} cannot be copied.", plural("object", n)),
        };
        if parts.is_empty() {
            format!("No changes.{blocked}")
        } else {
            format!("Plan: {}.{blocked}", parts.join(", "))
        }
    }
}

fn plural(word: &str, n: u32) -> String {
    match (word, n) {
        (w, 1) => w.to_string(),
        ("copy", _) => "copies".to_string(),
        (w, _) => format!("{w}s"),
    }
}

/// A value as one short line.
fn cut(text: &str) -> String {
    let one_line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    match one_line.char_indices().nth(MAX_VALUE_CHARS) {
        Some((at, _)) => format!("{}…", &one_line[..at]),
        None => one_line,
    }
}

fn show(v: &Value) -> String {
    cut(&v.to_string())
}

/// The settings a vendor patch would change, field by field, with the organization's current
/// values where its raw form shows them at the same path. Pure.
pub fn setting_changes(patch: &Value, observed: &Value) -> Vec<Change> {
    let mut out = Vec::new();
    walk(patch, Some(observed), "", 0, &mut out);
    out
}

fn walk(patch: &Value, observed: Option<&Value>, path: &str, depth: usize, out: &mut Vec<Change>) {
    match (patch, observed) {
        (Value::Object(want), have) if depth < MAX_SETTING_DEPTH && !want.is_empty() => {
            for (k, v) in want {
                let field = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                let inner = have.and_then(|h| h.get(k));
                // Only what differs: a vendor sends whole maps back (Rossum `metadata`).
                if inner != Some(v) {
                    walk(v, inner, &field, depth + 1, out);
                }
            }
        }
        (want, have) => out.push(Change::Setting {
            field: if path.is_empty() {
                "(settings)".into()
            } else {
                path.to_string()
            },
            from: have.map(show),
            to: show(want),
        }),
    }
}

/// A template object's or copy's name, for diff lines: the first of the names vendors use.
pub fn object_name(object: &Value) -> Option<String> {
    ["name", "displayName", "title", "label"]
        .iter()
        .find_map(|k| object.get(*k).and_then(Value::as_str))
        .map(cut)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn settings_show_only_the_leaves_that_differ_with_the_vendor_value() {
        let observed = json!({"name": "Old", "metadata": {"a": 1, "orgops": {"owner": "x"}}});
        let patch = json!({"name": "New", "metadata": {"a": 1, "orgops": {"owner": "ns/de"}}});
        let changes = setting_changes(&patch, &observed);
        let lines: Vec<String> = changes.iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            vec![
                "~ setting metadata.orgops.owner: \"x\" → \"ns/de\"",
                "~ setting name: \"Old\" → \"New\"",
            ]
        );
    }

    #[test]
    fn a_setting_the_vendor_does_not_show_has_no_from_and_long_values_are_cut() {
        let long = "x".repeat(500);
        let changes = setting_changes(&json!({"rules": long}), &json!({"name": "n"}));
        let line = changes[0].to_string();
        assert!(line.starts_with("~ setting rules: → \"xxx"), "{line}");
        assert!(line.chars().count() < 120, "{line}");
        assert!(line.ends_with('…'));
    }

    #[test]
    fn summary_counts_and_reads_like_terraform() {
        let changes = vec![
            Change::CreateOrg { name: "A".into() },
            Change::CreateCopy {
                kind: "queues",
                source: "1".into(),
                name: None,
            },
            Change::CreateCopy {
                kind: "queues",
                source: "2".into(),
                name: None,
            },
            Change::PruneCopy {
                kind: "hooks",
                target: "9".into(),
                name: None,
                why: "template object gone",
            },
            Change::Blocked {
                kind: "hooks",
                source: "3".into(),
                reason: "no".into(),
            },
        ];
        let s = PlanSummary::of(&changes);
        assert!(s.has_changes());
        assert_eq!(
            s.line(),
            "Plan: 1 organization to create, 2 copies to create, 1 copy to prune. \
             1 template object cannot be copied."
        );
        let only_blocked = PlanSummary::of(&changes[4..]);
        assert!(!only_blocked.has_changes());
        assert_eq!(
            only_blocked.line(),
            "No changes. 1 template object cannot be copied."
        );
        assert_eq!(PlanSummary::default().line(), "No changes.");
    }

    #[test]
    fn control_characters_in_vendor_names_cannot_forge_diff_lines() {
        let c = Change::CreateCopy {
            kind: "queues",
            source: "1".into(),
            name: object_name(&json!({"name": "a\n+ organization \"evil\""})),
        };
        assert_eq!(c.to_string().lines().count(), 1);
    }
}
