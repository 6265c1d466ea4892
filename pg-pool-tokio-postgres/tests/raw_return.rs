//! A session used through the raw `Client` (`Deref`) comes back proven idle by a marker the
//! protocol tap sees written, not by a server round trip (`raw_scenarios/`), on tokio
//! (multi-thread), async-std and smol.

mod common;
mod raw_scenarios;
mod tracked;

macro_rules! on_runtime {
    ($module:ident, $harness:ty) => {
        mod $module {
            use crate::common::Harness;

            on_runtime!(@tests $module, $harness;
                clean_raw_use_waits_for_no_answer,
                raw_changes_are_reset,
                forged_markers_do_not_fool_the_return,
                raw_copy_and_held_streams,
                raw_dead_session_is_destroyed,
                cancelled_returns_destroy_or_prove,
            );
        }
    };
    (@tests $module:ident, $harness:ty; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                type Rt = <$harness as Harness>::Rt;
                <$harness>::block_on(crate::raw_scenarios::$name::<Rt>(stringify!($module)));
            }
        )*
    };
}

on_runtime!(tokio_mt, crate::common::TokioMt);
on_runtime!(async_std, crate::common::AsyncStdRt);
on_runtime!(smol, crate::common::SmolRt);
