//! Reading the OpenMetrics (Prometheus) text exposition every process serves at `/metrics`: just the
//! samples (`name{label="value",…} number`), which is all the status document needs.

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The metric name, with its `_bucket`/`_count`/`_sum` suffix if any.
    pub name: String,
    /// Its labels, in order.
    pub labels: Vec<(String, String)>,
    /// Its value.
    pub value: f64,
}

impl Sample {
    /// The value of label `name`, if present.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Every sample in `text`; comments and lines that do not parse are skipped.
pub fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(sample)
        .collect()
}

fn sample(line: &str) -> Option<Sample> {
    let (series, value) = line.trim().rsplit_once(' ')?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    let Some((name, rest)) = series.split_once('{') else {
        return Some(Sample {
            name: series.to_owned(),
            labels: Vec::new(),
            value,
        });
    };
    let body = rest.strip_suffix('}')?;
    Some(Sample {
        name: name.to_owned(),
        labels: labels(body)?,
        value,
    })
}

/// `a="x",b="y \"quoted\""` → pairs, unescaping `\"`, `\\` and `\n`.
fn labels(body: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut chars = body.chars().peekable();
    loop {
        while chars.peek() == Some(&',') || chars.peek() == Some(&' ') {
            chars.next();
        }
        if chars.peek().is_none() {
            return Some(out);
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if chars.next() != Some('"') {
            return None;
        }
        let mut value = String::new();
        loop {
            match chars.next()? {
                '"' => break,
                '\\' => match chars.next()? {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                c => value.push(c),
            }
        }
        out.push((key.trim().to_owned(), value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_with_and_without_labels_and_escapes() {
        let text = "# HELP x Things.\n# TYPE x counter\n\
            x 3\n\
            y{a=\"1\",b=\"say \\\"hi\\\"\"} 2.5\n\
            z_bucket{method=\"/a/B\",le=\"+Inf\"} 7\n\
            broken{a=1} 4\n";
        let samples = parse(text);
        assert_eq!(samples.len(), 3, "{samples:?}");
        assert_eq!(samples[0].name, "x");
        assert!((samples[0].value - 3.0).abs() < f64::EPSILON);
        assert_eq!(samples[1].label("b"), Some("say \"hi\""));
        assert_eq!(samples[2].label("le"), Some("+Inf"));
        assert_eq!(samples[2].label("method"), Some("/a/B"));
    }
}
