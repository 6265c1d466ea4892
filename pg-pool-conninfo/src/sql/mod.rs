//! What a statement may do to a session, judged from its text before it runs: the rule
//! both drivers' adapters use to decide whether a returned connection needs a reset.
//!
//! [`sql_changes_session`] is conservative: anything not known harmless counts (see its
//! docs), so a false positive costs one reset and a missed change cannot happen for what the
//! text names. [`messages_change_session`] applies it to a buffer of frontend protocol
//! messages. [`first_word`] finds a statement's leading keyword without lexing the rest;
//! [`opens_transaction`] tells whether SQL may leave a transaction block open.

mod builtins;
mod calls;
mod effects;
mod lex;
mod txn;

pub use effects::{messages_change_session, sql_changes_session};
pub use lex::first_word;
pub use txn::opens_transaction;
