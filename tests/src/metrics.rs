//! The Prometheus text exposition format (version 0.0.4), parsed strictly: what the
//! metrics tests read from `/metrics`.

/// One metric family of a Prometheus text exposition: its type and samples (name, labels,
/// value).
pub struct Family {
    /// counter, gauge or histogram.
    pub kind: String,
    /// (sample name, labels, value).
    pub samples: Vec<(String, std::collections::BTreeMap<String, String>, f64)>,
}

impl Family {
    /// The sum of the family's values that moved: the samples of a counter, the `_count`s
    /// of a histogram.
    pub fn total(&self) -> f64 {
        let counted = |name: &String| self.kind != "histogram" || name.ends_with("_count");
        self.samples.iter().filter(|(name, _, _)| counted(name)).map(|(_, _, v)| v).sum()
    }

    /// The value of the sample whose labels include `label`.
    pub fn with(&self, label: (&str, &str)) -> f64 {
        let hits: Vec<f64> = self.samples.iter().filter(|(_, l, _)| l.get(label.0).map(String::as_str) == Some(label.1)).map(|(_, _, v)| *v).collect();
        assert_eq!(hits.len(), 1, "one sample with {label:?}");
        hits[0]
    }
}

/// Parses the text exposition format (version 0.0.4) strictly: `# HELP` then `# TYPE` once
/// per family before its samples, metric and label names of the allowed characters, label
/// values with their escapes, no duplicate labels, a value per sample; counters named
/// `_total` and never negative; histograms with cumulative `le` buckets ending at `+Inf`
/// equal to `_count`, and a `_sum`. Panics naming the line that breaks a rule.
pub fn parse_exposition(text: &str) -> std::collections::BTreeMap<String, Family> {
    use std::collections::BTreeMap;
    let name_ok = |n: &str| {
        !n.is_empty()
            && n.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
            && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    };
    assert!(text.ends_with('\n'), "the exposition ends with a newline");
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    let mut current: Option<String> = None;
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or_else(|| panic!("HELP without text: {line}"));
            assert!(name_ok(name) && !help.is_empty(), "{line}");
            assert!(!families.contains_key(name), "family {name} appears twice");
            let next = lines.next().unwrap_or_else(|| panic!("no TYPE after {line}"));
            let kind = next.strip_prefix(&format!("# TYPE {name} ")).unwrap_or_else(|| panic!("TYPE of {name} expected after its HELP: {next}"));
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{next}");
            if kind == "counter" {
                assert!(name.ends_with("_total") || name.ends_with("_seconds_total"), "a counter is named _total: {name}");
            }
            families.insert(name.to_owned(), Family { kind: kind.to_owned(), samples: Vec::new() });
            current = Some(name.to_owned());
            continue;
        }
        assert!(!line.starts_with('#') && !line.is_empty(), "unexpected line: {line:?}");
        let family_name = current.clone().unwrap_or_else(|| panic!("a sample before any family: {line}"));
        let family = families.get_mut(&family_name).expect("current family");
        let end = line.find(['{', ' ']).unwrap_or_else(|| panic!("no value: {line}"));
        let name = &line[..end];
        assert!(name_ok(name), "metric name: {line}");
        let allowed: Vec<String> = match family.kind.as_str() {
            "histogram" => ["_bucket", "_sum", "_count"].iter().map(|s| format!("{family_name}{s}")).collect(),
            _ => vec![family_name.clone()],
        };
        assert!(allowed.iter().any(|a| a == name), "sample {name} outside its family {family_name}: {line}");
        let mut rest = &line[end..];
        let mut labels = BTreeMap::new();
        if let Some(after) = rest.strip_prefix('{') {
            let mut chars = after.char_indices().peekable();
            loop {
                let start = chars.peek().map(|(i, _)| *i).expect("labels end");
                if after[start..].starts_with('}') {
                    chars.next();
                    break;
                }
                let eq = after[start..].find('=').map(|i| start + i).unwrap_or_else(|| panic!("label without =: {line}"));
                let key = &after[start..eq];
                assert!(name_ok(key) && !key.contains(':'), "label name {key:?}: {line}");
                assert!(after[eq + 1..].starts_with('"'), "label value quoted: {line}");
                while chars.peek().is_some_and(|(i, _)| *i <= eq + 1) {
                    chars.next();
                }
                let mut value = String::new();
                loop {
                    match chars.next().unwrap_or_else(|| panic!("unterminated label value: {line}")) {
                        (_, '\\') => match chars.next().map(|(_, c)| c) {
                            Some('\\') => value.push('\\'),
                            Some('"') => value.push('"'),
                            Some('n') => value.push('\n'),
                            other => panic!("bad escape {other:?}: {line}"),
                        },
                        (_, '"') => break,
                        (_, c) => value.push(c),
                    }
                }
                assert!(labels.insert(key.to_owned(), value).is_none(), "label {key} twice: {line}");
                match chars.next() {
                    Some((_, ',')) => {}
                    Some((_, '}')) => break,
                    other => panic!("expected , or }} after a label, got {other:?}: {line}"),
                }
            }
            let consumed = chars.peek().map_or(after.len(), |(i, _)| *i);
            rest = &after[consumed..];
        }
        let value = rest.strip_prefix(' ').unwrap_or_else(|| panic!("one space before the value: {line}"));
        assert!(!value.contains(' '), "a value and nothing else (no timestamps here): {line}");
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|e| panic!("value {v:?} ({e}): {line}")),
        };
        if family.kind == "counter" || family.kind == "histogram" {
            assert!(value >= 0.0 && value.is_finite(), "a {} value is finite and not negative: {line}", family.kind);
        }
        assert_eq!(name.ends_with("_bucket"), labels.contains_key("le"), "le on buckets only: {line}");
        family.samples.push((name.to_owned(), labels, value));
    }
    for (name, family) in families.iter().filter(|(_, f)| f.kind == "histogram") {
        // Each series (labels without le): buckets cumulative, +Inf last and equal to _count.
        // By the series' labels (without le): (sample name, le, value).
        type Series<'a> = BTreeMap<Vec<(String, String)>, Vec<(&'a str, &'a str, f64)>>;
        let mut series: Series<'_> = BTreeMap::new();
        for (sample, labels, v) in &family.samples {
            let key: Vec<(String, String)> = labels.iter().filter(|(k, _)| *k != "le").map(|(k, v)| (k.clone(), v.clone())).collect();
            series.entry(key).or_default().push((sample.as_str(), labels.get("le").map_or("", String::as_str), *v));
        }
        for (key, samples) in series {
            let buckets: Vec<(f64, f64)> = samples
                .iter()
                .filter(|(s, _, _)| s.ends_with("_bucket"))
                .map(|(_, le, v)| (if *le == "+Inf" { f64::INFINITY } else { le.parse().expect("le") }, *v))
                .collect();
            assert!(buckets.len() >= 2 && buckets.last().is_some_and(|(le, _)| le.is_infinite()), "{name} {key:?}: buckets end at +Inf");
            assert!(buckets.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1), "{name} {key:?}: le increasing, counts cumulative");
            let count = samples.iter().find(|(s, _, _)| s.ends_with("_count")).unwrap_or_else(|| panic!("{name} {key:?}: _count")).2;
            assert!(samples.iter().any(|(s, _, _)| s.ends_with("_sum")), "{name} {key:?}: _sum");
            assert_eq!(buckets.last().map(|b| b.1), Some(count), "{name} {key:?}: +Inf is the count");
        }
    }
    families
}
