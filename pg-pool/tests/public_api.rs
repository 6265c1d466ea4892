//! The facade's public surface, guarded: the names it exports are listed in
//! `public-api.txt`, and every one of them is used below, so removing or renaming one
//! fails to compile, and adding one fails this test until the list (and the changelog)
//! say so. Change the surface on purpose, never by accident.

use std::collections::BTreeSet;

/// The names `src/lib.rs` exports at the crate root: `pub use` items and `pub mod`s.
fn exported() -> BTreeSet<String> {
    let source = include_str!("../src/lib.rs");
    let mut names = BTreeSet::new();
    let mut in_use = false;
    let mut in_module = false;
    let mut buffer = String::new();
    for line in source.lines().map(str::trim) {
        if line.starts_with("//") || line.starts_with("#") {
            continue;
        }
        if in_module {
            // What a `pub mod` block re-exports is that crate's surface, not this one's.
            in_module = line != "}";
            continue;
        }
        if let Some(rest) = line.strip_prefix("pub mod ") {
            names.insert(format!(
                "mod {}",
                rest.trim_end_matches(" {").trim_end_matches(';')
            ));
            in_module = rest.ends_with('{');
            continue;
        }
        if line.starts_with("pub use ") {
            in_use = true;
            buffer.clear();
        }
        if in_use {
            buffer.push_str(line);
            buffer.push(' ');
            if line.ends_with(';') {
                in_use = false;
                let body = buffer
                    .trim_start_matches("pub use ")
                    .trim_end()
                    .trim_end_matches(';');
                let (path, list) = match body.split_once('{') {
                    Some((path, list)) => (path, list.trim_end_matches('}')),
                    None => ("", body),
                };
                for item in list.split(',').map(str::trim).filter(|i| !i.is_empty()) {
                    let name = item.rsplit("::").next().unwrap_or(item);
                    let name = if name == "self" {
                        path.trim_end_matches("::")
                            .rsplit("::")
                            .next()
                            .unwrap_or(path)
                    } else {
                        name
                    };
                    names.insert(name.to_owned());
                }
            }
        }
    }
    names
}

#[test]
fn the_surface_is_the_one_listed() {
    let listed: BTreeSet<String> = include_str!("../public-api.txt")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect();
    let exported = exported();
    let added: Vec<_> = exported.difference(&listed).collect();
    let removed: Vec<_> = listed.difference(&exported).collect();
    assert!(
        added.is_empty() && removed.is_empty(),
        "the facade's surface changed: added {added:?}, removed {removed:?}; update public-api.txt and CHANGELOG.md"
    );
}

/// Every listed name, used: a rename or removal in a crate behind the facade fails here.
#[allow(dead_code, unused_imports)]
mod every_name_resolves {
    #[cfg(feature = "metrics")]
    use pg_pool::metrics::Pools;
    #[cfg(feature = "tokio-postgres")]
    use pg_pool::postgres::{PgConfig, PgConnection, PgConnector};
    #[cfg(feature = "tokio-postgres")]
    use pg_pool::postgres::{PgSharedGuard, SharedClient};
    #[cfg(feature = "wire")]
    use pg_pool::wire::{WireConfig, WireConnector, WirePoolable};
    use pg_pool::{
        BoxFuture, BuildError, Builder, Checkout, ClusterPool, ConfigError, ConnPoolConfig,
        Connect, ConnectError, ConnectTarget, Connector, DestroyReason, DrainReport, Fairness,
        HeldCheckout, HookError, HookResult, IdleOrder, LifecycleHooks, Metrics, Phase, PoolError,
        Poolable, ReadPolicy, ReplicaLag, Role, Runtime, TimeoutDetails, pg_pool_core,
    };
    #[cfg(feature = "tokio")]
    use pg_pool::{
        ConnPool, OwnedCheckout, PoolGuard, SharedGuard, Tokio, WeakPool, pg_pool_tokio,
    };
    use pg_pool::{
        DEFAULT_SHARED_MAX_IN_FLIGHT, SHARED_MAX_IN_FLIGHT_LIMIT, Shareable, SharedStats,
    };

    fn seed_example_compiles<T: Connect>(config: ConnPoolConfig, hooks: LifecycleHooks<T>) {
        #[cfg(feature = "tokio")]
        drop(pg_pool::ConnPool::<T>::new(config, hooks));
        #[cfg(not(feature = "tokio"))]
        let _ = (config, hooks);
    }
}
