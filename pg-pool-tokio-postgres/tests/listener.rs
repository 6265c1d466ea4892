//! `PgListener` against a real server, on tokio (multi-thread), async-std and smol: each
//! scenario is written once over `R: PgRuntime` (in `listener_scenarios/`) and expanded
//! here per runtime.

mod common;
mod listener_scenarios;

/// One `#[test]` per scenario, each on a fresh runtime of `$harness`.
macro_rules! on_runtime {
    ($module:ident, $harness:ty) => {
        mod $module {
            use crate::common::Harness;

            on_runtime!(@tests $module, $harness;
                delivery::order_and_payloads,
                delivery::several_channels_and_unlisten,
                delivery::slow_consumer_loses_nothing,
                delivery::recv_is_cancel_safe,
                delivery::dropping_closes_the_session,
                delivery::beside_a_pool_outside_its_capacity,
                names::quoted_names_round_trip,
                names::injection_is_just_a_channel,
                names::bad_names_are_refused,
                reconnect::reconnects_after_terminate,
                reconnect::listen_while_down_applies_on_reconnect,
                reconnect::silent_death_is_detected,
                reconnect::wrong_password_is_reported_at_once,
                reconnect::permanent_error_ends_the_listener,
                stall::stalled_session_is_closed_at_once,
            );
        }
    };
    (@tests $module:ident, $harness:ty; $($scenario:ident :: $name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                type Rt = <$harness as Harness>::Rt;
                // Boxed: the scenario futures are large, and async-std's block_on moves its
                // future through several frames of the test thread's stack.
                <$harness>::block_on(Box::pin(crate::listener_scenarios::$scenario::$name::<Rt>(stringify!($module))));
            }
        )*
    };
}

on_runtime!(tokio_mt, crate::common::TokioMt);
on_runtime!(async_std, crate::common::AsyncStdRt);
on_runtime!(smol, crate::common::SmolRt);
