//! From `tracing` to the audit log: every event logged at the target [`TARGET`] becomes an
//! entry, once the process has started its recorder ([`start`]). Its fields (less `event`,
//! which names the entry) are the entry's fields, with the id of the request it was logged
//! in (`request_id`, from the enclosing span named [`REQUEST_SPAN`]).
//!
//! The layer is installed with [`filter`], which `RUST_LOG` does not touch: an audit event is
//! recorded whatever the log levels say.

use std::fmt::Write as _;
use std::sync::{Arc, OnceLock};

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Metadata, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use super::{AuditStore, Recorder};
use crate::StoreError;

/// The target of the events that are audit entries.
pub const TARGET: &str = "audit";

/// The name of the span a server opens per request; its field `id` is the request's id.
pub const REQUEST_SPAN: &str = "request";

/// The process's recorder, once started.
static RECORDER: OnceLock<Recorder> = OnceLock::new();

/// Starts recording audit events into `store` as replica `node`, on the current tokio
/// runtime (once per process; later calls keep the first recorder).
pub fn start(store: Arc<dyn AuditStore>, node: String) {
    let _ = RECORDER.get_or_init(|| Recorder::start(store, node));
}

/// Returns once every audit event of this process so far is in the audit log (before it
/// exits); at once when no recorder was started.
pub async fn flush() -> Result<(), StoreError> {
    match RECORDER.get() {
        Some(recorder) => recorder.flush().await,
        None => Ok(()),
    }
}

/// What the layer sees: audit events, and request spans for their ids.
pub fn filter(meta: &Metadata<'_>) -> bool {
    (meta.is_event() && meta.target() == TARGET) || (meta.is_span() && meta.name() == REQUEST_SPAN)
}

/// The layer that turns audit events into entries (install it with [`filter`]).
pub struct AuditLayer;

/// A request span's id, kept for the audit events logged inside it.
struct RequestId(String);

impl Visit for RequestId {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "id" {
            value.clone_into(&mut self.0);
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "id" {
            self.0 = format!("{value:?}");
        }
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for AuditLayer {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut request = RequestId(String::new());
        attrs.record(&mut request);
        if let Some(span) = ctx.span(id)
            && !request.0.is_empty()
        {
            span.extensions_mut().insert(request);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let Some(recorder) = RECORDER.get() else { return };
        let mut fields = FieldsJson::default();
        event.record(&mut fields);
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(RequestId(id)) = span.extensions().get::<RequestId>() {
                    fields.string("request_id", format_args!("{id}"));
                    break;
                }
            }
        }
        let name = fields.name.take().unwrap_or_else(|| "unnamed".to_owned());
        recorder.submit(recorder.event(name, fields.finish()));
    }
}

/// An event's fields (less `event`, its name) written as the text of a JSON object while they
/// are visited: an entry costs one string, not a map of them.
#[derive(Default)]
struct FieldsJson {
    name: Option<String>,
    json: String,
}

impl FieldsJson {
    fn key(&mut self, key: &str) {
        self.json.push(if self.json.is_empty() { '{' } else { ',' });
        self.string_value(format_args!("{key}"));
        self.json.push(':');
    }

    fn string_value(&mut self, value: std::fmt::Arguments<'_>) {
        self.json.push('"');
        let _ = JsonEscaped(&mut self.json).write_fmt(value);
        self.json.push('"');
    }

    fn string(&mut self, key: &str, value: std::fmt::Arguments<'_>) {
        self.key(key);
        self.string_value(value);
    }

    fn number(&mut self, key: &str, value: impl std::fmt::Display) {
        self.key(key);
        let _ = write!(self.json, "{value}");
    }

    fn finish(mut self) -> String {
        if self.json.is_empty() {
            self.json.push('{');
        }
        self.json.push('}');
        self.json
    }
}

impl Visit for FieldsJson {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "event" => self.name = Some(value.to_owned()),
            key => self.string(key, format_args!("{value}")),
        }
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.number(field.name(), value);
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.number(field.name(), value);
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        match value.is_finite() {
            true => self.number(field.name(), value),
            false => self.number(field.name(), "null"),
        }
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.number(field.name(), value);
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.string(field.name(), format_args!("{value}"));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "event" => self.name = Some(format!("{value:?}")),
            key => self.string(key, format_args!("{value:?}")),
        }
    }
}

/// Writes text into a JSON string literal: quotes, backslashes and control characters escaped.
struct JsonEscaped<'a>(&'a mut String);

impl std::fmt::Write for JsonEscaped<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        for c in s.chars() {
            match c {
                '"' => self.0.push_str("\\\""),
                '\\' => self.0.push_str("\\\\"),
                '\n' => self.0.push_str("\\n"),
                '\r' => self.0.push_str("\\r"),
                '\t' => self.0.push_str("\\t"),
                c if c < ' ' => write!(self.0, "\\u{:04x}", c as u32)?,
                c => self.0.push(c),
            }
        }
        Ok(())
    }
}

/// Collects an event's or a span's fields as JSON values (`Debug` ones as their text).
pub struct JsonFields<'a>(pub &'a mut Map<String, Value>);

impl Visit for JsonFields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0.insert(field.name().to_owned(), Value::from(value.to_string()));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), Value::from(format!("{value:?}")));
    }
}
