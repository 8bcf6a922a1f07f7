//! `google.api.http` path templates: parsing `/v1/{name=shelves/*/books/*}:verb` and matching
//! request paths against them, capturing the variables' percent-decoded values.
//!
//! Grammar (from `google/api/http.proto`):
//! `Template = "/" Segments [ Verb ]`, `Segment = "*" | "**" | LITERAL | Variable`,
//! `Variable = "{" FieldPath [ "=" Segments ] "}"`, `Verb = ":" LITERAL`.

use std::borrow::Cow;

use percent_encoding::percent_decode_str;

/// One segment of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    /// `*`: exactly one segment.
    One,
    /// `**`: zero or more segments (at most one per template).
    Many,
}

/// A variable and the template segments it spans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variable {
    /// Dotted proto field path, e.g. `book.name`.
    pub field_path: String,
    start: usize,
    end: usize,
}

/// A parsed path template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathTemplate {
    segments: Vec<Segment>,
    variables: Vec<Variable>,
    verb: Option<String>,
    many_at: Option<usize>,
}

/// Why a template could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid path template `{template}`: {reason}")]
pub struct TemplateError {
    template: String,
    reason: &'static str,
}

/// Why a matched path could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("path variable `{0}` is not valid percent-encoded UTF-8")]
pub struct DecodeError(pub String);

impl PathTemplate {
    /// Parses `template`.
    ///
    /// # Errors
    /// [`TemplateError`] naming what is wrong.
    pub fn parse(template: &str) -> Result<Self, TemplateError> {
        let fail = |reason| TemplateError {
            template: template.to_owned(),
            reason,
        };
        let rest = template
            .strip_prefix('/')
            .ok_or_else(|| fail("must start with `/`"))?;
        // The verb is a `:` after the last `/` and the last `}`.
        let tail_from = rest.rfind(['/', '}']).map_or(0, |i| i + 1);
        let (body, verb) = match rest[tail_from..].find(':') {
            Some(i) => (
                &rest[..tail_from + i],
                Some(rest[tail_from + i + 1..].to_owned()),
            ),
            None => (rest, None),
        };
        if verb.as_deref() == Some("") {
            return Err(fail("empty verb"));
        }
        let mut parsed = Self {
            segments: Vec::new(),
            variables: Vec::new(),
            verb,
            many_at: None,
        };
        let mut chars = body;
        while !chars.is_empty() {
            if let Some(inner) = chars.strip_prefix('{') {
                let close = inner.find('}').ok_or_else(|| fail("unclosed `{`"))?;
                let (field, pattern) = match inner[..close].split_once('=') {
                    Some((f, p)) => (f, p),
                    None => (&inner[..close], "*"),
                };
                if field.is_empty() || !field.split('.').all(is_ident) {
                    return Err(fail("bad variable name"));
                }
                let start = parsed.segments.len();
                for s in pattern.split('/') {
                    parsed.push(s).map_err(fail)?;
                }
                parsed.variables.push(Variable {
                    field_path: field.to_owned(),
                    start,
                    end: parsed.segments.len(),
                });
                chars = &inner[close + 1..];
            } else {
                let end = chars.find('/').unwrap_or(chars.len());
                parsed.push(&chars[..end]).map_err(fail)?;
                chars = &chars[end..];
            }
            chars = match chars.strip_prefix('/') {
                Some("") => return Err(fail("trailing `/`")),
                Some(next) => next,
                None if chars.is_empty() => chars,
                None => return Err(fail("expected `/` between segments")),
            };
        }
        Ok(parsed)
    }

    fn push(&mut self, segment: &str) -> Result<(), &'static str> {
        let seg = match segment {
            "" => return Err("empty segment"),
            "*" => Segment::One,
            "**" if self.many_at.is_some() => return Err("more than one `**`"),
            "**" => {
                self.many_at = Some(self.segments.len());
                Segment::Many
            }
            s if s.contains(['{', '}', '*', '=']) => return Err("bad literal segment"),
            s => Segment::Literal(s.to_owned()),
        };
        self.segments.push(seg);
        Ok(())
    }

    /// The variables, in template order.
    pub fn variables(&self) -> &[Variable] {
        &self.variables
    }

    /// How many literal segments there are: more literals match more specifically.
    pub fn literal_count(&self) -> usize {
        self.segments
            .iter()
            .filter(|s| matches!(s, Segment::Literal(_)))
            .count()
            + usize::from(self.verb.is_some())
    }

    /// Whether the template has a `**`, which matches least specifically.
    pub fn has_many(&self) -> bool {
        self.many_at.is_some()
    }

    /// The OpenAPI form of the path: variables as `{field.path}`.
    pub fn openapi_path(&self) -> String {
        let mut out = String::new();
        let mut i = 0;
        while i < self.segments.len() {
            out.push('/');
            if let Some(v) = self.variables.iter().find(|v| v.start == i) {
                out.push('{');
                out.push_str(&v.field_path);
                out.push('}');
                i = v.end.max(i + 1);
                continue;
            }
            match &self.segments[i] {
                Segment::Literal(l) => out.push_str(l),
                Segment::One => out.push('*'),
                Segment::Many => out.push_str("**"),
            }
            i += 1;
        }
        if let Some(verb) = &self.verb {
            out.push(':');
            out.push_str(verb);
        }
        out
    }

    /// Matches a raw (still percent-encoded) request path; `Ok(None)` when it does not match.
    ///
    /// # Errors
    /// [`DecodeError`] when it matches but a variable is not valid percent-encoded UTF-8.
    pub fn matches(&self, path: &str) -> Result<Option<Vec<(String, String)>>, DecodeError> {
        let Some(mut rest) = path.strip_prefix('/') else {
            return Ok(None);
        };
        if let Some(verb) = &self.verb {
            match rest
                .strip_suffix(verb.as_str())
                .and_then(|r| r.strip_suffix(':'))
            {
                Some(r) => rest = r,
                None => return Ok(None),
            }
        }
        let parts: Vec<&str> = if rest.is_empty() {
            Vec::new()
        } else {
            rest.split('/').collect()
        };
        let Some(spans) = self.align(&parts) else {
            return Ok(None);
        };
        let mut captured = Vec::with_capacity(self.variables.len());
        for v in &self.variables {
            let (from, to) = (spans[v.start].0, spans[v.end - 1].1);
            let raw = parts[from..to].join("/");
            let multi = to - from > 1 || self.many_at.is_some_and(|m| m >= v.start && m < v.end);
            captured.push((v.field_path.clone(), decode(&raw, multi, &v.field_path)?));
        }
        Ok(Some(captured))
    }

    /// For each template segment, the range of path parts it covers.
    fn align(&self, parts: &[&str]) -> Option<Vec<(usize, usize)>> {
        let fixed = self.segments.len() - usize::from(self.many_at.is_some());
        if parts.len() < fixed || (self.many_at.is_none() && parts.len() != fixed) {
            return None;
        }
        let many_len = parts.len() - fixed;
        let mut spans = Vec::with_capacity(self.segments.len());
        let mut at = 0;
        for seg in &self.segments {
            let len = if matches!(seg, Segment::Many) {
                many_len
            } else {
                1
            };
            if let Segment::Literal(l) = seg
                && parts[at] != l
            {
                return None;
            }
            if matches!(seg, Segment::One) && parts[at].is_empty() {
                return None;
            }
            spans.push((at, at + len));
            at += len;
        }
        Some(spans)
    }
}

fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Percent-decodes a captured value. Multi-segment values keep `%2F` encoded, so a decoded
/// `/` always means a segment boundary (RFC 6570 reserved expansion, as grpc-gateway does).
fn decode(raw: &str, multi: bool, field: &str) -> Result<String, DecodeError> {
    let bad = || DecodeError(field.to_owned());
    if multi {
        let parts: Result<Vec<String>, DecodeError> = raw
            .split('/')
            .map(|p| {
                let kept = p.replace("%2F", "%252F").replace("%2f", "%252f");
                decode_one(&kept).ok_or_else(bad)
            })
            .collect();
        Ok(parts?.join("/"))
    } else {
        decode_one(raw).ok_or_else(bad)
    }
}

fn decode_one(raw: &str) -> Option<String> {
    match percent_decode_str(raw).decode_utf8().ok()? {
        Cow::Borrowed(s) => Some(s.to_owned()),
        Cow::Owned(s) => Some(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(template: &str, path: &str) -> Option<Vec<(String, String)>> {
        PathTemplate::parse(template)
            .expect("valid template")
            .matches(path)
            .expect("decodes")
    }

    #[test]
    fn simple_variables_and_literals_match() {
        let got = vars("/v1/users/{user_id}", "/v1/users/abc").expect("match");
        assert_eq!(got, vec![("user_id".into(), "abc".into())]);
        assert!(vars("/v1/users/{user_id}", "/v1/users").is_none());
        assert!(vars("/v1/users/{user_id}", "/v1/users/a/b").is_none());
        assert!(vars("/v1/users/{user_id}", "/v1/users/").is_none());
    }

    #[test]
    fn verbs_are_split_off_the_last_segment() {
        let got = vars(
            "/v1/users/{user_id}:changeStatus",
            "/v1/users/u1:changeStatus",
        );
        assert_eq!(got, Some(vec![("user_id".into(), "u1".into())]));
        assert!(vars("/v1/users/{user_id}:changeStatus", "/v1/users/u1").is_none());
        assert!(vars("/v1/products:batchGet", "/v1/products:batchGet").is_some());
        assert!(vars("/v1/products", "/v1/products:batchGet").is_none());
    }

    #[test]
    fn resource_name_patterns_capture_several_segments() {
        let t = "/v1/{name=shelves/*/books/*}";
        let got = vars(t, "/v1/shelves/s1/books/b%20two").expect("match");
        assert_eq!(got, vec![("name".into(), "shelves/s1/books/b two".into())]);
        assert!(vars(t, "/v1/shelves/s1/papers/b").is_none());
    }

    #[test]
    fn double_star_takes_the_rest_and_keeps_encoded_slashes() {
        let got = vars("/v1/files/{path=**}", "/v1/files/a/b%2Fc/d").expect("match");
        assert_eq!(got, vec![("path".into(), "a/b%2Fc/d".into())]);
        let got = vars("/v1/{path=**}/raw", "/v1/x/y/raw").expect("match");
        assert_eq!(got, vec![("path".into(), "x/y".into())]);
        let got = vars("/v1/one/{id}", "/v1/one/a%2Fb").expect("match");
        assert_eq!(got, vec![("id".into(), "a/b".into())]);
    }

    #[test]
    fn nested_field_paths_are_kept_dotted() {
        let got = vars("/v1/{book.name}", "/v1/x").expect("match");
        assert_eq!(got, vec![("book.name".into(), "x".into())]);
    }

    #[test]
    fn invalid_utf8_is_a_decode_error() {
        let t = PathTemplate::parse("/v1/{id}").expect("valid");
        assert!(t.matches("/v1/%FF").is_err());
    }

    #[test]
    fn bad_templates_are_rejected() {
        for bad in [
            "v1/x",
            "/v1/{x",
            "/v1//x",
            "/v1/**/**",
            "/v1/x/",
            "/v1/x:",
            "/v1/{1x}",
        ] {
            assert!(PathTemplate::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn openapi_paths_name_the_variables() {
        let t = PathTemplate::parse("/v1/users/{user_id}:changeStatus").expect("valid");
        assert_eq!(t.openapi_path(), "/v1/users/{user_id}:changeStatus");
        let t = PathTemplate::parse("/v1/{name=shelves/*}/x").expect("valid");
        assert_eq!(t.openapi_path(), "/v1/{name}/x");
    }
}
