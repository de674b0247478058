//! Fuzzing the template engine with proptest: arbitrary templates built from handlebars'
//! own tokens (so most inputs reach the parser and the renderer, not just the first `{{`),
//! arbitrary JSON variables, every format/strict/time-zone combination. The property is that
//! nothing panics and every error is one of ours.
//!
//! `make test` runs PROPTEST_CASES (default 2,000 here); `make fuzz` runs far more.

use crm_core::template::{Engine, Format, Limits, Options};
use proptest::prelude::*;
use std::cell::RefCell;

thread_local! {
    // One engine for all cases, as in a backend: the cache sees thousands of templates.
    static ENGINE: RefCell<Engine> = RefCell::new(Engine::new());
}

const PIECES: &[&str] = &[
    "{{",
    "}}",
    "{{{",
    "}}}",
    "{{#if ",
    "{{#unless ",
    "{{#each ",
    "{{#with ",
    "{{/if}}",
    "{{/each}}",
    "{{/unless}}",
    "{{/with}}",
    "{{else}}",
    "{{^}}",
    "{{~",
    "~}}",
    "{{!",
    "{{!--",
    "--}}",
    "{{>",
    "{{#>",
    "{{*",
    "{{#*inline",
    "{{/inline}}",
    "@index",
    "@root.",
    "this",
    "../",
    ".",
    ":",
    "/",
    "(",
    ")",
    "\"",
    "'",
    "=",
    " as |x|",
    "money ",
    "formatDate ",
    "lookup ",
    "a",
    "b",
    "items",
    "date",
    "MM/DD/YYYY",
    "h:mm A",
    "[at]",
    "YYYY",
    "Z",
    "\\",
    "\n",
    " ",
    "<script>",
    "&",
    "é",
    "😀",
    "\u{0}",
    "name",
    "x.y.z",
    "1",
    "true",
    "null",
    "{{{{raw}}}}",
    "{{{{/raw}}}}",
];

fn template() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec(prop::sample::select(PIECES), 0..40).prop_map(|v| v.concat()),
        ".{0,200}",
    ]
}

fn json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f)
            .map_or(serde_json::Value::Null, serde_json::Value::Number)),
        ".{0,30}".prop_map(serde_json::Value::from),
        prop::sample::select(vec![
            "2025-02-01T09:00:00Z",
            "2026-03-08 02:30:00-05",
            "2025-02-01",
            "TBD",
            "usd",
            "zzz"
        ])
        .prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
            prop::collection::btree_map(
                prop::sample::select(vec![
                    "a",
                    "b",
                    "items",
                    "date",
                    "name",
                    "x",
                    "money",
                    "_timezone",
                    "this"
                ]),
                inner,
                0..6
            )
            .prop_map(|m| serde_json::Value::Object(
                m.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
            )),
        ]
    })
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn render_never_panics(src in template(), vars in json(), html in any::<bool>(), strict in any::<bool>(),
                           tz in prop::sample::select(vec!["UTC", "America/New_York", "Asia/Kolkata", "Pacific/Chatham"])) {
        let opts = Options {
            format: if html { Format::Html } else { Format::Text },
            strict,
            timezone: tz.parse().unwrap(),
            limits: Limits { max_template_bytes: 4096, max_output_bytes: 64 * 1024, max_steps: 100_000 },
            ..Options::default()
        };
        let result = ENGINE.with(|e| e.borrow_mut().render(&src, vars.clone(), &opts));
        if let Ok(out) = result {
            prop_assert!(out.len() <= 64 * 1024);
        }
        // Wrapped in an object, the same variables must also be accepted as an object.
        let wrapped = serde_json::json!({ "v": vars, "items": [1, 2] });
        let _ = ENGINE.with(|e| e.borrow_mut().render(&src, wrapped, &opts));
    }

    #[test]
    fn compile_and_variables_never_panic(src in template()) {
        let _ = crm_core::template::compile(&src, &Limits::default());
    }
}
