//! `meta.k8s.io/v1 Table` responses, built from a CRD's `additionalPrinterColumns`.

use serde_json::{Value, json};

use crate::registry::ResourceType;

/// Evaluates the JSONPath subset printer columns use: `.a.b`, `.a[0]`, `.a[?(@.k=="v")].b`.
pub fn jsonpath(v: &Value, path: &str) -> Option<Value> {
    let mut cur = vec![v.clone()];
    let mut rest = path
        .trim()
        .trim_start_matches('{')
        .trim_end_matches('}')
        .trim_start_matches('$');
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            let key = &r[..end];
            cur = cur.iter().filter_map(|c| c.get(key).cloned()).collect();
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            let inner = &r[..end];
            rest = &r[end + 1..];
            if let Some(filter) = inner.strip_prefix("?(@.").and_then(|f| f.strip_suffix(')')) {
                let (k, want) = filter.split_once("==")?;
                let want = want.trim().trim_matches('"').trim_matches('\'');
                cur = cur
                    .iter()
                    .flat_map(|c| c.as_array().cloned().unwrap_or_default())
                    .filter(|item| item.get(k.trim()).and_then(Value::as_str) == Some(want))
                    .collect();
            } else if inner == "*" {
                cur = cur
                    .iter()
                    .flat_map(|c| c.as_array().cloned().unwrap_or_default())
                    .collect();
            } else {
                let i: usize = inner.parse().ok()?;
                cur = cur.iter().filter_map(|c| c.get(i).cloned()).collect();
            }
        } else {
            return None;
        }
    }
    cur.into_iter().next()
}

fn age(ts: Option<&str>) -> String {
    let Some(t) = ts.and_then(|t| t.parse::<jiff::Timestamp>().ok()) else {
        return "<unknown>".into();
    };
    let secs = (jiff::Timestamp::now().as_second() - t.as_second()).max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

fn event_table(objects: &[Value], resource_version: &str) -> Value {
    let col = |name: &str| json!({"name": name, "type": "string", "format": "", "description": "", "priority": 0});
    let defs = vec![
        col("Last Seen"),
        col("Type"),
        col("Reason"),
        col("Object"),
        col("Message"),
    ];
    let rows: Vec<Value> = objects
        .iter()
        .map(|e| {
            let seen = e.get("lastTimestamp").or(e.get("eventTime")).and_then(Value::as_str);
            let object = e.get("involvedObject").or(e.get("regarding")).cloned().unwrap_or_default();
            let kind = object["kind"].as_str().unwrap_or("").to_lowercase();
            let name = object["name"].as_str().unwrap_or("");
            let cells = json!([
                age(seen), e["type"], e["reason"], format!("{kind}/{name}"),
                e.get("message").or(e.get("note")).cloned().unwrap_or_default(),
            ]);
            let mut meta = e["metadata"].clone();
            meta.as_object_mut().map(|m| m.remove("managedFields"));
            json!({"cells": cells, "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": meta}})
        })
        .collect();
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": resource_version},
           "columnDefinitions": defs, "rows": rows})
}

/// A Table of `objects`.
pub fn table(rt: &ResourceType, objects: &[Value], resource_version: &str) -> Value {
    if rt.plural == "events" {
        return event_table(objects, resource_version);
    }
    let mut defs = vec![
        json!({"name": "Name", "type": "string", "format": "name", "description": "Name must be unique within a namespace.", "priority": 0}),
    ];
    let custom_columns = !rt.columns.is_empty();
    for c in &rt.columns {
        defs.push(json!({
            "name": c["name"], "type": c["type"], "format": c.get("format").cloned().unwrap_or(json!("")),
            "description": c.get("description").cloned().unwrap_or(json!("")), "priority": c.get("priority").cloned().unwrap_or(json!(0)),
        }));
    }
    if !custom_columns {
        defs.push(json!({"name": "Age", "type": "string", "format": "", "description": "CreationTimestamp", "priority": 0}));
    }
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let mut cells = vec![o.pointer("/metadata/name").cloned().unwrap_or(Value::Null)];
            for c in &rt.columns {
                let path = c["jsonPath"].as_str().unwrap_or("");
                let v = jsonpath(o, path);
                let cell = match (c["type"].as_str(), v) {
                    (_, None) => Value::Null,
                    // The apiserver renders date columns as ages ("5m"), as kubectl prints them.
                    (Some("date"), Some(v)) => json!(age(v.as_str())),
                    (_, Some(Value::String(s))) => Value::String(s),
                    (_, Some(other)) => other,
                };
                cells.push(cell);
            }
            if !custom_columns {
                cells.push(json!(age(o.pointer("/metadata/creationTimestamp").and_then(Value::as_str))));
            }
            let mut meta = o["metadata"].clone();
            meta.as_object_mut().map(|m| m.remove("managedFields"));
            json!({"cells": cells, "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": meta}})
        })
        .collect();
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": resource_version},
           "columnDefinitions": defs, "rows": rows})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printer_column_paths() {
        let o = json!({"status": {"conditions": [{"type": "Created", "status": "True"}, {"type": "Ready", "status": "False"}], "progress": "1/2"}});
        assert_eq!(
            jsonpath(&o, ".status.conditions[?(@.type==\"Ready\")].status"),
            Some(json!("False"))
        );
        assert_eq!(jsonpath(&o, ".status.progress"), Some(json!("1/2")));
        assert_eq!(
            jsonpath(&o, ".status.conditions[0].type"),
            Some(json!("Created"))
        );
        assert_eq!(jsonpath(&o, ".spec.missing"), None);
    }
}
