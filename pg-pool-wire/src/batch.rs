//! Requests of many shared users sent to pg-wired in batches.
//!
//! pg-wired's writer task writes whatever requests are queued when it runs. Sent one by one
//! from the users' own tasks, each request wakes the writer, and tokio runs a task just woken
//! right after the current one, so the writer runs between any two users: one `write` per
//! statement on the client, and as many reads on the server. Here a user's request goes to
//! an outbox instead; the first request of a batch spawns a task that yields once (so that
//! the other users ready to run add theirs) and then queues all the outbox's
//! requests in that one poll (each [`AsyncConn::submit`] queues its request when first
//! polled), which pg-wired's writer then sends with one `write`.
//!
//! The task owns the connection (an `Arc`) and reads every response of its batch, whatever
//! happens to the users who sent them: a user that stops waiting loses only its own answer.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::task::Poll;

use bytes::BytesMut;
use pg_wired::protocol::frontend::encode_message;
use pg_wired::protocol::types::{FrontendMsg, RawRow};
use pg_wired::{AsyncConn, FormatCode, PgWireError, PipelineResponse, ResponseCollector};
use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// The most requests one batch task sends: it polls each unanswered one whenever it wakes,
/// so a batch stays small (the default per-connection limit of shared users); more waiting
/// go to another task at once.
const BATCH_MAX: usize = 32;

/// Where a response goes.
type Reply = oneshot::Sender<Result<PipelineResponse, PgWireError>>;

/// A connection's outbox of requests not yet handed to pg-wired.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    state: Mutex<Pending>,
}

#[derive(Default)]
struct Pending {
    /// Requests waiting for the batch task, in the order they came.
    items: Vec<(BytesMut, Reply)>,
    /// A batch task is spawned and has not yet taken `items`.
    scheduled: bool,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("items", &self.items.len())
            .field("scheduled", &self.scheduled)
            .finish()
    }
}

impl Outbox {
    /// Sends `messages` (a whole request: its last message a `Sync`) in the next batch and
    /// collects its rows.
    ///
    /// Cancel safety: dropped at any point, the request is still sent (if it was put in the
    /// outbox) and its response read and discarded by the batch task.
    pub(crate) async fn submit(
        self: &Arc<Self>,
        conn: &Arc<AsyncConn>,
        handle: &Handle,
        messages: BytesMut,
    ) -> Result<PipelineResponse, PgWireError> {
        let (reply, answer) = oneshot::channel();
        let spawn = {
            let mut pending = self.lock();
            pending.items.push((messages, reply));
            !std::mem::replace(&mut pending.scheduled, true)
        };
        if spawn {
            spawn_batch(handle, self, conn);
        }
        // The batch task gone without an answer: the runtime shut down, or the task
        // panicked in the driver.
        answer.await.unwrap_or(Err(PgWireError::ConnectionClosed))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Takes the outbox's requests, at most `max`; with `max` taken and more left, says so
    /// and leaves a batch task due (the caller spawns it); otherwise the next request
    /// spawns one.
    fn take(&self, max: usize) -> (Vec<(BytesMut, Reply)>, bool) {
        let mut pending = self.lock();
        if pending.items.len() > max {
            let rest = pending.items.split_off(max);
            return (std::mem::replace(&mut pending.items, rest), true);
        }
        pending.scheduled = false;
        (std::mem::take(&mut pending.items), false)
    }
}

/// Spawns a batch task on `handle`.
fn spawn_batch(handle: &Handle, outbox: &Arc<Outbox>, conn: &Arc<AsyncConn>) {
    let batch = Unsent(Some(Arc::clone(outbox)));
    handle.spawn(flush(batch, Arc::clone(conn)));
}

/// The batch task: lets the other ready tasks add their requests, then sends the outbox in
/// one batch and hands each response to its sender.
async fn flush(mut batch: Unsent, conn: Arc<AsyncConn>) {
    tokio::task::yield_now().await;
    let Some(outbox) = batch.0.take() else {
        return;
    };
    // Each request's future sends it on its first poll: all of them are queued in this one
    // poll, before pg-wired's writer can run, so it writes them together. Each answer is
    // handed over as soon as it is read, not when the whole batch is done.
    let (items, more) = outbox.take(BATCH_MAX);
    if more {
        spawn_batch(&Handle::current(), &outbox, &conn);
    }
    let mut running: Vec<_> = items
        .into_iter()
        .map(|(messages, reply)| {
            let request = Box::pin(conn.submit(messages, ResponseCollector::Rows));
            (request, Some(reply))
        })
        .collect();
    std::future::poll_fn(|cx| {
        let mut waiting = false;
        for (request, reply) in &mut running {
            if reply.is_none() {
                continue;
            }
            match request.as_mut().poll(cx) {
                Poll::Ready(result) => {
                    if let Some(reply) = reply.take() {
                        let _ = reply.send(result);
                    }
                }
                Poll::Pending => waiting = true,
            }
        }
        if waiting {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
}

/// The outbox of a batch task that has not taken it yet. A task dropped before (the runtime
/// shut down: a task spawned then is dropped unpolled) fails the requests in it, instead of
/// leaving them, and every later one, waiting forever.
struct Unsent(Option<Arc<Outbox>>);

impl Drop for Unsent {
    fn drop(&mut self) {
        if let Some(outbox) = self.0.take() {
            // Dropping the replies tells their senders the connection is closed.
            drop(outbox.take(usize::MAX));
        }
    }
}

/// A parameterised statement through `conn`'s statement cache, sent in the next batch: what
/// [`AsyncConn::exec_query_with_formats`] does, with the request going through `outbox`.
/// A cached statement the server no longer knows (`26000`, `0A000`: dropped by a schema
/// change) is parsed again once, as pg-wired does.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn exec_batched(
    outbox: &Arc<Outbox>,
    conn: &Arc<AsyncConn>,
    handle: &Handle,
    sql: &str,
    params: &[Option<&[u8]>],
    param_oids: &[u32],
    param_formats: &[FormatCode],
    result_formats: &[FormatCode],
) -> Result<Vec<RawRow>, PgWireError> {
    let statement = Statement {
        sql,
        params,
        param_oids,
        param_formats,
        result_formats,
    };
    let (name, parse) = conn.lookup_or_alloc(sql, param_oids);
    let result = outbox
        .submit(conn, handle, statement.encode(&name, parse))
        .await;
    match result {
        Ok(response) => {
            if parse {
                conn.cache_statement(sql, &name);
            }
            Ok(rows(response))
        }
        Err(PgWireError::Pg(e)) if !parse && matches!(e.code.as_str(), "26000" | "0A000") => {
            tracing::debug!("a cached statement was invalidated; parsing it again");
            conn.invalidate_statement(sql);
            let (name, _) = conn.lookup_or_alloc(sql, param_oids);
            let response = outbox
                .submit(conn, handle, statement.encode(&name, true))
                .await?;
            conn.cache_statement(sql, &name);
            Ok(rows(response))
        }
        Err(e) => Err(e),
    }
}

fn rows(response: PipelineResponse) -> Vec<RawRow> {
    match response {
        PipelineResponse::Rows { rows, .. } => rows,
        _ => Vec::new(),
    }
}

/// What a statement's request is made of.
struct Statement<'a> {
    sql: &'a str,
    params: &'a [Option<&'a [u8]>],
    param_oids: &'a [u32],
    param_formats: &'a [FormatCode],
    result_formats: &'a [FormatCode],
}

impl Statement<'_> {
    /// `Parse` (when the session does not have the statement yet), `Bind`, `Execute`,
    /// `Sync`. Empty format lists mean text for every parameter and column, as in pg-wired.
    fn encode(&self, name: &[u8], parse: bool) -> BytesMut {
        let mut buf = BytesMut::with_capacity(64 + self.sql.len() * usize::from(parse));
        let text = vec![FormatCode::Text; self.params.len()];
        let param_formats = if self.param_formats.is_empty() {
            &text[..]
        } else {
            self.param_formats
        };
        let result_formats = if self.result_formats.is_empty() {
            &[FormatCode::Text][..]
        } else {
            self.result_formats
        };
        if parse {
            encode_message(
                &FrontendMsg::Parse {
                    name,
                    sql: self.sql.as_bytes(),
                    param_oids: self.param_oids,
                },
                &mut buf,
            );
        }
        encode_message(
            &FrontendMsg::Bind {
                portal: b"",
                statement: name,
                param_formats,
                params: self.params,
                result_formats,
            },
            &mut buf,
        );
        encode_message(
            &FrontendMsg::Execute {
                portal: b"",
                max_rows: 0,
            },
            &mut buf,
        );
        encode_message(&FrontendMsg::Sync, &mut buf);
        buf
    }
}
