//! The keys and values a connection string (and the environment) gave, before they are
//! checked and typed.

use std::collections::HashSet;

/// Where a value came from: decides how errors name it and whether they may show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// A URL's user-info, host list or path, or any part of a URL that looks malformed
    /// around its user-info: values are never shown.
    UrlHidden,
    /// A URL's query parameters.
    UrlQuery,
    /// A `key=value` string.
    KeyValue,
    /// An environment variable.
    Env(&'static str),
    /// A setting made in code (validation of a built [`ConnInfo`](crate::ConnInfo)).
    Code,
    /// The `pool` table of a deserialized settings document.
    #[cfg_attr(not(feature = "serde"), allow(dead_code))]
    PoolTable,
}

impl Origin {
    /// Whether error messages may show values from here (never for secrets, checked
    /// separately).
    pub(crate) fn may_show(self) -> bool {
        !matches!(self, Origin::UrlHidden)
    }

    /// How an error names the origin next to the key: empty, or the variable.
    pub(crate) fn label(self) -> String {
        match self {
            Origin::Env(var) => format!("environment variable {var}"),
            Origin::PoolTable => "the settings' `pool` table".to_owned(),
            Origin::UrlHidden | Origin::UrlQuery | Origin::KeyValue | Origin::Code => String::new(),
        }
    }
}

/// A value: text, or a list already split by the URL grammar (hosts and ports of a URL's
/// authority).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    Text(String),
    List(Vec<String>),
}

/// One key with its value.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) key: String,
    pub(crate) value: Value,
    pub(crate) origin: Origin,
    /// The entry directly follows a `password` value in the string: an unknown key here is
    /// likely a fragment of a password with an unquoted space or unencoded `&`.
    pub(crate) after_password: bool,
}

/// Every key given, in order; a key given again replaces the earlier value (as libpq).
#[derive(Debug, Clone, Default)]
pub(crate) struct Raw {
    entries: Vec<Entry>,
    keys: HashSet<String>,
}

impl Raw {
    /// Adds `entry`; an earlier value of its key is dropped by [`Raw::into_entries`]
    /// (linear time however many keys a string repeats).
    pub(crate) fn set(&mut self, entry: Entry) {
        self.keys.insert(entry.key.clone());
        self.entries.push(entry);
    }

    pub(crate) fn has(&self, key: &str) -> bool {
        self.keys.contains(key)
    }

    /// The entries, each key once with its last value, in the order of those last values.
    pub(crate) fn into_entries(self) -> Vec<Entry> {
        let mut seen = HashSet::new();
        let mut kept: Vec<Entry> = self
            .entries
            .into_iter()
            .rev()
            .filter(|e| seen.insert(e.key.clone()))
            .collect();
        kept.reverse();
        kept
    }
}
