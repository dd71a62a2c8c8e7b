//! Template rendering with minijinja. The subject and the text body render without
//! escaping; the HTML body renders under a `.html` name, so minijinja's auto-escape turns
//! every variable into escaped HTML (a patient's name cannot inject markup into an email).
//! Undefined variables are errors rather than empty strings, and rendering is bounded by
//! fuel so an operator's template cannot loop forever.

use minijinja::{Environment, UndefinedBehavior};
use serde_json::Value;

use crate::NotificationError;

/// Instructions a single render may execute.
const FUEL: u64 = 50_000;
/// Longest source accepted for one template part.
pub const MAX_TEMPLATE_LEN: usize = 64 * 1024;

/// A template's parts.
#[derive(Debug, Clone)]
pub struct Parts<'a> {
    pub subject: &'a str,
    pub body_text: &'a str,
    pub body_html: Option<&'a str>,
}

/// Rendered parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub body_text: String,
    pub body_html: Option<String>,
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(FUEL));
    env
}

fn template_error(part: &str, e: minijinja::Error) -> NotificationError {
    // minijinja's Display carries the line and the reason; the debug form would add source.
    NotificationError::Template(format!("{part}: {e}"))
}

/// Checks that every part parses (on create and update, before anything is stored).
pub fn validate(parts: &Parts<'_>) -> Result<(), NotificationError> {
    let env = environment();
    for (name, src) in named(parts) {
        if src.len() > MAX_TEMPLATE_LEN {
            return Err(NotificationError::Invalid(format!(
                "{name} is longer than {MAX_TEMPLATE_LEN} bytes"
            )));
        }
        env.template_from_named_str(name, src)
            .map_err(|e| template_error(name, e))?;
    }
    Ok(())
}

fn named<'a>(parts: &Parts<'a>) -> Vec<(&'static str, &'a str)> {
    let mut v = vec![
        ("subject.txt", parts.subject),
        ("body.txt", parts.body_text),
    ];
    if let Some(h) = parts.body_html {
        v.push(("body.html", h));
    }
    v
}

/// Renders every part with `data` (a JSON object) as the variables.
pub fn render(parts: &Parts<'_>, data: &Value) -> Result<Rendered, NotificationError> {
    if !data.is_object() {
        return Err(NotificationError::Invalid(
            "template data must be a JSON object".into(),
        ));
    }
    let env = environment();
    let one = |name: &str, src: &str| {
        env.render_named_str(name, src, data)
            .map_err(|e| template_error(name, e))
    };
    let subject = one("subject.txt", parts.subject)?;
    // One line: subjects go into mail headers and push titles.
    let subject = subject.split_whitespace().collect::<Vec<_>>().join(" ");
    Ok(Rendered {
        subject,
        body_text: one("body.txt", parts.body_text)?,
        body_html: parts.body_html.map(|h| one("body.html", h)).transpose()?,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn parts<'a>(s: &'a str, t: &'a str, h: Option<&'a str>) -> Parts<'a> {
        Parts {
            subject: s,
            body_text: t,
            body_html: h,
        }
    }

    #[test]
    fn html_is_escaped_and_text_is_not() {
        let r = render(
            &parts(
                "Hi {{ name }}",
                "Dear {{ name }}",
                Some("<p>Dear {{ name }}</p>"),
            ),
            &json!({ "name": "<script>alert(1)</script> & co" }),
        )
        .unwrap();
        assert_eq!(r.body_text, "Dear <script>alert(1)</script> & co");
        assert_eq!(
            r.body_html.as_deref(),
            Some("<p>Dear &lt;script&gt;alert(1)&lt;&#x2f;script&gt; &amp; co</p>")
        );
    }

    #[test]
    fn subjects_are_one_line() {
        let r = render(
            &parts("A\n{{ x }}\r\nBcc: x@y", "t", None),
            &json!({ "x": "b" }),
        )
        .unwrap();
        assert_eq!(r.subject, "A b Bcc: x@y");
    }

    #[test]
    fn missing_variables_and_bad_syntax_are_errors() {
        let e = render(&parts("{{ nope }}", "t", None), &json!({})).unwrap_err();
        assert!(matches!(e, NotificationError::Template(m) if m.contains("subject")));
        let e = validate(&parts("ok", "{% if %}", None)).unwrap_err();
        assert!(matches!(e, NotificationError::Template(m) if m.contains("body.txt")));
        assert!(render(&parts("s", "t", None), &json!([1])).is_err());
    }

    #[test]
    fn runaway_templates_run_out_of_fuel() {
        let e = render(
            &parts(
                "s",
                "{% for a in range(1000) %}{% for b in range(1000) %}x{% endfor %}{% endfor %}",
                None,
            ),
            &json!({}),
        )
        .unwrap_err();
        assert!(matches!(e, NotificationError::Template(_)));
    }
}
