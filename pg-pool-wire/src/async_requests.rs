//! The request methods of [`AsyncWirePoolable`]: the methods of [`AsyncConn`] that talk to
//! the server, each tracked so that the pool learns when a request was abandoned midway, an
//! error proved the connection dead, or its SQL may have changed the session (judged before
//! it is sent, see [`AsyncWirePoolable`]'s reset rule).
//!
//! They keep the names, arguments and results of [`AsyncConn`]'s methods, so code written
//! against a dereferenced `AsyncConn` calls these instead without a change (except
//! [`submit_stream`](AsyncWirePoolable::submit_stream), which returns a [`RowStream`]).
//!
//! [`AsyncConn`]: pg_wired::AsyncConn

use bytes::BytesMut;
use pg_wired::protocol::types::RawRow;
use pg_wired::{FormatCode, PgWireError, PipelineResponse, ResponseCollector};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::async_poolable::AsyncWirePoolable;
use crate::exchange::RowStream;

/// Refuses text the protocol cannot carry before anything is sent: statement text and
/// names go out NUL-terminated, so a NUL inside would cut the message short and the server
/// would end the session with a protocol violation. Reported as the server reports a NUL
/// in a text value (`22021`), which leaves the connection usable.
// The error type is the driver's, as for every request method here.
#[allow(clippy::result_large_err)]
fn refuse_nul(texts: &[&[u8]]) -> Result<(), PgWireError> {
    if texts.iter().any(|text| text.contains(&0)) {
        let mut error = pg_wired::PgError::default();
        error.severity = "ERROR".into();
        error.code = "22021".into();
        error.message = "statement text or name contains a NUL byte; nothing was sent".into();
        return Err(PgWireError::Pg(error));
    }
    Ok(())
}

impl AsyncWirePoolable {
    /// [`AsyncConn::submit`](pg_wired::AsyncConn::submit), tracked: sends a prepared message
    /// buffer and collects its response.
    ///
    /// # Errors
    ///
    /// The driver's error. One that proves the connection dead (I/O error, connection
    /// closed, protocol error, a server error that ends the session: `FATAL`, `57P01`,
    /// `57P02`, `57P03`, `57P05`, class `08`) also marks the connection broken: the pool
    /// destroys it when it comes back, so a dead connection fails at most one checkout.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future after the request was queued leaves the exchange outstanding
    /// (the server may still run the statement): the pool then destroys the connection when
    /// it comes back, cancelling the statement first, instead of handing it to the next
    /// caller.
    pub async fn submit(
        &self,
        messages: BytesMut,
        collector: ResponseCollector,
    ) -> Result<PipelineResponse, PgWireError> {
        self.tracker().note_messages(&messages);
        let exchange = self.tracker().start();
        let response = exchange.finish(self.raw().submit(messages, collector).await);
        if let Ok(PipelineResponse::Rows { command_tag, .. }) = &response {
            self.tracker().note_tag(command_tag);
        }
        response
    }

    /// [`AsyncConn::submit_batch`](pg_wired::AsyncConn::submit_batch), tracked: sends
    /// several requests in one write and collects each response.
    ///
    /// # Errors
    ///
    /// The outer error when queueing fails, an inner one per request; either marks a dead
    /// connection broken.
    ///
    /// # Cancel safety
    ///
    /// Dropped midway, the connection is destroyed (after a cancel) when it comes back.
    pub async fn submit_batch(
        &self,
        items: Vec<(BytesMut, ResponseCollector)>,
    ) -> Result<Vec<Result<PipelineResponse, PgWireError>>, PgWireError> {
        for (messages, _) in &items {
            self.tracker().note_messages(messages);
        }
        let exchange = self.tracker().start();
        let results = exchange.finish(self.raw().submit_batch(items).await)?;
        for result in &results {
            match result {
                Ok(PipelineResponse::Rows { command_tag, .. }) => {
                    self.tracker().note_tag(command_tag);
                }
                Ok(_) => {}
                Err(e) => self.tracker().record(e),
            }
        }
        Ok(results)
    }

    /// [`AsyncConn::submit_stream`](pg_wired::AsyncConn::submit_stream), tracked: sends a
    /// request and returns its rows as a [`RowStream`], which keeps the exchange in flight
    /// until the statement has completed.
    ///
    /// Read the stream to its end (or drop it) before the connection goes back to the pool;
    /// a stream still open then, or dropped before its end, gets the connection destroyed.
    ///
    /// # Errors
    ///
    /// The driver's error before the first row; a dead connection is marked broken.
    ///
    /// # Cancel safety
    ///
    /// Dropped midway, the connection is destroyed (after a cancel) when it comes back.
    pub async fn submit_stream(
        &self,
        messages: BytesMut,
        row_buffer: usize,
    ) -> Result<RowStream, PgWireError> {
        self.tracker().note_messages(&messages);
        let exchange = self.tracker().start();
        match self.raw().submit_stream(messages, row_buffer).await {
            Ok((header, rows)) => Ok(RowStream::new(header, rows, exchange)),
            Err(e) => exchange.finish(Err(e)),
        }
    }

    /// [`AsyncConn::exec_query`](pg_wired::AsyncConn::exec_query), tracked: a parameterised
    /// query through the connection's statement cache.
    ///
    /// # Errors
    ///
    /// See [`submit`](Self::submit).
    ///
    /// # Cancel safety
    ///
    /// As [`submit`](Self::submit).
    pub async fn exec_query(
        &self,
        sql: &str,
        params: &[Option<&[u8]>],
        param_oids: &[u32],
    ) -> Result<Vec<RawRow>, PgWireError> {
        refuse_nul(&[sql.as_bytes()])?;
        self.tracker().note_sql(sql);
        let exchange = self.tracker().start();
        exchange.finish(self.raw().exec_query(sql, params, param_oids).await)
    }

    /// [`AsyncConn::exec_query_with_formats`](pg_wired::AsyncConn::exec_query_with_formats),
    /// tracked: [`exec_query`](Self::exec_query) with parameter and result format codes.
    ///
    /// # Errors
    ///
    /// See [`submit`](Self::submit).
    ///
    /// # Cancel safety
    ///
    /// As [`submit`](Self::submit).
    pub async fn exec_query_with_formats(
        &self,
        sql: &str,
        params: &[Option<&[u8]>],
        param_oids: &[u32],
        param_formats: &[FormatCode],
        result_formats: &[FormatCode],
    ) -> Result<Vec<RawRow>, PgWireError> {
        refuse_nul(&[sql.as_bytes()])?;
        self.tracker().note_sql(sql);
        let exchange = self.tracker().start();
        let fut = self.raw().exec_query_with_formats(
            sql,
            params,
            param_oids,
            param_formats,
            result_formats,
        );
        exchange.finish(fut.await)
    }

    /// [`AsyncConn::query`](pg_wired::AsyncConn::query), tracked: a parameterised query
    /// with a caller-chosen statement name.
    ///
    /// # Errors
    ///
    /// See [`submit`](Self::submit).
    ///
    /// # Cancel safety
    ///
    /// As [`submit`](Self::submit).
    pub async fn query(
        &self,
        sql: &str,
        params: &[Option<&[u8]>],
        param_oids: &[u32],
        stmt_name: &[u8],
        needs_parse: bool,
    ) -> Result<Vec<RawRow>, PgWireError> {
        refuse_nul(&[sql.as_bytes(), stmt_name])?;
        self.tracker().note_sql(sql);
        let exchange = self.tracker().start();
        let fut = self
            .raw()
            .query(sql, params, param_oids, stmt_name, needs_parse);
        exchange.finish(fut.await)
    }

    /// [`AsyncConn::query_with_formats`](pg_wired::AsyncConn::query_with_formats), tracked.
    ///
    /// # Errors
    ///
    /// See [`submit`](Self::submit).
    ///
    /// # Cancel safety
    ///
    /// As [`submit`](Self::submit).
    #[allow(clippy::too_many_arguments)]
    pub async fn query_with_formats(
        &self,
        sql: &str,
        params: &[Option<&[u8]>],
        param_oids: &[u32],
        param_formats: &[FormatCode],
        result_formats: &[FormatCode],
        stmt_name: &[u8],
        needs_parse: bool,
    ) -> Result<Vec<RawRow>, PgWireError> {
        refuse_nul(&[sql.as_bytes(), stmt_name])?;
        self.tracker().note_sql(sql);
        let exchange = self.tracker().start();
        let fut = self.raw().query_with_formats(
            sql,
            params,
            param_oids,
            param_formats,
            result_formats,
            stmt_name,
            needs_parse,
        );
        exchange.finish(fut.await)
    }

    /// [`AsyncConn::exec_transaction`](pg_wired::AsyncConn::exec_transaction), tracked:
    /// setup statements, a parameterised query and `COMMIT` in one write.
    ///
    /// # Errors
    ///
    /// See [`submit`](Self::submit).
    ///
    /// # Cancel safety
    ///
    /// As [`submit`](Self::submit).
    pub async fn exec_transaction(
        &self,
        setup_sql: &str,
        query_sql: &str,
        params: &[Option<&[u8]>],
        param_oids: &[u32],
    ) -> Result<Vec<RawRow>, PgWireError> {
        refuse_nul(&[setup_sql.as_bytes(), query_sql.as_bytes()])?;
        self.tracker().note_sql(setup_sql);
        self.tracker().note_sql(query_sql);
        let exchange = self.tracker().start();
        let fut = self
            .raw()
            .exec_transaction(setup_sql, query_sql, params, param_oids);
        exchange.finish(fut.await)
    }

    /// [`AsyncConn::pipeline_transaction`](pg_wired::AsyncConn::pipeline_transaction),
    /// tracked: [`exec_transaction`](Self::exec_transaction) with a caller-chosen statement
    /// name.
    ///
    /// # Errors
    ///
    /// See [`submit`](Self::submit).
    ///
    /// # Cancel safety
    ///
    /// As [`submit`](Self::submit).
    pub async fn pipeline_transaction(
        &self,
        setup_sql: &str,
        query_sql: &str,
        params: &[Option<&[u8]>],
        param_oids: &[u32],
        stmt_name: &[u8],
        needs_parse: bool,
    ) -> Result<Vec<RawRow>, PgWireError> {
        refuse_nul(&[setup_sql.as_bytes(), query_sql.as_bytes(), stmt_name])?;
        self.tracker().note_sql(setup_sql);
        self.tracker().note_sql(query_sql);
        let exchange = self.tracker().start();
        let fut = self.raw().pipeline_transaction(
            setup_sql,
            query_sql,
            params,
            param_oids,
            stmt_name,
            needs_parse,
        );
        exchange.finish(fut.await)
    }

    /// [`AsyncConn::copy_in`](pg_wired::AsyncConn::copy_in), tracked: `COPY ... FROM STDIN`
    /// with `data`; returns the number of rows copied.
    ///
    /// # Errors
    ///
    /// See [`submit`](Self::submit).
    ///
    /// # Cancel safety
    ///
    /// As [`submit`](Self::submit).
    pub async fn copy_in(&self, copy_sql: &str, data: &[u8]) -> Result<u64, PgWireError> {
        refuse_nul(&[copy_sql.as_bytes()])?;
        self.tracker().note_sql(copy_sql);
        let exchange = self.tracker().start();
        exchange.finish(self.raw().copy_in(copy_sql, data).await)
    }

    /// `COPY ... FROM STDIN` with the data read from `reader` (all of it is read before the
    /// request is sent, as [`AsyncConn::copy_in_stream`](pg_wired::AsyncConn::copy_in_stream)
    /// does); returns the number of rows copied.
    ///
    /// # Errors
    ///
    /// [`PgWireError::Io`] when `reader` fails (nothing was sent; the connection is
    /// unaffected); otherwise see [`submit`](Self::submit).
    ///
    /// # Cancel safety
    ///
    /// Dropped while reading `reader`, nothing was sent; dropped later, as
    /// [`submit`](Self::submit).
    pub async fn copy_in_stream<R: AsyncRead + Unpin>(
        &self,
        copy_sql: &str,
        mut reader: R,
    ) -> Result<u64, PgWireError> {
        let mut data = Vec::new();
        reader.read_to_end(&mut data).await?;
        self.copy_in(copy_sql, &data).await
    }

    /// [`AsyncConn::copy_out`](pg_wired::AsyncConn::copy_out), tracked: `COPY ... TO STDOUT`;
    /// returns the data.
    ///
    /// # Errors
    ///
    /// See [`submit`](Self::submit).
    ///
    /// # Cancel safety
    ///
    /// As [`submit`](Self::submit).
    pub async fn copy_out(&self, copy_sql: &str) -> Result<Vec<u8>, PgWireError> {
        refuse_nul(&[copy_sql.as_bytes()])?;
        self.tracker().note_sql(copy_sql);
        let exchange = self.tracker().start();
        exchange.finish(self.raw().copy_out(copy_sql).await)
    }

    /// [`AsyncConn::close`](pg_wired::AsyncConn::close): sends `Terminate` after the
    /// requests already queued. The connection is then marked broken, and the pool destroys
    /// it when it comes back.
    ///
    /// # Errors
    ///
    /// The driver's error when the connection failed before it could be closed.
    ///
    /// # Cancel safety
    ///
    /// The connection is marked broken before the first await, whatever happens next.
    pub async fn close(&self) -> Result<(), PgWireError> {
        self.tracker().mark_dead();
        self.raw().close().await
    }
}
