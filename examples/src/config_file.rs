//! The `config_file` example's loading steps: a TOML file of [`ConnSettings`], resolved
//! with the environment into a pg-pool-wire config and a pool config.

use std::error::Error;
use std::path::{Path, PathBuf};

use pg_pool::ConnPoolConfig;
use pg_pool::wire::WireConfig;
use pg_pool::wire::pg_pool_conninfo::ConnSettings;

/// The sample file shipped with the examples, `examples/pool.toml`.
pub fn sample_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("pool.toml")
}

/// Reads and parses a settings file.
///
/// # Errors
///
/// When the file cannot be read or is not valid settings (unknown key, bad duration, ...);
/// the message names the file, the line and the key, and never quotes the line (which
/// could hold a password).
///
/// # Examples
///
/// ```
/// let settings = pg_pool_examples::config_file::load(&pg_pool_examples::config_file::sample_path())?;
/// assert!(settings.pool.max_size.is_some());
/// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
/// ```
pub fn load(path: &Path) -> Result<ConnSettings, Box<dyn Error + Send + Sync>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| {
        // The message and the line, not toml's quote of the line: it could hold a password.
        let line = e
            .span()
            .and_then(|span| text.get(..span.start))
            .map_or(0, |before| before.matches('\n').count() + 1);
        format!("{}:{line}: {}", path.display(), e.message().trim_end()).into()
    })
}

/// Resolves `settings` with the environment `env` (libpq's `PG*` variables and
/// `PG_POOL_*`), tags the connection with `application_name`, and returns the driver
/// config and the validated pool config it implies.
///
/// # Errors
///
/// A bad connection string or variable, a setting pg-pool-wire cannot honour (an unknown
/// `pool_*` key included), or a pool config [`ConnPoolConfig::validate`] rejects.
pub fn resolve(
    settings: &ConnSettings,
    env: impl Fn(&str) -> Option<String>,
    application_name: &str,
) -> Result<(WireConfig, ConnPoolConfig), Box<dyn Error + Send + Sync>> {
    let info = settings.conninfo_with_env(env)?;
    let wire = WireConfig::from_conninfo(info)?.with_application_name(application_name);
    let pool = wire.pool_config();
    pool.validate()?;
    Ok((wire, pool))
}
