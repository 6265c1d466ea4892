//! [`Database`]: the server an example talks to.

use std::error::Error;

use pg_pool::wire::WireConfig;
use pg_pool_test_support::TestCluster;

/// The server an example runs against: `DATABASE_URL`, or a throwaway local cluster that
/// is stopped and removed when this value is dropped.
#[derive(Debug)]
pub struct Database {
    url: String,
    cluster: Option<TestCluster>,
}

impl Database {
    /// Uses `DATABASE_URL` if set, otherwise starts a throwaway PostgreSQL (a few seconds;
    /// needs the PostgreSQL server binaries, see `scripts/install-test-deps.sh`).
    ///
    /// Blocks while the cluster starts: call it before doing anything else.
    ///
    /// # Errors
    ///
    /// When the throwaway cluster cannot be started (the message says why).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let db = pg_pool_examples::Database::from_env_or_throwaway()?;
    /// println!("connecting to {}", db.url());
    /// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
    /// ```
    pub fn from_env_or_throwaway() -> Result<Self, Box<dyn Error + Send + Sync>> {
        if let Ok(url) = std::env::var("DATABASE_URL")
            && !url.trim().is_empty()
        {
            return Ok(Self {
                url: url.trim().to_owned(),
                cluster: None,
            });
        }
        eprintln!("DATABASE_URL is not set: starting a throwaway PostgreSQL...");
        let cluster = TestCluster::start_throwaway()?;
        eprintln!("throwaway PostgreSQL listening on {}", cluster.addr());
        Ok(Self {
            url: cluster.url().to_owned(),
            cluster: Some(cluster),
        })
    }

    /// The server's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The connection settings from [`Database::url`], tagged with `application_name`.
    ///
    /// # Errors
    ///
    /// When the URL does not parse.
    pub fn wire_config(
        &self,
        application_name: &str,
    ) -> Result<WireConfig, pg_pool::wire::WireError> {
        Ok(WireConfig::from_url(&self.url)?.with_application_name(application_name))
    }

    /// The throwaway cluster, when one was started.
    pub fn cluster(&self) -> Option<&TestCluster> {
        self.cluster.as_ref()
    }
}
