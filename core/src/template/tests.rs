//! Engine tests: every syntax element, escaping, dates and zones, strict mode, limits, errors.

use super::*;
use serde_json::json;

fn render(src: &str, vars: serde_json::Value) -> Result<String, TemplateError> {
    Engine::new().render(src, vars, &Options::default())
}

fn render_with(
    src: &str,
    vars: serde_json::Value,
    f: impl FnOnce(&mut Options),
) -> Result<String, TemplateError> {
    let mut o = Options::default();
    f(&mut o);
    Engine::new().render(src, vars, &o)
}

#[test]
fn variables_and_paths() {
    assert_eq!(
        render("Hi {{name}}!", json!({"name": "John"})).unwrap(),
        "Hi John!"
    );
    assert_eq!(
        render(
            "{{customer.first_name}}",
            json!({"customer": {"first_name": "Ana"}})
        )
        .unwrap(),
        "Ana"
    );
    assert_eq!(
        render("{{n}} {{b}}", json!({"n": 42, "b": true})).unwrap(),
        "42 true"
    );
    assert_eq!(render("[{{missing}}]", json!({})).unwrap(), "[]");
    assert_eq!(render("[{{a.b.c}}]", json!({"a": 1})).unwrap(), "[]");
}

#[test]
fn conditionals_and_loops() {
    let t = "{{#if paid}}Paid{{else}}Due{{/if}} {{#unless late}}on time{{/unless}}";
    assert_eq!(
        render(t, json!({"paid": true, "late": false})).unwrap(),
        "Paid on time"
    );
    assert_eq!(
        render(t, json!({"paid": false, "late": true})).unwrap(),
        "Due "
    );
    assert_eq!(render(t, json!({})).unwrap(), "Due on time");
    let each = "{{#each items}}{{@index}}:{{this}};{{/each}}";
    assert_eq!(
        render(each, json!({"items": ["a", "b"]})).unwrap(),
        "0:a;1:b;"
    );
    let objs = "{{#each lines}}{{this.qty}}x {{name}}{{#unless @last}}, {{/unless}}{{/each}}";
    assert_eq!(
        render(
            objs,
            json!({"lines": [{"qty": 2, "name": "valve"}, {"qty": 1, "name": "pipe"}]})
        )
        .unwrap(),
        "2x valve, 1x pipe"
    );
    assert_eq!(
        render("{{#each none}}x{{else}}empty{{/each}}", json!({"none": []})).unwrap(),
        "empty"
    );
}

#[test]
fn html_escaping_by_default_raw_with_triple_braces() {
    let vars = json!({"v": "<script>alert('x')</script> & \"q\""});
    let out = render("<p>{{v}}</p>", vars.clone()).unwrap();
    assert!(!out.contains("<script>"), "{out}");
    assert_eq!(
        out,
        "<p>&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &quot;q&quot;</p>"
    );
    assert_eq!(
        render("{{{v}}}", vars.clone()).unwrap(),
        "<script>alert('x')</script> & \"q\""
    );
    // Escaping applies inside blocks, loops and helpers too.
    let loop_out = render(
        "{{#each xs}}{{this}}{{/each}}",
        json!({"xs": ["<b>", "<i>"]}),
    )
    .unwrap();
    assert_eq!(loop_out, "&lt;b&gt;&lt;i&gt;");
    assert_eq!(
        render("{{d:YYYY}}", json!({"d": "<img src=x>"})).unwrap(),
        "&lt;img src&#x3D;x&gt;"
    );
}

#[test]
fn text_format_does_not_escape() {
    let out = render_with("{{v}}", json!({"v": "Tom & Jerry <3"}), |o| {
        o.format = Format::Text
    })
    .unwrap();
    assert_eq!(out, "Tom & Jerry <3");
}

#[test]
fn dates_in_templates() {
    let vars = json!({"date": "2025-02-01T09:00:00Z", "at": "2026-07-04T16:30:00Z"});
    assert_eq!(
        render("{{date:MM/DD/YYYY}}", vars.clone()).unwrap(),
        "02/01/2025"
    );
    assert_eq!(
        render("{{ at : dddd, MMMM D [at] h:mm A }}", vars.clone()).unwrap(),
        "Saturday, July 4 at 4:30 PM"
    );
    assert_eq!(
        render(r#"{{formatDate at "YYYY-MM-DD HH:mm"}}"#, vars.clone()).unwrap(),
        "2026-07-04 16:30"
    );
    // Zone from the engine default, overridden by _timezone in the variables.
    let ny = render_with("{{at:h:mm A}}", vars.clone(), |o| {
        o.timezone = "America/New_York".parse().unwrap()
    })
    .unwrap();
    assert_eq!(ny, "12:30 PM");
    let mut v = vars.clone();
    v["_timezone"] = json!("Asia/Tokyo");
    assert_eq!(render("{{at:MMM D h:mm A}}", v).unwrap(), "Jul 5 1:30 AM");
    // Missing date renders empty; a non-date is shown as written.
    assert_eq!(render("[{{nope:YYYY}}]", json!({})).unwrap(), "[]");
    assert_eq!(
        render("{{eta:h:mm A}}", json!({"eta": "TBD"})).unwrap(),
        "TBD"
    );
    assert_eq!(
        render("{{when:YYYY}}", json!({"when": 1738400400})).unwrap(),
        "2025"
    );
}

#[test]
fn bad_timezone_is_an_error() {
    let err = render("x", json!({"_timezone": "Mars/Base"})).unwrap_err();
    assert_eq!(err, TemplateError::BadTimezone("Mars/Base".into()));
    assert!(matches!(
        render("x", json!({"_timezone": 5})),
        Err(TemplateError::BadTimezone(_))
    ));
}

#[test]
fn money() {
    assert_eq!(
        render(
            "{{money amount_cents currency}}",
            json!({"amount_cents": 123456, "currency": "usd"})
        )
        .unwrap(),
        "$1,234.56"
    );
    assert_eq!(
        render("{{money total}}", json!({"total": 999})).unwrap(),
        "$9.99"
    );
    assert_eq!(
        render("{{money total \"eur\"}}", json!({"total": 1050})).unwrap(),
        "€10.50"
    );
    assert_eq!(render("[{{money nothing}}]", json!({})).unwrap(), "[]");
    assert_eq!(
        render("{{money}}", json!({"money": "<lots>"})).unwrap(),
        "&lt;lots&gt;"
    );
    assert!(
        matches!(render("{{money total}}", json!({"total": "abc"})), Err(TemplateError::Render(m)) if m.contains("\"total\""))
    );
    assert!(matches!(
        render("{{money total \"dollars\"}}", json!({"total": 1})),
        Err(TemplateError::Render(_))
    ));
}

#[test]
fn strict_mode_names_the_missing_variable() {
    let strict = |src: &str, v| render_with(src, v, |o| o.strict = true);
    assert_eq!(strict("Hi {{name}}", json!({"name": "x"})).unwrap(), "Hi x");
    match strict("Hi\n  {{customer.first_name}}", json!({"customer": {}})).unwrap_err() {
        TemplateError::MissingVariable { name, line, column } => {
            assert_eq!(name, "customer.first_name");
            assert_eq!((line, column), (Some(2), Some(3)));
        }
        e => panic!("{e:?}"),
    }
    // Positions are those of the text as written, also after a rewritten date.
    match strict("{{d:YYYY}} {{gone}}", json!({"d": "2025-01-01"})).unwrap_err() {
        TemplateError::MissingVariable { name, column, .. } => {
            assert_eq!(name, "gone");
            assert_eq!(column, Some(12));
        }
        e => panic!("{e:?}"),
    }
    assert!(
        matches!(strict("{{d:YYYY}}", json!({})), Err(TemplateError::MissingVariable { name, .. }) if name == "d")
    );
    assert!(matches!(
        strict("{{money x}}", json!({})),
        Err(TemplateError::MissingVariable { .. })
    ));
    assert!(matches!(
        strict("{{d:YYYY}}", json!({"d": "soon"})),
        Err(TemplateError::Render(_))
    ));
}

#[test]
fn syntax_errors_carry_line_and_column() {
    match render("line one\nline two {{#if x}}never closed", json!({})).unwrap_err() {
        TemplateError::Syntax { line, .. } => assert!(line >= 2),
        e => panic!("{e:?}"),
    }
    // A rewritten date earlier on the line does not move the reported column: the same error
    // in a same-length template without the date syntax is reported at the same place.
    let pos = |src: &str| match render(src, json!({})).unwrap_err() {
        TemplateError::Syntax { line, column, .. } => (line, column),
        e => panic!("{e:?}"),
    };
    assert_eq!(
        pos("{{d:YYYY}} then {{#each}"),
        pos("{{dxYYYY}} then {{#each}")
    );
    assert_eq!(pos("{{d:YYYY}} then {{#each}").0, 1);
    let e = render("{{#if a}}x{{/unless}}", json!({})).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("template syntax error at line 1, column"),
        "{e}"
    );
}

#[test]
fn partials_and_decorators_are_refused() {
    assert_eq!(
        render("{{> header}}", json!({})).unwrap_err(),
        TemplateError::Unsupported("partials ({{> name}})")
    );
    assert!(matches!(
        render("{{#if a}}{{#> layout}}x{{/layout}}{{/if}}", json!({})),
        Err(TemplateError::Unsupported(_))
    ));
    assert!(matches!(
        render("{{#*inline \"x\"}}{{> x}}{{/inline}}{{> x}}", json!({})),
        Err(TemplateError::Unsupported(_))
    ));
}

#[test]
fn variables_must_be_an_object() {
    for (v, kind) in [
        (json!([1]), "an array"),
        (json!("s"), "a string"),
        (json!(1), "a number"),
        (json!(null), "null"),
    ] {
        assert_eq!(
            render("x", v).unwrap_err(),
            TemplateError::VariablesNotAnObject(kind)
        );
    }
}

#[test]
fn limits() {
    let limits = Limits {
        max_template_bytes: 100,
        max_output_bytes: 1000,
        ..Limits::default()
    };
    let big = "x".repeat(101);
    assert_eq!(
        render_with(&big, json!({}), |o| o.limits = limits).unwrap_err(),
        TemplateError::TemplateTooLarge {
            bytes: 101,
            limit: 100
        }
    );
    let items: Vec<i32> = (0..2000).collect();
    assert_eq!(
        render_with(
            "{{#each xs}}{{this}},{{/each}}",
            json!({"xs": items}),
            |o| o.limits = limits
        )
        .unwrap_err(),
        TemplateError::OutputTooLarge { limit: 1000 }
    );
    // Exactly at the limit is fine.
    assert_eq!(
        render_with(&"y".repeat(100), json!({}), |o| o.limits = limits)
            .unwrap()
            .len(),
        100
    );
    // Deep nesting is refused on the parsed tree (parse.rs), with its position.
    let deep = "{{#if a}}".repeat(10_000) + &"{{/if}}".repeat(10_000);
    assert!(matches!(
        render(&deep, json!({})),
        Err(TemplateError::TooDeep {
            what: "blocks",
            limit: 64,
            ..
        })
    ));
}

#[test]
fn variable_lists() {
    let c = compile(
        "{{firstName}} {{customer.email}} {{#if notes}}{{notes}}{{/if}} {{when:YYYY}} {{money amount currency}} \
         {{#each items}}{{name}} {{@root.company}} {{../tax}}{{/each}} {{{raw}}} {{formatDate due \"D\"}}",
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(
        c.variables,
        [
            "amount",
            "company",
            "currency",
            "customer.email",
            "due",
            "firstName",
            "items",
            "notes",
            "raw",
            "tax",
            "when"
        ]
    );
}

#[test]
fn the_cache_compiles_once() {
    let mut e = Engine::new();
    for i in 0..100 {
        e.render("Hello {{n}}", json!({"n": i}), &Options::default())
            .unwrap();
    }
    let (entries, hits, misses) = e.cache_stats();
    assert_eq!((entries, misses), (1, 1));
    assert_eq!(hits, 99);
    // Bounded: many distinct templates never exceed the cap.
    for i in 0..(cache::MAX_ENTRIES + 50) {
        e.render(
            &format!("T{i} {{{{n}}}}"),
            json!({"n": 1}),
            &Options::default(),
        )
        .unwrap();
    }
    assert_eq!(e.cache_stats().0, cache::MAX_ENTRIES);
}

#[test]
fn html_to_text_alternative() {
    let html = render(
        "<p>Hi {{n}},</p><p><a href=\"{{u}}\">Log in</a></p>",
        json!({"n": "Jo", "u": "https://x.example/a?b=1&c=2"}),
    )
    .unwrap();
    assert_eq!(
        text::html_to_text(&html),
        "Hi Jo,\n\nLog in (https://x.example/a?b=1&c=2)"
    );
}

#[test]
fn email_parts() {
    let mut e = Engine::new();
    let vars = json!({"n": "<&>"});
    let parts = |subject, html, text| EmailParts {
        subject,
        html,
        text,
    };
    let out = e
        .render_email(
            parts(Some("Hi {{n}}"), Some("<p>{{n}}</p>"), None),
            &vars,
            &Options::default(),
        )
        .unwrap();
    assert_eq!(
        out,
        EmailParts {
            subject: Some("Hi <&>".into()),
            html: Some("<p>&lt;&amp;&gt;</p>".into()),
            text: Some("<&>".into())
        }
    );
    let out = e
        .render_email(
            parts(None, Some("<p>x</p>"), Some("T {{n}}")),
            &vars,
            &Options::default(),
        )
        .unwrap();
    assert_eq!(
        (out.subject, out.text.as_deref()),
        (None, Some("T <&>")),
        "a text part is used as is, not made from the HTML"
    );
    assert_eq!(
        e.render_email(parts(None, None, None), &vars, &Options::default())
            .unwrap(),
        EmailParts::default()
    );
    // With several broken parts the HTML's error comes first.
    let err = e
        .render_email(
            parts(Some("{{money \"x\"}}"), Some("{{money \"y\"}}"), None),
            &vars,
            &Options::default(),
        )
        .unwrap_err();
    assert!(err.to_string().contains('y'), "{err}");
}

#[test]
fn nested_loops_that_write_nothing_spend_the_work_budget() {
    let xs: Vec<i32> = (0..300).collect();
    let vars = json!({ "a": xs });
    let t = "{{#each a}}{{#each @root.a}}{{#each @root.a}}{{#each @root.a}}{{/each}}{{/each}}{{/each}}{{/each}}";
    let started = std::time::Instant::now();
    let err = render_with(t, vars.clone(), |o| o.limits.max_steps = 100_000).unwrap_err();
    assert_eq!(err, TemplateError::StepLimit { limit: 100_000 });
    assert!(
        started.elapsed() < std::time::Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    // One level of the same loop stays well within the default budget.
    assert!(render("{{#each a}}{{this}}{{/each}}", vars).is_ok());
}

#[test]
fn the_checkpoint_stops_a_render() {
    fn stop() -> bool {
        true
    }
    let vars = json!({ "a": [1, 2, 3] });
    let err = render_with("{{#each a}}{{this}}{{/each}}", vars, |o| {
        o.checkpoint = stop
    })
    .unwrap_err();
    assert_eq!(err, TemplateError::Interrupted);
}

#[test]
fn loop_steps_count_what_each_iteration_evaluates() {
    let mut e = Engine::new();
    let vars = json!({ "a": [1, 2, 3, 4] });
    e.render("{{#each a}}{{this}}-{{/each}}", vars, &Options::default())
        .unwrap();
    // Once per render: the block and its body (step, this, "-"); each of the 4 iterations:
    // the body's 2 elements plus 1.
    assert_eq!(e.last_render_steps(), 4 + 4 * 3);
}
