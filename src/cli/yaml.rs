//! Reading manifest files as YAML without trusting them: a file is read only up to
//! [`MAX_FILE_BYTES`] (a device or a pipe included), parsed within bounds on documents and
//! nesting (aliases and node counts are bounded by the parser's own budget), and a syntax error
//! reports its file, document, line, column and a reason — never the text around it, which may
//! be a Secret's value.

use std::path::Path;

use serde_json::Value;

use super::manifests::ManifestError;

/// The largest manifest file read (larger ones are refused before they fill memory).
pub const MAX_FILE_BYTES: u64 = 8 * 1024 * 1024;

/// The most YAML documents in one file.
pub const MAX_DOCUMENTS_PER_FILE: usize = 1000;

/// The most YAML documents across all files of one apply.
pub const MAX_DOCUMENTS: usize = 10_000;

/// The deepest nesting of YAML collections.
pub const MAX_DEPTH: usize = 64;

fn err(location: impl Into<String>, message: impl Into<String>) -> ManifestError {
    ManifestError {
        location: location.into(),
        message: message.into(),
    }
}

pub(super) fn too_large(file: &Path) -> ManifestError {
    err(
        file.display().to_string(),
        format!(
            "is larger than {} MiB; split it into several files",
            MAX_FILE_BYTES / (1024 * 1024)
        ),
    )
}

/// The file's text, refusing (without reading on) anything larger than [`MAX_FILE_BYTES`]
/// — a device or a pipe included.
pub(super) fn read_bounded(file: &Path) -> Result<String, ManifestError> {
    use std::io::Read;
    let at = || file.display().to_string();
    let f = std::fs::File::open(file).map_err(|e| err(at(), e.to_string()))?;
    let mut bytes = Vec::new();
    f.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| err(at(), e.to_string()))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(too_large(file));
    }
    String::from_utf8(bytes).map_err(|e| {
        err(
            at(),
            format!(
                "is not UTF-8 text (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
        )
    })
}

/// The documents of one file, parsed within the bounds above; errors carry no source text.
pub(super) fn parse_documents(file: &Path, text: &str) -> Result<Vec<Value>, ManifestError> {
    let options = serde_saphyr::options! {
        with_snippet: false,
        budget: serde_saphyr::budget! {
            // Empty documents (`---` twice) count here, not in MAX_DOCUMENTS_PER_FILE.
            max_documents: 2 * MAX_DOCUMENTS_PER_FILE,
            max_depth: MAX_DEPTH,
        },
    };
    serde_saphyr::from_multiple_with_options(text, options).map_err(|e| yaml_error(file, text, &e))
}

fn yaml_error(file: &Path, text: &str, e: &serde_saphyr::Error) -> ManifestError {
    let reason = yaml_reason(e);
    match e.location().filter(|l| l.line() > 0) {
        Some(l) => err(
            format!(
                "{} (document {})",
                file.display(),
                document_at(text, l.line())
            ),
            format!(
                "invalid YAML at line {}, column {}: {reason}",
                l.line(),
                l.column()
            ),
        ),
        None => err(
            file.display().to_string(),
            format!("invalid YAML: {reason}"),
        ),
    }
}

/// Why the YAML is invalid, in words that never quote the input: a Secret's value may be the
/// very text the parser choked on.
fn yaml_reason(e: &serde_saphyr::Error) -> String {
    use serde_saphyr::Error as E;
    use serde_saphyr::budget::BudgetBreach as B;
    match e.without_snippet() {
        E::Budget { breach, .. } => match breach {
            B::Documents { .. } => {
                format!("more than {MAX_DOCUMENTS_PER_FILE} documents in one file; split it")
            }
            B::Depth { .. } => format!("nested more than {MAX_DEPTH} levels deep"),
            other => format!("beyond the parser's limits ({other:?})"),
        },
        E::DuplicateMappingKey { .. } => "a mapping has the same key twice".to_string(),
        E::NonFiniteFloat { .. } => "a number is not finite".to_string(),
        E::QuotingRequired { .. } => "a value must be quoted".to_string(),
        E::UnknownAnchor { .. } => "an alias names an unknown anchor".to_string(),
        E::AliasError { .. } => "an alias cannot be used here".to_string(),
        E::InvalidUtf8Input => "the input is not UTF-8".to_string(),
        other => redact(&other.to_string()),
    }
}

/// A parser message without anything it quotes (`"…"`, `` `…` ``) and without its location
/// (reported apart), cut to one short line.
pub(super) fn redact(message: &str) -> String {
    let mut out = String::new();
    let mut quote: Option<char> = None;
    for c in message.chars() {
        match (quote, c) {
            (None, '"' | '`') => {
                quote = Some(c);
                out.push('…');
            }
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, c) if c.is_control() => out.push(' '),
            (None, c) => out.push(c),
        }
    }
    let out = out.split(" at line ").next().unwrap_or("").trim();
    let mut short: String = out.chars().take(160).collect();
    if short.is_empty() {
        short = "the parser gave no reason".to_string();
    }
    short
}

/// The 1-based document that holds `line`: `---` markers before it, plus the implicit first
/// document when content precedes the first marker.
fn document_at(text: &str, line: u64) -> usize {
    let is_marker = |l: &str| l == "---" || l.starts_with("--- ") || l.starts_with("---\t");
    let mut markers = 0;
    let mut implicit_first = false;
    for (i, l) in text.lines().enumerate() {
        if i as u64 + 1 >= line {
            break;
        }
        if is_marker(l) {
            markers += 1;
        } else if markers == 0 {
            let t = l.trim();
            if !(t.is_empty() || t.starts_with('#') || t.starts_with('%')) {
                implicit_first = true;
            }
        }
    }
    (markers + usize::from(implicit_first)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_counted_by_their_markers() {
        let text = "# c\n---\na: 1\n---\nb: 2\n";
        assert_eq!(document_at(text, 3), 1);
        assert_eq!(document_at(text, 5), 2);
        let implicit = "a: 1\n---\nb: 2\n---\nc: [\n";
        assert_eq!(document_at(implicit, 1), 1);
        assert_eq!(document_at(implicit, 5), 3);
        // A marker-like line inside a value is no marker.
        assert_eq!(document_at("a: |\n  ---\nb: [\n", 3), 1);
    }

    #[test]
    fn redaction_drops_quoted_text_controls_and_locations() {
        assert_eq!(
            redact("invalid type: string \"hunter2\", expected `u64` at line 3 column 4"),
            "invalid type: string …, expected …"
        );
        assert_eq!(redact("a\nb\u{1b}[31m"), "a b [31m");
        assert_eq!(redact("\"unclosed hunter2"), "…");
        assert_eq!(redact(""), "the parser gave no reason");
        assert_eq!(redact(&"x".repeat(500)).chars().count(), 160);
    }
}
