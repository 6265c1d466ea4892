//! TLS against real servers, on tokio, async-std and smol: libpq's sslmode semantics,
//! certificate verification, client certificates, channel binding, and what the server
//! itself reports (`pg_stat_ssl`).

mod common;
mod tls_scenarios;

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use pg_pool_conninfo::{RootCerts, SslMode};
use pg_pool_core::Connector as _;
use pg_pool_tokio::Tokio;
use pg_pool_tokio_postgres::{PgConfig, PgConnector, PgError, PgPool};

macro_rules! on_runtime {
    ($module:ident, $harness:ty) => {
        mod $module {
            use crate::common::Harness;

            on_runtime!(@tests $module, $harness;
                verification::certificates_are_verified_as_libpq_does,
                modes::modes_follow_libpq,
                modes::client_certificates,
            );
        }
    };
    (@tests $module:ident, $harness:ty; $($scenario:ident :: $name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                type Rt = <$harness as Harness>::Rt;
                <$harness>::block_on(crate::tls_scenarios::$scenario::$name::<Rt>(stringify!($module)));
            }
        )*
    };
}

on_runtime!(tokio_mt, crate::common::TokioMt);
on_runtime!(async_std, crate::common::AsyncStdRt);
on_runtime!(smol, crate::common::SmolRt);

/// Settings that cannot be honoured are refused when the connector is built, and a
/// connector made with `new` reports them from the pool's build and from every attempt.
#[test]
fn unusable_settings_are_refused_up_front() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let refused = |config: PgConfig| match PgConnector::<Tokio>::try_new(
            Tokio::current_or_panic(),
            config,
        ) {
            Ok(_) => panic!("accepted"),
            Err(e) => e.to_string(),
        };
        let mut c = PgConfig::default();
        c.tls.mode = SslMode::VerifyFull;
        assert!(refused(c.clone()).contains("need sslrootcert"));
        c.tls.mode = SslMode::Require;
        c.tls.root_certs = Some(RootCerts::System);
        assert!(refused(c.clone()).contains("verify-full"));
        c.tls.root_certs = Some(RootCerts::File("/nonexistent/root.crt".into()));
        assert!(refused(c.clone()).contains("/nonexistent/root.crt"));
        c.tls.root_certs = None;
        c.tls.client_cert = Some("/nonexistent/client.crt".into());
        assert!(refused(c.clone()).contains("sslkey"));

        let connector = PgConnector::<Tokio>::new(Tokio::current_or_panic(), c);
        let attempt = connector.connect().await;
        assert!(matches!(attempt, Err(PgError::Config { .. })));
        let built = PgPool::<Tokio>::builder(connector).build().await;
        let err = built.expect_err("the pool is refused").to_string();
        assert!(err.contains("sslkey"), "{err}");
    });
}

/// The TLS handshake's cost on the connect path, on tokio: whole connects (startup and
/// SCRAM included) in plain text and over TLS to the same server, interleaved round by
/// round so machine noise hits all alike; and the handshake alone (TCP connect, TLS
/// request, handshake) against the TCP connect alone. Printed, not asserted.
#[test]
fn handshake_cost_is_measured() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let cluster = tls_scenarios::tls_cluster().await;
        let ca = cluster.tls_files().unwrap().ca_cert();
        let cases = [
            (
                "plain (disable)",
                tls_scenarios::test_user(cluster, "localhost", SslMode::Disable, None),
            ),
            (
                "TLS (require)",
                tls_scenarios::test_user(cluster, "localhost", SslMode::Require, None),
            ),
            (
                "TLS (verify-full)",
                tls_scenarios::test_user(cluster, "localhost", SslMode::VerifyFull, Some(ca)),
            ),
        ];
        const ROUNDS: usize = 30;
        let connectors: Vec<_> = cases
            .into_iter()
            .map(|(name, config)| {
                (
                    name,
                    PgConnector::<Tokio>::try_new(Tokio::current_or_panic(), config).unwrap(),
                )
            })
            .collect();
        let mut times = vec![Vec::with_capacity(ROUNDS); connectors.len()];
        for round in 0..=ROUNDS {
            for (i, (_, connector)) in connectors.iter().enumerate() {
                let start = Instant::now();
                let conn = connector.connect().await.expect("connects");
                if round > 0 {
                    times[i].push(start.elapsed());
                }
                drop(conn);
            }
        }
        for ((name, _), times) in connectors.iter().zip(&mut times) {
            report(&format!("whole connect, {name}"), times);
        }

        // The handshake alone.
        let mut settings = pg_pool_conninfo::TlsSettings::default();
        settings.mode = SslMode::VerifyFull;
        settings.root_certs = Some(RootCerts::File(ca.to_owned()));
        let config = pg_pool_conninfo::rustls::client_config(&settings)
            .unwrap()
            .unwrap();
        let connector = tokio_rustls::TlsConnector::from(config);
        let (mut tcp_times, mut tls_times) = (Vec::new(), Vec::new());
        for round in 0..=ROUNDS {
            let start = Instant::now();
            let stream = tokio::net::TcpStream::connect(cluster.addr())
                .await
                .unwrap();
            let tcp = start.elapsed();
            drop(stream);
            let start = Instant::now();
            let mut stream = tokio::net::TcpStream::connect(cluster.addr())
                .await
                .unwrap();
            stream
                .write_all(&[0, 0, 0, 8, 4, 210, 22, 47])
                .await
                .unwrap();
            let mut answer = [0u8];
            stream.read_exact(&mut answer).await.unwrap();
            assert_eq!(&answer, b"S", "the server offers TLS");
            let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
            let tls = connector.connect(name, stream).await.expect("handshake");
            if round > 0 {
                tcp_times.push(tcp);
                tls_times.push(start.elapsed());
            }
            drop(tls);
        }
        report("TCP connect alone", &mut tcp_times);
        report("TCP connect + TLS request + handshake", &mut tls_times);
    });
}

fn report(name: &str, times: &mut [Duration]) {
    times.sort();
    let n = times.len();
    assert!(n > 0, "{name}: nothing measured");
    println!(
        "{name}: median {:?}, p90 {:?}, min {:?} over {n}",
        times[n / 2],
        times[n * 9 / 10],
        times[0]
    );
}

trait CurrentOrPanic {
    fn current_or_panic() -> Self;
}

impl CurrentOrPanic for Tokio {
    fn current_or_panic() -> Self {
        <Tokio as pg_pool_core::Runtime>::current().expect("inside tokio")
    }
}

/// `sslmode=require` parsed by tokio-postgres into `PgConfig::pg` is never weakened by
/// the default `PgConfig::tls` (`prefer`).
#[test]
fn require_from_the_driver_config_is_kept() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let plain = tls_scenarios::plain_cluster().await;
        if plain.tls_files().is_some() || !plain.is_throwaway() {
            return;
        }
        let config = PgConfig::from_url(&format!("{}?sslmode=require", plain.url())).unwrap();
        let connector = PgConnector::<Tokio>::try_new(Tokio::current_or_panic(), config).unwrap();
        assert_eq!(connector.tls().unwrap().mode(), SslMode::Require);
        let err = connector
            .connect()
            .await
            .expect_err("require on a plain server");
        assert!(
            err.to_string().contains("server does not support TLS"),
            "{err}"
        );
    });
}
