//! A small Lexicon validator for the subset refcat's documents use: objects with
//! required properties, strings (const, enum, maxLength, formats datetime and count),
//! integers (minimum), arrays and local refs.

use serde_json::Value;

/// A loaded Lexicon document.
pub struct Lexicon {
    doc: Value,
}

impl Lexicon {
    /// Loads `lexicons/<id>.json` and checks its envelope.
    pub fn load(id: &str) -> Lexicon {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("lexicons")
            .join(format!("{id}.json"));
        let doc: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(doc["lexicon"], 1, "{id}: lexicon version");
        assert_eq!(doc["id"], id, "{id}: id");
        assert!(doc["defs"]["main"].is_object(), "{id}: main def");
        Lexicon { doc }
    }

    /// Validates `value` against the main definition; every problem, with its path.
    pub fn validate(&self, value: &Value) -> Vec<String> {
        let main = &self.doc["defs"]["main"];
        let schema = if main["type"] == "record" {
            &main["record"]
        } else {
            main
        };
        let mut problems = Vec::new();
        self.check(schema, value, "$", &mut problems);
        problems
    }

    fn check(&self, schema: &Value, value: &Value, path: &str, out: &mut Vec<String>) {
        match schema["type"].as_str().unwrap_or("") {
            "ref" => {
                let name = schema["ref"].as_str().unwrap().trim_start_matches('#');
                self.check(&self.doc["defs"][name], value, path, out);
            }
            "object" => {
                let Some(object) = value.as_object() else {
                    return out.push(format!("{path}: expected an object"));
                };
                for key in schema["required"].as_array().into_iter().flatten() {
                    if !object.contains_key(key.as_str().unwrap()) {
                        out.push(format!("{path}: missing {key}"));
                    }
                }
                let properties = schema["properties"].as_object().unwrap();
                for (key, v) in object {
                    match properties.get(key) {
                        Some(p) => self.check(p, v, &format!("{path}.{key}"), out),
                        None if key.starts_with("dev.refcat.") => {
                            out.push(format!("{path}: undeclared {key}"))
                        }
                        None => {}
                    }
                }
            }
            "array" => match value.as_array() {
                Some(items) => {
                    for (i, item) in items.iter().enumerate() {
                        self.check(&schema["items"], item, &format!("{path}[{i}]"), out);
                    }
                }
                None => out.push(format!("{path}: expected an array")),
            },
            "integer" => match value.as_i64() {
                Some(n) if schema["minimum"].as_i64().is_none_or(|m| n >= m) => {}
                _ => out.push(format!("{path}: expected an integer in range, got {value}")),
            },
            "string" => {
                let Some(text) = value.as_str() else {
                    return out.push(format!("{path}: expected a string, got {value}"));
                };
                if let Some(c) = schema["const"].as_str() {
                    if text != c {
                        out.push(format!("{path}: expected {c:?}, got {text:?}"));
                    }
                }
                if let Some(allowed) = schema["enum"].as_array() {
                    if !allowed.iter().any(|a| a == text) {
                        out.push(format!("{path}: {text:?} is not one of {allowed:?}"));
                    }
                }
                if schema["maxLength"]
                    .as_u64()
                    .is_some_and(|m| text.len() as u64 > m)
                {
                    out.push(format!("{path}: longer than maxLength"));
                }
                match schema["format"].as_str() {
                    Some("datetime") => {
                        let ok = time::OffsetDateTime::parse(
                            text,
                            &time::format_description::well_known::Rfc3339,
                        )
                        .is_ok();
                        if !ok {
                            out.push(format!("{path}: {text:?} is not an RFC 3339 datetime"));
                        }
                    }
                    Some("count") if text.parse::<u64>().is_err() => {
                        out.push(format!("{path}: {text:?} is not a count"))
                    }
                    _ => {}
                }
            }
            other => out.push(format!(
                "{path}: the validator does not know type {other:?}"
            )),
        }
    }
}
