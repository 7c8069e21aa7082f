//! Which kinds to copy and in which order: the `include` closure and dependency waves.

use std::collections::BTreeSet;

use crate::vendors::KindSpec;

/// An `include` entry the vendor does not know.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown kind(s) {unknown:?}; this vendor copies {known:?}")]
pub struct UnknownKinds {
    /// The entries that matched nothing.
    pub unknown: Vec<String>,
    /// The kinds the vendor supports.
    pub known: Vec<&'static str>,
}

/// The kinds to copy: `include` (or all) plus everything they reference, so that no copy
/// points back into the template org.
pub fn selected(
    kinds: &'static [KindSpec],
    include: Option<&[String]>,
) -> Result<Vec<&'static KindSpec>, UnknownKinds> {
    let Some(include) = include else {
        return Ok(kinds.iter().filter(|k| !k.opt_in).collect());
    };
    let known: Vec<&'static str> = kinds.iter().map(|k| k.name).collect();
    let unknown: Vec<String> = include
        .iter()
        .filter(|i| !known.contains(&i.as_str()))
        .cloned()
        .collect();
    if !unknown.is_empty() {
        return Err(UnknownKinds { unknown, known });
    }
    let mut chosen: BTreeSet<&'static str> = BTreeSet::new();
    let mut stack: Vec<&'static str> = kinds
        .iter()
        .filter(|k| include.iter().any(|i| i == k.name))
        .map(|k| k.name)
        .collect();
    while let Some(name) = stack.pop() {
        if chosen.insert(name)
            && let Some(k) = kinds.iter().find(|k| k.name == name)
        {
            stack.extend(k.dependencies());
        }
    }
    Ok(kinds.iter().filter(|k| chosen.contains(k.name)).collect())
}

/// Groups kinds into waves: every kind's dependencies are in earlier waves, so the kinds of
/// one wave can be copied at the same time. Dependencies outside `kinds` are ignored.
pub fn waves(kinds: &[&'static KindSpec]) -> Vec<Vec<&'static KindSpec>> {
    let mut placed: BTreeSet<&'static str> = BTreeSet::new();
    let mut remaining: Vec<&'static KindSpec> = kinds.to_vec();
    let names: BTreeSet<&'static str> = kinds.iter().map(|k| k.name).collect();
    let mut out = Vec::new();
    while !remaining.is_empty() {
        let (ready, blocked): (Vec<&'static KindSpec>, Vec<&'static KindSpec>) =
            remaining.into_iter().partition(|k| {
                k.dependencies()
                    .all(|d| placed.contains(d) || !names.contains(d))
            });
        if ready.is_empty() {
            // A dependency cycle cannot be declared by a vendor module that passes its tests;
            // copy the rest in one last wave rather than looping.
            out.push(blocked);
            break;
        }
        placed.extend(ready.iter().map(|k| k.name));
        out.push(ready);
        remaining = blocked;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vendors::rossum::kinds::ALL;

    #[test]
    fn opt_in_kinds_are_copied_only_when_named() {
        static KINDS: [KindSpec; 2] = [
            crate::vendors::rossum::kinds::LABELS,
            KindSpec {
                name: "datasets",
                opt_in: true,
                ..crate::vendors::rossum::kinds::LABELS
            },
        ];
        let names = |k: Vec<&KindSpec>| k.iter().map(|k| k.name).collect::<Vec<_>>();
        assert_eq!(names(selected(&KINDS, None).unwrap()), ["labels"]);
        let named = ["datasets".to_string()];
        assert_eq!(names(selected(&KINDS, Some(&named)).unwrap()), ["datasets"]);
    }

    fn names(w: &[Vec<&KindSpec>]) -> Vec<Vec<&'static str>> {
        w.iter()
            .map(|wave| {
                let mut n: Vec<_> = wave.iter().map(|k| k.name).collect();
                n.sort();
                n
            })
            .collect()
    }

    #[test]
    fn rossum_waves_follow_dependencies() {
        let all = selected(ALL, None).unwrap();
        assert_eq!(
            names(&waves(&all)),
            vec![
                vec!["connectors", "labels", "schemas", "workspaces"],
                vec!["queues"],
                vec!["email_templates", "hooks", "inboxes"],
                vec!["rules"],
            ]
        );
    }

    #[test]
    fn include_pulls_in_dependencies() {
        let inc = vec!["inboxes".to_string()];
        let mut got: Vec<_> = selected(ALL, Some(&inc))
            .unwrap()
            .iter()
            .map(|k| k.name)
            .collect();
        got.sort();
        assert_eq!(
            got,
            vec!["connectors", "inboxes", "queues", "schemas", "workspaces"]
        );
    }

    #[test]
    fn unknown_kinds_are_named() {
        let inc = vec!["queues".to_string(), "projects".to_string()];
        let err = selected(ALL, Some(&inc)).unwrap_err();
        assert_eq!(err.unknown, vec!["projects".to_string()]);
        assert!(err.to_string().contains("projects"));
    }
}
