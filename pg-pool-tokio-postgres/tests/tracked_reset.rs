//! The tracked reset on tokio (multi-thread), async-std and smol: sessions go back without
//! a reset unless the protocol showed them change (`tracked/`).

mod common;
mod tracked;

macro_rules! on_runtime {
    ($module:ident, $harness:ty) => {
        mod $module {
            use crate::common::Harness;

            on_runtime!(@tests $module, $harness;
                clean_use_is_not_reset,
                changes_are_reset,
                discarded_statements_leave_the_cache,
                one_row_calls,
            );
        }
    };
    (@tests $module:ident, $harness:ty; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                type Rt = <$harness as Harness>::Rt;
                <$harness>::block_on(crate::tracked::$name::<Rt>(stringify!($module)));
            }
        )*
    };
}

on_runtime!(tokio_mt, crate::common::TokioMt);
on_runtime!(async_std, crate::common::AsyncStdRt);
on_runtime!(smol, crate::common::SmolRt);
