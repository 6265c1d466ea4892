//! The series every exporter publishes: one table, so the names, types, units and labels
//! are the same whichever backend writes them.
//!
//! The names follow OpenTelemetry's semantic conventions for database client connection
//! pools (`db.client.connection.*`). The Prometheus names are derived the way the
//! OpenTelemetry Prometheus exporter derives them: dots become underscores, a unit of `s`
//! adds `_seconds`, counters end in `_total`, and annotation units such as `{connection}`
//! add nothing. Series beyond the conventions keep the same prefix.
//!
//! | Prometheus name | type | unit | labels | meaning |
//! |---|---|---|---|---|
//! | `db_client_connection_count` | gauge | `{connection}` | pool, `db_client_connection_state` = `idle`/`used` | connections idle, and in use (held by callers, handed to a waiter, or being validated, reset or probed) |
//! | `db_client_connection_idle_max` | gauge | `{connection}` | pool | most idle connections the pool keeps: pg-pool has no separate idle cap, so this is `max_size` |
//! | `db_client_connection_idle_min` | gauge | `{connection}` | pool | idle connections the pool keeps open (`min_idle`) |
//! | `db_client_connection_max` | gauge | `{connection}` | pool | maximum size (`max_size`) |
//! | `db_client_connection_pending_requests` | gauge | `{request}` | pool | callers queued for a connection |
//! | `db_client_connection_timeouts_total` | counter | `{timeout}` | pool | checkouts that timed out |
//! | `db_client_connection_create_time_seconds` | histogram | `s` | pool | time successful connection attempts took |
//! | `db_client_connection_wait_time_seconds` | histogram | `s` | pool | time checkouts waited for a connection (zero when one was idle) |
//! | `db_client_connection_use_time_seconds` | histogram | `s` | pool | time connections were held by callers |
//! | `db_client_connection_connecting` | gauge | `{connection}` | pool | connection attempts in flight (counted in neither `idle` nor `used`) |
//! | `db_client_connection_closing` | gauge | `{connection}` | pool | destroyed connections whose close is still running |
//! | `db_client_connection_draining` | gauge | | pool | 1 while the pool is draining or closed, else 0 |
//! | `db_client_connection_creates_total` | counter | `{connection}` | pool | connections opened |
//! | `db_client_connection_connect_failures_total` | counter | `{attempt}` | pool | connection attempts that failed (driver error, timeout or create hook) |
//! | `db_client_connection_destroys_total` | counter | `{connection}` | pool, `reason` | connections destroyed, by reason (`broken`, `marked_broken`, `panicked`, `lifetime`, `idle_timeout`, `ping_failed`, `hook_rejected`, `reset_failed`, `evicted`, `closed`, `cancelled`) |
//! | `db_client_connection_checkouts_total` | counter | `{checkout}` | pool | connections handed to callers |
//! | `db_client_connection_detaches_total` | counter | `{connection}` | pool | connections taken out of the pool with `PoolGuard::detach` |
//! | `db_client_connection_leaks_total` | counter | `{checkout}` | pool | checkouts held past the leak detection threshold |
//! | `db_client_connection_server_changes_total` | counter | `{event}` | pool | times a connection showed the server changed (failover, shutdown, lost connection) and the pool evicted every connection |
//!
//! "pool" is the label `db_client_connection_pool_name` (OpenTelemetry attribute
//! `db.client.connection.pool.name`), the pool's configured `name`. The first nine rows are
//! the semantic conventions; the others are pg-pool's own.
//!
//! Histograms keep pg-pool's power-of-two microsecond buckets: upper bounds 1 µs, 2 µs,
//! 4 µs, ... 2^26 µs (about 67 s), then `+Inf`. pg-pool counts a value in the first bucket
//! whose bound is *above* it, so a value of exactly a bound (to the microsecond) lands one
//! bucket higher than Prometheus' `le` (less or equal) would put it.

use pg_pool_core::{
    DestroyReason,
    metrics::{Histogram, Metrics},
};

/// OpenTelemetry attribute naming the pool (`db.client.connection.pool.name`).
pub const POOL_NAME: &str = "db.client.connection.pool.name";
/// OpenTelemetry attribute of a connection's state (`db.client.connection.state`).
pub const STATE: &str = "db.client.connection.state";
/// Attribute of `db.client.connection.destroys`: why the connection was destroyed.
pub const REASON: &str = "reason";

/// The kind of instrument behind a series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A value that goes up and down (OpenTelemetry `UpDownCounter`, Prometheus `gauge`).
    Gauge,
    /// A monotonic count since the pool started (Prometheus `counter`, name ends `_total`).
    Counter,
    /// A distribution of durations in seconds (Prometheus `histogram`).
    Histogram,
}

/// One value of a series for one pool, as read from a [`Metrics`] snapshot.
#[derive(Debug, Clone, Copy)]
pub enum Value<'a> {
    /// A gauge reading.
    Gauge(u64),
    /// A counter reading.
    Counter(u64),
    /// A histogram (pg-pool's power-of-two microsecond buckets).
    Histogram(&'a Histogram),
}

/// One series: its names, kind, unit, labels and meaning, and how to read it from a
/// snapshot.
#[derive(Debug, Clone, Copy)]
pub struct Series {
    /// The OpenTelemetry instrument name, such as `db.client.connection.count`.
    pub otel_name: &'static str,
    /// The Prometheus family name, such as `db_client_connection_count` or
    /// `db_client_connection_wait_time_seconds` (without `_bucket`/`_sum`/`_count`).
    pub prometheus_name: &'static str,
    /// The instrument kind.
    pub kind: Kind,
    /// The OpenTelemetry unit (UCUM; `{...}` annotations count things, `s` is seconds).
    pub unit: &'static str,
    /// The attribute besides the pool name, if any: its OpenTelemetry key.
    pub label: Option<&'static str>,
    /// What the series measures (the Prometheus `# HELP` text).
    pub help: &'static str,
    /// Whether the series comes from the semantic conventions (`false`: pg-pool's own).
    pub semantic_convention: bool,
    read: fn(&Metrics, &mut Emit<'_>),
}

/// The callback of [`Series::read`]: the extra label's value (if any) and the value.
pub type Emit<'a> = dyn FnMut(Option<&'static str>, Value<'_>) + 'a;

impl Series {
    /// The series' name stem for Prometheus: the OpenTelemetry name with dots replaced,
    /// without the unit or `_total` suffix.
    pub fn prometheus_stem(&self) -> &'static str {
        let name = self.prometheus_name;
        let name = name.strip_suffix("_total").unwrap_or(name);
        name.strip_suffix("_seconds").unwrap_or(name)
    }

    /// The Prometheus label name of [`Series::label`] (dots replaced by underscores).
    pub fn prometheus_label(&self) -> Option<String> {
        self.label.map(prometheus_label)
    }

    /// Calls `emit` with each value of this series in `metrics`: once, or once per value of
    /// its extra label (the label value comes first).
    pub fn read(&self, metrics: &Metrics, emit: &mut Emit<'_>) {
        (self.read)(metrics, emit);
    }
}

/// The Prometheus spelling of an OpenTelemetry attribute key (dots become underscores).
pub fn prometheus_label(key: &str) -> String {
    key.replace('.', "_")
}

fn gauge(value: usize) -> Value<'static> {
    Value::Gauge(u64::try_from(value).unwrap_or(u64::MAX))
}

/// Every series, in exposition order.
pub const SERIES: &[Series] = &[
    Series {
        otel_name: "db.client.connection.count",
        prometheus_name: "db_client_connection_count",
        kind: Kind::Gauge,
        unit: "{connection}",
        label: Some(STATE),
        help: "Connections by state: idle, or used (held, handed to a waiter, or being validated, reset or probed).",
        semantic_convention: true,
        read: |m, emit| {
            emit(Some("idle"), gauge(m.idle));
            emit(Some("used"), gauge(m.active));
        },
    },
    Series {
        otel_name: "db.client.connection.idle.max",
        prometheus_name: "db_client_connection_idle_max",
        kind: Kind::Gauge,
        unit: "{connection}",
        label: None,
        help: "Most idle connections the pool keeps (its maximum size: there is no separate idle cap).",
        semantic_convention: true,
        read: |m, emit| emit(None, gauge(m.max_size)),
    },
    Series {
        otel_name: "db.client.connection.idle.min",
        prometheus_name: "db_client_connection_idle_min",
        kind: Kind::Gauge,
        unit: "{connection}",
        label: None,
        help: "Idle connections the pool keeps open (min_idle).",
        semantic_convention: true,
        read: |m, emit| emit(None, gauge(m.min_idle)),
    },
    Series {
        otel_name: "db.client.connection.max",
        prometheus_name: "db_client_connection_max",
        kind: Kind::Gauge,
        unit: "{connection}",
        label: None,
        help: "Maximum number of connections (max_size).",
        semantic_convention: true,
        read: |m, emit| emit(None, gauge(m.max_size)),
    },
    Series {
        otel_name: "db.client.connection.pending_requests",
        prometheus_name: "db_client_connection_pending_requests",
        kind: Kind::Gauge,
        unit: "{request}",
        label: None,
        help: "Callers queued for a connection.",
        semantic_convention: true,
        read: |m, emit| emit(None, gauge(m.waiters)),
    },
    Series {
        otel_name: "db.client.connection.timeouts",
        prometheus_name: "db_client_connection_timeouts_total",
        kind: Kind::Counter,
        unit: "{timeout}",
        label: None,
        help: "Checkouts that timed out.",
        semantic_convention: true,
        read: |m, emit| emit(None, Value::Counter(m.timeouts)),
    },
    Series {
        otel_name: "db.client.connection.create_time",
        prometheus_name: "db_client_connection_create_time_seconds",
        kind: Kind::Histogram,
        unit: "s",
        label: None,
        help: "Time successful connection attempts took.",
        semantic_convention: true,
        read: |m, emit| emit(None, Value::Histogram(&m.connect_time)),
    },
    Series {
        otel_name: "db.client.connection.wait_time",
        prometheus_name: "db_client_connection_wait_time_seconds",
        kind: Kind::Histogram,
        unit: "s",
        label: None,
        help: "Time checkouts waited for a connection (zero when one was idle).",
        semantic_convention: true,
        read: |m, emit| emit(None, Value::Histogram(&m.wait_time)),
    },
    Series {
        otel_name: "db.client.connection.use_time",
        prometheus_name: "db_client_connection_use_time_seconds",
        kind: Kind::Histogram,
        unit: "s",
        label: None,
        help: "Time connections were held by callers.",
        semantic_convention: true,
        read: |m, emit| emit(None, Value::Histogram(&m.usage_time)),
    },
    Series {
        otel_name: "db.client.connection.connecting",
        prometheus_name: "db_client_connection_connecting",
        kind: Kind::Gauge,
        unit: "{connection}",
        label: None,
        help: "Connection attempts in flight.",
        semantic_convention: false,
        read: |m, emit| emit(None, gauge(m.connecting)),
    },
    Series {
        otel_name: "db.client.connection.closing",
        prometheus_name: "db_client_connection_closing",
        kind: Kind::Gauge,
        unit: "{connection}",
        label: None,
        help: "Destroyed connections whose close is still running.",
        semantic_convention: false,
        read: |m, emit| emit(None, gauge(m.closing)),
    },
    Series {
        otel_name: "db.client.connection.draining",
        prometheus_name: "db_client_connection_draining",
        kind: Kind::Gauge,
        unit: "",
        label: None,
        help: "1 while the pool is draining or closed, else 0.",
        semantic_convention: false,
        read: |m, emit| emit(None, Value::Gauge(u64::from(m.draining))),
    },
    Series {
        otel_name: "db.client.connection.creates",
        prometheus_name: "db_client_connection_creates_total",
        kind: Kind::Counter,
        unit: "{connection}",
        label: None,
        help: "Connections opened.",
        semantic_convention: false,
        read: |m, emit| emit(None, Value::Counter(m.creates)),
    },
    Series {
        otel_name: "db.client.connection.connect_failures",
        prometheus_name: "db_client_connection_connect_failures_total",
        kind: Kind::Counter,
        unit: "{attempt}",
        label: None,
        help: "Connection attempts that failed (driver error, timeout or create hook).",
        semantic_convention: false,
        read: |m, emit| emit(None, Value::Counter(m.connect_failures)),
    },
    Series {
        otel_name: "db.client.connection.destroys",
        prometheus_name: "db_client_connection_destroys_total",
        kind: Kind::Counter,
        unit: "{connection}",
        label: Some(REASON),
        help: "Connections destroyed, by reason.",
        semantic_convention: false,
        read: |m, emit| {
            for reason in DestroyReason::ALL {
                emit(
                    Some(reason.as_str()),
                    Value::Counter(m.destroys_for(reason)),
                );
            }
        },
    },
    Series {
        otel_name: "db.client.connection.checkouts",
        prometheus_name: "db_client_connection_checkouts_total",
        kind: Kind::Counter,
        unit: "{checkout}",
        label: None,
        help: "Connections handed to callers.",
        semantic_convention: false,
        read: |m, emit| emit(None, Value::Counter(m.checkouts)),
    },
    Series {
        otel_name: "db.client.connection.detaches",
        prometheus_name: "db_client_connection_detaches_total",
        kind: Kind::Counter,
        unit: "{connection}",
        label: None,
        help: "Connections taken out of the pool with PoolGuard::detach.",
        semantic_convention: false,
        read: |m, emit| emit(None, Value::Counter(m.detaches)),
    },
    Series {
        otel_name: "db.client.connection.leaks",
        prometheus_name: "db_client_connection_leaks_total",
        kind: Kind::Counter,
        unit: "{checkout}",
        label: None,
        help: "Checkouts held past the leak detection threshold.",
        semantic_convention: false,
        read: |m, emit| emit(None, Value::Counter(m.leaks)),
    },
    Series {
        otel_name: "db.client.connection.server_changes",
        prometheus_name: "db_client_connection_server_changes_total",
        kind: Kind::Counter,
        unit: "{event}",
        label: None,
        help: "Times a connection showed the server changed and every connection was evicted.",
        semantic_convention: false,
        read: |m, emit| emit(None, Value::Counter(m.server_changes)),
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    /// The Prometheus names are the OpenTelemetry exporter's mapping of the OpenTelemetry
    /// names, not spelled independently.
    #[test]
    fn prometheus_names_follow_the_exporter_mapping() {
        for series in SERIES {
            let mut expected = series.otel_name.replace('.', "_");
            if series.unit == "s" {
                expected.push_str("_seconds");
            }
            if series.kind == Kind::Counter {
                expected.push_str("_total");
            }
            assert_eq!(series.prometheus_name, expected, "{series:?}");
            assert!(series.otel_name.starts_with("db.client.connection."));
            assert!(!series.help.is_empty());
            assert_eq!(series.kind == Kind::Histogram, series.unit == "s");
        }
        let mut names: Vec<_> = SERIES.iter().map(|s| s.otel_name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), SERIES.len(), "names are unique");
        assert_eq!(SERIES.iter().filter(|s| s.semantic_convention).count(), 9);
    }

    /// The table in this module's documentation lists every series with its type and unit,
    /// and nothing else.
    #[test]
    fn documented_table_matches() {
        let source = include_str!("series.rs");
        let rows: Vec<&str> = source
            .lines()
            .filter(|l| l.starts_with("//! | `db_client_connection_"))
            .collect();
        assert_eq!(rows.len(), SERIES.len(), "one row per series");
        for (row, series) in rows.iter().zip(SERIES) {
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            assert_eq!(cells[1], format!("`{}`", series.prometheus_name), "{row}");
            let kind = match series.kind {
                Kind::Gauge => "gauge",
                Kind::Counter => "counter",
                Kind::Histogram => "histogram",
            };
            assert_eq!(cells[2], kind, "{row}");
            let unit = if series.unit.is_empty() {
                String::new()
            } else {
                format!("`{}`", series.unit)
            };
            assert_eq!(cells[3], unit, "{row}");
            if let Some(label) = series.prometheus_label() {
                assert!(cells[4].contains(label.as_str()), "{row}");
            }
        }
    }
}
