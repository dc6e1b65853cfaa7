//! The log subscriber: the human format by default, or one JSON object per line with
//! `HAWIYA_LOG_FORMAT=json` (for a log collector). Levels come from `RUST_LOG`.
//!
//! A JSON line carries the time (RFC 3339, UTC), level, target, message, the event's
//! fields, the spans it was logged in with their fields, and — for an event logged while a
//! request is served — that request's id (`request_id`, the `x-request-id` sent back).
//! What is logged is decided where it is logged: secrets never enter a field or a message
//! (STYLE.md 6), and this format adds nothing a request carried beyond what the spans hold
//! (the request span records the method and path, never the query).
//!
//! Every event logged at the target `audit` (logins, consents, tokens, smart-ID and signing
//! sessions, …) is also an entry of the audit log in the durable store (`store::audit`),
//! once a server has started its recorder ([`start_audit`]): whatever `RUST_LOG` says, and in
//! either format. Its fields (less `event`, which names the entry) and the request id are the
//! entry's fields.

use std::io::Write;

use serde_json::{Map, Value};
use store::audit::layer::{self as audit, JsonFields};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, filter};

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// tracing's human-readable lines (the default).
    Human,
    /// One JSON object per line.
    Json,
}

impl LogFormat {
    /// The format `HAWIYA_LOG_FORMAT` names: `json`, or `human` / unset for the default.
    pub fn from_env() -> Result<Self, String> {
        match std::env::var("HAWIYA_LOG_FORMAT") {
            Err(std::env::VarError::NotPresent) => Self::parse(None),
            Ok(v) => Self::parse(Some(&v)),
            Err(std::env::VarError::NotUnicode(_)) => Err("HAWIYA_LOG_FORMAT: not UTF-8: use json or human".into()),
        }
    }

    fn parse(value: Option<&str>) -> Result<Self, String> {
        match value {
            None | Some("" | "human") => Ok(LogFormat::Human),
            Some("json") => Ok(LogFormat::Json),
            Some(v) => Err(format!("HAWIYA_LOG_FORMAT: unknown log format {v:?}: use json or human")),
        }
    }
}

/// Installs the subscriber for the process: `format`, at `RUST_LOG`'s levels or else
/// `default_level`, to stderr; and the audit log's layer, which `RUST_LOG` does not filter.
pub fn install(format: LogFormat, default_level: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    // Audit events, and the request spans whose ids they carry.
    let audit = audit::AuditLayer.with_filter(filter::filter_fn(audit::filter));
    let registry = tracing_subscriber::registry().with(audit);
    match format {
        LogFormat::Human => registry.with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_filter(filter)).init(),
        LogFormat::Json => registry.with(JsonLines.with_filter(filter)).init(),
    }
}

/// Starts recording audit events into `store` (once per process; later calls keep the
/// first recorder). The replica's name is its host name and process id.
pub fn start_audit(store: std::sync::Arc<dyn store::audit::AuditStore>) {
    if cfg!(feature = "benchmark-without-audit-log") {
        tracing::error!("this build records no audit entries: it is for measuring what they cost, never for production");
        return;
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_owned()).unwrap_or_else(|_| "hawiya".into());
    audit::start(store, format!("{host}:{}", std::process::id()));
}

/// Waits until every audit event of this process is in the audit log (before it exits).
pub async fn flush_audit() {
    match tokio::time::timeout(std::time::Duration::from_secs(10), audit::flush()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => eprintln!("warning: audit events of this command may be missing from the audit log: {e}"),
        Err(_) => eprintln!("warning: audit events of this command are missing from the audit log: it was not writable for 10 s"),
    }
}

/// The fields of a span, kept in its extensions for the events logged inside it.
struct SpanFields(Map<String, Value>);

/// The JSON-lines layer.
struct JsonLines;

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for JsonLines {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Map::new();
        attrs.record(&mut JsonFields(&mut fields));
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(SpanFields(fields));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id)
            && let Some(SpanFields(fields)) = span.extensions_mut().get_mut::<SpanFields>()
        {
            values.record(&mut JsonFields(fields));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = Map::new();
        event.record(&mut JsonFields(&mut fields));
        let message = fields.remove("message").unwrap_or(Value::from(""));
        let meta = event.metadata();
        let mut line = Map::new();
        let now = time::OffsetDateTime::now_utc();
        line.insert("timestamp".into(), Value::from(now.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()));
        line.insert("level".into(), Value::from(meta.level().as_str()));
        line.insert("target".into(), Value::from(meta.target()));
        line.insert("message".into(), message);
        let mut spans = Vec::new();
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                let extensions = span.extensions();
                let mut described = Map::new();
                described.insert("name".into(), Value::from(span.name()));
                if let Some(SpanFields(fields)) = extensions.get::<SpanFields>() {
                    if span.name() == audit::REQUEST_SPAN
                        && let Some(id) = fields.get("id")
                    {
                        line.insert("request_id".into(), id.clone());
                    }
                    described.extend(fields.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
                spans.push(Value::Object(described));
            }
        }
        line.insert("fields".into(), Value::Object(fields));
        if !spans.is_empty() {
            line.insert("spans".into(), Value::Array(spans));
        }
        let mut text = Value::Object(line).to_string();
        text.push('\n');
        // One write per line, so that lines of concurrent requests never interleave.
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_format_is_json_human_or_a_startup_error() {
        // The value, not the variable: setting variables is unsafe in a threaded test run.
        assert_eq!(LogFormat::parse(None), Ok(LogFormat::Human));
        assert_eq!(LogFormat::parse(Some("json")), Ok(LogFormat::Json));
        assert_eq!(LogFormat::parse(Some("human")), Ok(LogFormat::Human));
        assert_eq!(LogFormat::parse(Some("JSON")), Err("HAWIYA_LOG_FORMAT: unknown log format \"JSON\": use json or human".to_owned()));
    }
}
