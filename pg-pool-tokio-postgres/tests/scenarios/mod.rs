//! Real-server scenarios written once against `R: PgRuntime`, run on every runtime by
//! `tests/on_every_runtime.rs`. Each takes a `tag` naming the runtime, so the sessions of
//! concurrent tests on the shared cluster are told apart by `application_name`.

pub(crate) mod drain;
pub(crate) mod failures;
pub(crate) mod in_flight;
pub(crate) mod kill;
pub(crate) mod restart;
pub(crate) mod session;
