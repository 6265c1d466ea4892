//! The real-server scenarios on tokio (multi-thread), async-std and smol: each scenario is
//! written once over `R: PgRuntime` (in `scenarios/`) and expanded here per runtime.

mod common;
mod scenarios;

/// One `#[test]` per scenario, each on a fresh runtime of `$harness`.
macro_rules! on_runtime {
    ($module:ident, $harness:ty) => {
        mod $module {
            use crate::common::Harness;

            on_runtime!(@tests $module, $harness;
                session::state_never_leaks,
                kill::terminated_backends_never_handed_out,
                restart::serves_again_after_restart,
                failures::wrong_password_fails_at_once,
                failures::blackhole_times_out,
                drain::no_backend_remains,
                in_flight::abandoned_query_is_cancelled,
                in_flight::stalled_connection_not_handed_out,
                in_flight::dead_session_destroyed_on_return,
                in_flight::generic_client_code_runs,
                in_flight::failed_pipelined_reset_destroys,
            );
        }
    };
    (@tests $module:ident, $harness:ty; $($scenario:ident :: $name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                type Rt = <$harness as Harness>::Rt;
                <$harness>::block_on(crate::scenarios::$scenario::$name::<Rt>(stringify!($module)));
            }
        )*
    };
}

on_runtime!(tokio_mt, crate::common::TokioMt);
on_runtime!(async_std, crate::common::AsyncStdRt);
on_runtime!(smol, crate::common::SmolRt);
