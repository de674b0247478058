//! A claim's rows, split from the JSON array a claim function returns.
//!
//! The claim functions (`crm._claim_emails`, `crm._claim_tasks`) return one JSON array. Split
//! here, each element's text is handed on as it is (serde_json's `RawValue`: no re-encoding),
//! with its `id` read for the case that the row then fails to parse as its type. Postgres'
//! JSON functions would parse the array once more per use (`json_array_elements`, `->>`,
//! `::text`), which cost a worker a measurable share of each round.

use serde::Deserialize;
use serde_json::value::RawValue;

#[derive(Deserialize)]
struct IdOnly {
    #[serde(default)]
    id: Option<serde_json::Value>,
}

/// `(id, element text)` for every element of a JSON array, in order; `None` when the text is
/// not a JSON array, for the caller to split another way. An element nested deeper than
/// serde_json's limit of 128 is still split (skipping a value does not recurse into it): its
/// typed parse then fails, for that row alone.
pub fn split_claimed(array: &str) -> Option<Vec<(Option<String>, Option<String>)>> {
    let elements: Vec<&RawValue> = serde_json::from_str(array).ok()?;
    Some(
        elements
            .into_iter()
            .map(|raw| {
                let id = serde_json::from_str::<IdOnly>(raw.get())
                    .ok()
                    .and_then(|i| i.id)
                    .map(|v| match v {
                        serde_json::Value::String(s) => s,
                        other => other.to_string(),
                    });
                (id, Some(raw.get().to_string()))
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_keep_their_text_and_id() {
        let rows =
            split_claimed(r#"[{"id": "a", "x": [1, {"y": "z"}]}, {"x": 2}, {"id": 7}]"#).unwrap();
        assert_eq!(
            rows,
            vec![
                (
                    Some("a".into()),
                    Some(r#"{"id": "a", "x": [1, {"y": "z"}]}"#.into())
                ),
                (None, Some(r#"{"x": 2}"#.into())),
                (Some("7".into()), Some(r#"{"id": 7}"#.into())),
            ]
        );
        assert_eq!(split_claimed("[]").unwrap(), vec![]);
    }

    #[test]
    fn a_deep_row_is_split_to_fail_alone_and_a_non_array_is_left_to_the_caller() {
        let deep = format!(
            r#"[{{"id": "a", "v": {}1{}}}, {{"id": "b"}}]"#,
            "[".repeat(200),
            "]".repeat(200)
        );
        let rows = split_claimed(&deep).unwrap();
        assert_eq!(
            (rows[0].0.as_deref(), rows[1].0.as_deref()),
            (Some("a"), Some("b"))
        );
        assert!(serde_json::from_str::<serde_json::Value>(rows[0].1.as_deref().unwrap()).is_err());
        assert_eq!(split_claimed("not json"), None);
        assert_eq!(split_claimed(r#"{"id": "a"}"#), None);
    }
}
