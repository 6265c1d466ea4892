//! Helpers shared by the dashboard and scrape tests: the dashboard's queries, and the
//! identifiers a PromQL expression names.

#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;

/// Path of the Grafana dashboard shipped with the examples.
pub fn dashboard_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("grafana-dashboard.json")
}

/// The dashboard, parsed.
pub fn dashboard() -> serde_json::Value {
    let text = std::fs::read_to_string(dashboard_path()).expect("read the dashboard");
    serde_json::from_str(&text).expect("the dashboard is valid JSON")
}

/// Every PromQL expression of the dashboard: `(where, expr)`, panel targets and the
/// template variables' queries.
pub fn dashboard_queries(dashboard: &serde_json::Value) -> Vec<(String, String)> {
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        let title = panel["title"].as_str().unwrap_or("?");
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("expr");
            queries.push((format!("panel {title:?}"), expr.to_owned()));
        }
    }
    for variable in dashboard["templating"]["list"]
        .as_array()
        .expect("templating")
    {
        if variable["type"] == "query" {
            let query = variable["query"]["query"].as_str().expect("variable query");
            queries.push((format!("variable {}", variable["name"]), query.to_owned()));
        }
    }
    queries
}

/// The dashboard's expression with Grafana's variables replaced, ready for Prometheus.
pub fn instantiate(expr: &str) -> String {
    expr.replace("$__rate_interval", "15s")
        .replace("$pool", ".*")
}

/// Identifiers an expression names (metric, label, function and keyword names), skipping
/// string literals, numbers, durations and Grafana variables.
pub fn identifiers(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let chars: Vec<char> = expr.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' {
            i += 1;
            while i < chars.len() && chars[i] != c {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
        } else if c == '$' || c.is_ascii_digit() {
            i += 1;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == '.')
            {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
            {
                i += 1;
            }
            out.push(chars[start..i].iter().collect());
        } else {
            i += 1;
        }
    }
    out
}

/// PromQL functions, aggregations and keywords the dashboard may use.
pub const PROMQL_WORDS: &[&str] = &[
    "sum",
    "max",
    "min",
    "avg",
    "by",
    "without",
    "rate",
    "increase",
    "irate",
    "histogram_quantile",
    "label_values",
    "and",
    "or",
    "unless",
    "on",
    "ignoring",
    "clamp_min",
];

/// `(sample names, label names)` of a Prometheus text exposition.
pub fn exposition_names(text: &str) -> (Vec<String>, Vec<String>) {
    let (mut samples, mut labels) = (Vec::new(), Vec::new());
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let name_end = line.find(['{', ' ']).expect("sample line");
        samples.push(line[..name_end].to_owned());
        if line[name_end..].starts_with('{') {
            let body = &line[name_end + 1..line.rfind('}').expect("closing brace")];
            // Label values in this exposition hold no '=' or ','.
            for pair in body.split(',') {
                labels.push(pair.split('=').next().unwrap().to_owned());
            }
        }
    }
    samples.sort();
    samples.dedup();
    labels.sort();
    labels.dedup();
    (samples, labels)
}
