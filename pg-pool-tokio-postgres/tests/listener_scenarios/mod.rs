//! `PgListener` scenarios, written once against `R: PgRuntime` and run on every runtime by
//! `tests/listener.rs`. Each takes a `tag` naming the runtime: channel names and
//! `application_name`s carry it, so concurrent tests on the shared cluster never see each
//! other's notifications or sessions.

pub(crate) mod delivery;
pub(crate) mod names;
pub(crate) mod reconnect;
pub(crate) mod stall;
pub(crate) mod support;
