//! Everything the process logs through `tracing`, captured as text, for tests that prove
//! what never reaches a log (passwords).

use std::fmt::{self, Debug};
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;

/// Captures every event and span of the process at `TRACE` level, each rendered as one
/// line of text (target, name, and every field with `Debug` and `Display`).
///
/// Install it once per test binary, before anything logs: it becomes the global default
/// subscriber, so events from every thread and task are seen.
#[derive(Clone, Default)]
pub struct TraceCapture {
    lines: Arc<Mutex<Vec<String>>>,
}

impl fmt::Debug for TraceCapture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TraceCapture")
            .field("lines", &self.lines().len())
            .finish()
    }
}

impl TraceCapture {
    /// Installs the capture as the global default subscriber.
    ///
    /// # Panics
    ///
    /// If a global subscriber is already installed.
    pub fn install_global() -> Self {
        let capture = Self::default();
        tracing::subscriber::set_global_default(
            tracing_subscriber::registry().with(capture.clone()),
        )
        .expect("no other global subscriber");
        capture
    }

    /// Every line captured so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn push(&self, line: String) {
        self.lines
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(line);
    }
}

/// An error as a log or a user could see it: its `Display` and `Debug`, and those of every
/// error in its source chain, on one line.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = format!("{error} / {error:?}");
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(" / {cause} / {cause:?}"));
        source = cause.source();
    }
    text
}

struct Text(String);

impl Visit for Text {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        self.0.push_str(&format!(" {}={value:?}", field.name()));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.push_str(&format!(" {}={value}", field.name()));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0
            .push_str(&format!(" {}={value} / {value:?}", field.name()));
        let mut source = value.source();
        while let Some(cause) = source {
            self.0.push_str(&format!(" caused by {cause} / {cause:?}"));
            source = cause.source();
        }
    }
}

impl<S: Subscriber> Layer<S> for TraceCapture {
    fn on_new_span(&self, attrs: &Attributes<'_>, _: &Id, _: Context<'_, S>) {
        let meta = attrs.metadata();
        let mut text = Text(format!("span {} {}", meta.target(), meta.name()));
        attrs.record(&mut text);
        self.push(text.0);
    }

    fn on_record(&self, _: &Id, values: &Record<'_>, _: Context<'_, S>) {
        let mut text = Text("record".into());
        values.record(&mut text);
        self.push(text.0);
    }

    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let meta = event.metadata();
        let mut text = Text(format!("event {} {}", meta.level(), meta.target()));
        event.record(&mut text);
        self.push(text.0);
    }
}
