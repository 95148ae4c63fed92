//! [`PortableFunction`]: a function of a portable plugin as an engine
//! [`Function`]. Each rule (and argument count) gets its own `Invoke` stream,
//! opened on first use and reopened after a restart or an update; one
//! `call_batch` is one `InvokeBatch` and waits for its one `InvokeResponse`, at
//! most `call_timeout`. The streams run on the process's connection for calls,
//! on the host's [`CallRuntime`]: the thread that waits (a blocking thread for
//! a batch, the caller for a single call) writes the batch and reads the
//! answer itself, and polls for it while it is short in coming, because
//! on a small machine waking a sleeping thread is most of a round trip's
//! cost. A call that times out kills the process (the supervisor restarts
//! it) and fails that batch's rows; the next batch goes to the new process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use oort_engine::function::ArgInfo;
use oort_engine::{
    BatchAnswers, BatchCall, CallContext, Calling, Function, FunctionError, FunctionKind, FunctionMeta, FunctionOrigin,
    Value,
};
use oort_proto::plugin::v1::{
    ArgRow, InvokeBatch, InvokeOpen, InvokeRequest, InvokeResponse, call_result, invoke_request,
};
use oort_runtimes::CallRuntime;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::supervisor::{Supervisor, Target};

/// One open `Invoke` stream.
struct Invoker {
    supervisor: Arc<Supervisor>,
    generation: u64,
    tx: mpsc::Sender<InvokeRequest>,
    rx: tonic::Streaming<InvokeResponse>,
    next_batch: u64,
}

type Streams = HashMap<(String, usize), Arc<tokio::sync::Mutex<Option<Invoker>>>>;

/// A function of a portable plugin.
pub struct PortableFunction {
    meta: FunctionMeta,
    target: Arc<Target>,
    calls: Arc<CallRuntime>,
    streams: Mutex<Streams>,
}

/// Why a batch failed as a whole.
struct BatchError(String);

impl PortableFunction {
    /// The function `name` of plugin `owner`, behind `target`.
    pub fn new(
        name: &str,
        owner: &str,
        aggregate: bool,
        description: &str,
        target: Arc<Target>,
        calls: Arc<CallRuntime>,
    ) -> Self {
        let meta = FunctionMeta {
            name: name.to_ascii_lowercase(),
            kind: if aggregate { FunctionKind::Aggregate } else { FunctionKind::Scalar },
            origin: FunctionOrigin::Portable,
            owner: owner.to_owned(),
            calling: Calling::Blocking,
            min_args: 0,
            max_args: None,
            description: description.to_owned(),
        };
        Self { meta, target, calls, streams: Mutex::default() }
    }

    fn stream(&self, rule_id: &str, nargs: usize) -> Arc<tokio::sync::Mutex<Option<Invoker>>> {
        let mut streams = self.streams.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(streams.entry((rule_id.to_owned(), nargs)).or_default())
    }

    /// The call of one batch, to be made on the host's [`CallRuntime`]. The
    /// rows are converted here, without copying them first: a portable call
    /// is [`Calling::Blocking`], so this already runs on the thread that makes
    /// the call, not the rule's task.
    fn invoke(&self, rule_id: &str, rows: &[&[Value]]) -> Result<Invocation, BatchError> {
        let nargs = rows.first().map_or(0, |r| r.len());
        if rows.iter().any(|r| r.len() != nargs) {
            return Err(BatchError("every row of a batch needs the same number of arguments".into()));
        }
        Ok(Invocation {
            supervisor: self.target.get(),
            stream: self.stream(rule_id, nargs),
            open: InvokeOpen { function: self.meta.name.clone(), rule_id: rule_id.to_owned(), arg_count: nargs as u32 },
            rows: rows.iter().map(|r| ArgRow { args: r.iter().map(crate::convert::to_proto).collect() }).collect(),
        })
    }
}

/// One batch's call, ready to be made.
struct Invocation {
    supervisor: Arc<Supervisor>,
    stream: Arc<tokio::sync::Mutex<Option<Invoker>>>,
    open: InvokeOpen,
    rows: Vec<ArgRow>,
}

impl Invocation {
    /// Makes the call on `calls`, driving it from this thread until the answer.
    fn make(self, calls: &CallRuntime) -> Result<InvokeResponse, BatchError> {
        calls.block(call(self.supervisor, self.stream, self.open, self.rows))
    }
}

/// One answer per row of a batch of `rows` rows; a failed batch fails every row.
fn answers(name: &str, rows: usize, response: Result<InvokeResponse, BatchError>) -> BatchAnswers {
    let response = response.and_then(|response| match response.results.len() {
        n if n == rows => Ok(response),
        n => Err(BatchError(format!("the plugin answered {n} results for {rows} rows"))),
    });
    match response {
        Ok(response) => response
            .results
            .into_iter()
            .map(|r| match r.result {
                Some(call_result::Result::Value(v)) => Ok(crate::convert::from_proto(&v)),
                Some(call_result::Result::Error(e)) => Err(FunctionError::failed(name, e)),
                None => Ok(Value::Null),
            })
            .collect(),
        Err(BatchError(message)) => vec![Err(FunctionError::failed(name, message)); rows],
    }
}

async fn call(
    supervisor: Arc<Supervisor>,
    stream: Arc<tokio::sync::Mutex<Option<Invoker>>>,
    open: InvokeOpen,
    rows: Vec<ArgRow>,
) -> Result<InvokeResponse, BatchError> {
    let mut slot = stream.lock().await;
    let running = supervisor.acquire(false).await.map_err(|e| BatchError(e.to_string()))?;
    let timeout: Duration = supervisor.config().call_timeout;
    let stale =
        slot.as_ref().is_none_or(|i| !Arc::ptr_eq(&i.supervisor, &supervisor) || i.generation != running.generation);
    let function = open.function.clone();
    let result = tokio::time::timeout(timeout, async {
        if stale {
            *slot = None;
            let (tx, rx) = mpsc::channel(4);
            let first = InvokeRequest { message: Some(invoke_request::Message::Open(open)) };
            tx.send(first).await.map_err(|_| BatchError("the call stream closed".into()))?;
            let mut client = running.process.call_client().await.map_err(BatchError)?;
            let refused = |s: tonic::Status| BatchError(format!("the plugin refused the call: {}", s.message()));
            let mut responses = client.invoke(ReceiverStream::new(rx)).await.map_err(refused)?.into_inner();
            // The plugin acknowledges the open stream as batch 0.
            match responses.message().await.map_err(refused)? {
                Some(ack) if ack.batch_id == 0 => {}
                Some(other) => {
                    return Err(BatchError(format!(
                        "the plugin answered batch {} before it acknowledged the call (batch 0)",
                        other.batch_id
                    )));
                }
                None => return Err(BatchError("the plugin ended the call stream at once".into())),
            }
            *slot = Some(Invoker {
                supervisor: Arc::clone(&supervisor),
                generation: running.generation,
                tx,
                rx: responses,
                next_batch: 1,
            });
        }
        let Some(invoker) = slot.as_mut() else { return Err(BatchError("no call stream".into())) };
        let batch_id = invoker.next_batch;
        invoker.next_batch += 1;
        let request = InvokeRequest { message: Some(invoke_request::Message::Batch(InvokeBatch { batch_id, rows })) };
        invoker.tx.send(request).await.map_err(|_| BatchError("the plugin closed the call stream".into()))?;
        match invoker.rx.message().await {
            Ok(Some(response)) if response.batch_id == batch_id => Ok(response),
            Ok(Some(response)) => {
                Err(BatchError(format!("the plugin answered batch {} instead of batch {batch_id}", response.batch_id)))
            }
            Ok(None) => Err(BatchError("the plugin closed the call stream".into())),
            Err(status) => Err(BatchError(format!("the call failed: {}", status.message()))),
        }
    })
    .await;
    match result {
        Ok(Ok(response)) => Ok(response),
        Ok(Err(error)) => {
            *slot = None;
            Err(error)
        }
        Err(_) => {
            *slot = None;
            let message = format!(
                "the call of {function} did not answer within {} ms; the plugin process was restarted",
                timeout.as_millis()
            );
            supervisor.fail(&running, message.clone());
            Err(BatchError(message))
        }
    }
}

impl Function for PortableFunction {
    fn meta(&self) -> &FunctionMeta {
        &self.meta
    }

    /// Asks the plugin (its `Invoke` stream refuses a wrong argument count
    /// with INVALID_ARGUMENT), so that a call it refuses fails the rule's
    /// creation. This starts the process if needed; a plugin that cannot be
    /// reached now is not a reason to refuse the rule (its calls fail later).
    fn validate(&self, args: &[ArgInfo<'_>]) -> Result<(), String> {
        let supervisor = self.target.get();
        let open =
            InvokeOpen { function: self.meta.name.clone(), rule_id: String::new(), arg_count: args.len() as u32 };
        let check = async move {
            let running = supervisor.acquire(false).await.ok()?;
            let (tx, rx) = mpsc::channel(1);
            tx.send(InvokeRequest { message: Some(invoke_request::Message::Open(open)) }).await.ok()?;
            let mut client = running.process.client.clone();
            let timeout = supervisor.config().call_timeout;
            match tokio::time::timeout(timeout, client.invoke(ReceiverStream::new(rx))).await {
                Ok(Err(status)) if super::source::is_refusal(status.code()) => Some(status.message().to_owned()),
                _ => None,
            }
        };
        match self.calls.block(check) {
            Some(refusal) => Err(refusal),
            None => Ok(()),
        }
    }

    /// One row, on the calling thread, which drives the call runtime itself.
    fn call(&self, ctx: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
        let response = self.invoke(ctx.rule_id, &[args]).and_then(|call| call.make(&self.calls));
        answers(&self.meta.name, 1, response)
            .pop()
            .unwrap_or_else(|| Err(FunctionError::failed(&self.meta.name, "no result")))
    }

    /// The batch, made by the thread that polls it, which drives the call
    /// runtime while it waits ([`Calling::Blocking`]: a rule evaluates such
    /// batches on blocking threads).
    fn call_batch(&self, ctx: &CallContext<'_>, rows: &[&[Value]]) -> BatchCall {
        let (name, count) = (self.meta.name.clone(), rows.len());
        let call = self.invoke(ctx.rule_id, rows);
        let calls = Arc::clone(&self.calls);
        Box::pin(async move { answers(&name, count, call.and_then(|call| call.make(&calls))) })
    }
}
