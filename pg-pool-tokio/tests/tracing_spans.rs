//! What an on-call engineer sees in a tracing backend: a `pg_pool.get` span per checkout
//! with its outcome and wait, spans around connect, reset, ping and close, and a warning
//! with the pool's state when a checkout times out.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pg_pool_conformance::{Control, MockConn};
use pg_pool_core::{ConnPoolConfig, LifecycleHooks, Runtime};
use pg_pool_tokio::{ConnPool, Tokio};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;

/// A span or event as recorded: its name and fields.
#[derive(Debug, Clone, Default)]
struct Seen {
    name: String,
    fields: BTreeMap<String, String>,
}

#[derive(Clone, Default)]
struct Capture {
    spans: Arc<Mutex<BTreeMap<u64, Seen>>>,
    events: Arc<Mutex<Vec<Seen>>>,
}

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl<S: Subscriber> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _: Context<'_, S>) {
        let mut seen = Seen {
            name: attrs.metadata().name().to_owned(),
            ..Seen::default()
        };
        attrs.record(&mut Fields(&mut seen.fields));
        self.spans.lock().unwrap().insert(id.into_u64(), seen);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _: Context<'_, S>) {
        if let Some(seen) = self.spans.lock().unwrap().get_mut(&id.into_u64()) {
            values.record(&mut Fields(&mut seen.fields));
        }
    }

    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let mut seen = Seen {
            name: event.metadata().name().to_owned(),
            ..Seen::default()
        };
        event.record(&mut Fields(&mut seen.fields));
        self.events.lock().unwrap().push(seen);
    }
}

#[test]
fn spans_and_timeout_warnings() {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::registry().with(capture.clone());
    tracing::subscriber::with_default(subscriber, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let runtime = Tokio::current().unwrap();
            let sleeper = runtime.clone();
            let control = Control::new(move |d| sleeper.sleep(d));
            let mut config = ConnPoolConfig::default();
            config.name = "orders".into();
            config.max_size = 1;
            config.checkout_timeout = Duration::from_millis(100);
            config.test_on_checkout_after = Duration::ZERO;
            let pool = ConnPool::<MockConn>::builder(control.connector())
                .config(config)
                .hooks(LifecycleHooks::default())
                .runtime(runtime)
                .build()
                .await
                .unwrap();
            let mut guard = pool.get().await.unwrap();
            assert!(pool.get().await.is_err(), "the pool of one is taken");
            guard.dirty = true;
            drop(guard);
            tokio::time::sleep(Duration::from_millis(50)).await;
            let mut guard = pool.get().await.unwrap();
            guard.broken = true;
            drop(guard);
            tokio::time::sleep(Duration::from_millis(50)).await;
            pool.drain().await;
        });
    });
    let spans: Vec<Seen> = capture.spans.lock().unwrap().values().cloned().collect();
    let named = |name: &str| spans.iter().filter(|s| s.name == name).collect::<Vec<_>>();
    for span in &spans {
        println!("{span:?}");
    }
    let gets = named("pg_pool.get");
    assert_eq!(gets.len(), 3, "{gets:?}");
    assert!(
        gets.iter().all(|g| g.fields["pool"] == "orders"),
        "{gets:?}"
    );
    let outcomes: Vec<&str> = gets.iter().map(|g| g.fields["outcome"].as_str()).collect();
    assert_eq!(outcomes, ["ok", "timeout", "ok"]);
    assert!(
        gets.iter().all(|g| g.fields.contains_key("waited")),
        "{gets:?}"
    );
    assert!(!named("pg_pool.connect").is_empty(), "a connect span");
    assert_eq!(
        named("pg_pool.reset").len(),
        1,
        "the dirty return was reset"
    );
    assert_eq!(
        named("pg_pool.ping").len(),
        2,
        "both successful checkouts pinged"
    );
    let closes = named("pg_pool.close");
    assert_eq!(closes.len(), 1, "{closes:?}");
    assert_eq!(closes[0].fields["reason"], "broken");

    let events = capture.events.lock().unwrap();
    let warning = events
        .iter()
        .find(|e| {
            e.fields
                .get("message")
                .is_some_and(|m| m == "checkout timed out")
        })
        .expect("a warning for the timeout");
    println!("{warning:?}");
    assert_eq!(warning.fields["pool"], "orders");
    assert_eq!(warning.fields["active"], "1");
    assert_eq!(warning.fields["max_size"], "1");
    assert_eq!(warning.fields["waiters"], "0");
    assert!(warning.fields["phase"].contains("waiting"), "{warning:?}");
}
