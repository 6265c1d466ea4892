//! The conformance suite every pg-pool runtime adapter runs, written once against
//! [`pg_pool_core::Runtime`], with a mock connection whose every step has a gate.
//!
//! An adapter runs it with [`conformance_suite!`], naming a [`Harness`] that can start its
//! runtime:
//!
//! ```ignore
//! pg_pool_conformance::conformance_suite!(MyHarness);
//! ```

pub mod harness;
pub mod mock;
pub mod scenarios;

pub use harness::{Harness, MockPool, check_invariants, mock_pool, settle, test_config};
pub use mock::{Check, Control, Gate, MockConn, MockError, MockHandle, Step};

/// Expands to one `#[test]` per scenario, each run on a fresh runtime of `$harness`.
#[macro_export]
macro_rules! conformance_suite {
    ($harness:ty) => {
        $crate::conformance_suite!(@tests $harness;
            checkout::reuses_idle_connection,
            checkout::respects_max_size,
            checkout::try_get_takes_idle_only,
            checkout::guard_operations,
            checkout::broken_connection_is_destroyed,
            checkout::panicking_holder_destroys_connection,
            checkout::lifetime_enforced_on_checkin,
            checkout::idle_order,
            checkout::resize_down_and_up,
            checkout::retain_and_evict_all,
            checkout::config_errors,
            checkout::owned_checkouts,
            checkout::weak_handles,
            cluster::cluster_routes_reads_and_writes,
            cluster::lagging_replica_gets_no_reads,
            cancellation::every_gate_every_drop_point,
            cancellation::abandoned_connect_goes_idle,
            cancellation::abandoned_connect_serves_next_waiter,
            cancellation::granted_then_dropped_waiter_passes_it_on,
            cancellation::dropped_during_checkout_hook,
            cancellation::abandoned_waiters_leave_no_trace,
            fairness::fifo_order_of_service,
            fairness::no_task_starves,
            fairness::newcomer_never_barges,
            fairness::checkout_loop_yields,
            bounded::bounded_newcomer_overtakes_within_bound,
            bounded::bounded_strict_past_bound,
            bounded::bounded_dropped_nudged_waiter_passes_it_on,
            bounded::bounded_never_overtaken_past_bound,
            bounded::bounded_no_task_starves,
            bounded::bounded_connect_error_spares_the_nudged_head,
            hardening::retain_panic_keeps_accounting,
            hardening::synchronous_panics_are_contained,
            hardening::evict_all_beats_a_pending_grant,
            hardening::cancelled_validation_is_counted_cancelled,
            hardening::create_hook_rejection_is_counted,
            hardening::permanent_connect_error_fails_every_waiter,
            hardening::mass_cancellation_is_cheap,
            hardening::drain_cancels_connects_in_flight,
            hardening::extreme_configs_work,
            hardening::set_min_idle_at_run_time,
            hardening::server_change_evicts_everything,
            hooks::hook_order,
            hooks::rejection_moves_on,
            hooks::panicking_hooks,
            hooks::async_checkin_keeps_accounting,
            timeouts::one_deadline_across_phases,
            timeouts::connect_never_finishes,
            timeouts::connect_error_reported_at_once,
            timeouts::connect_timeout_enforced,
            timeouts::no_reconnect_storm,
            timeouts::many_waiters_time_out_on_time,
            timeouts::timeout_explains_itself,
            maintenance::idle_timeout_keeps_min_idle,
            maintenance::lifetime_jitter_spreads_expiry,
            maintenance::min_idle_refill,
            maintenance::probe_evicts_failures,
            maintenance::probe_does_not_inflate_min_idle,
            maintenance::background_tasks_end,
            maintenance::leak_detection_and_no_idle_tasks,
            drain::drain_waits_for_checked_out,
            drain::drain_with_deadline,
            metrics::metrics_match_workload,
            shared::shared_least_loaded_and_limit,
            shared::shared_limits_shared_with_exclusive,
            shared::shared_broken_connection_leaves,
            shared::shared_timeout,
            shared::shared_drain,
            shared::shared_cancellation,
            shared::shared_evict_all_retires,
            shared::shared_limit_config,
            shared_load::shared_many_tasks,
            shared_load::shared_does_not_starve_exclusive,
            sync_panics::sync_check_panics_on_return,
            sync_panics::sync_check_panics_on_checkout,
            sync_panics::shared_sync_check_panics,
            sync_panics::shared_join_check_panics,
            sync_panics::permanent_error_check_panic_keeps_capacity,
            hook_panics::hook_panics_on_new_paths,
        );
    };
    (@tests $harness:ty; $($module:ident :: $name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                type Rt = <$harness as $crate::Harness>::Rt;
                <$harness as $crate::Harness>::block_on($crate::scenarios::$module::$name::<Rt>());
            }
        )*
    };
}
