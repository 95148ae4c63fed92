//! The floor under a portable call's round trip: the same `Invoke` exchange
//! (one `InvokeBatch` of one row, one `InvokeResponse`) with nothing of Oort
//! around it but the way the host drives its client: a bare tonic server
//! echoing rows on a runtime of its own and a bare tonic client on a
//! [`CallRuntime`] driven by the calling thread, over a Unix socket in this
//! process. What tonic and h2 on both sides cost on this machine; the
//! difference to the host's figure is what the host adds (the supervisor, the
//! stream bookkeeping, the deadline, the value conversions).

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use oort_proto::plugin::v1::plugin_service_server::{PluginService, PluginServiceServer};
use oort_proto::plugin::v1::{
    ArgRow, CallResult, DescribeRequest, DescribeResponse, InvokeBatch, InvokeOpen, InvokeRequest, InvokeResponse,
    OpenSinkRequest, OpenSinkResponse, OpenSourceRequest, OpenSourceResponse, ShutdownRequest, ShutdownResponse,
    call_result, invoke_request,
};
use oort_proto::v1::{Value, value::Kind};
use oort_runtimes::CallRuntime;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

/// Answers every batch of `Invoke` with each row's first argument.
struct Echo;

type Responses<T> = ReceiverStream<Result<T, Status>>;

#[tonic::async_trait]
impl PluginService for Echo {
    async fn describe(&self, _: Request<DescribeRequest>) -> Result<Response<DescribeResponse>, Status> {
        Err(Status::unimplemented("floor"))
    }

    type InvokeStream = Responses<InvokeResponse>;

    async fn invoke(&self, request: Request<Streaming<InvokeRequest>>) -> Result<Response<Self::InvokeStream>, Status> {
        let mut requests = request.into_inner();
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(async move {
            // The protocol's acknowledgement of the open stream.
            let _ = tx.send(Ok(InvokeResponse { batch_id: 0, results: Vec::new() })).await;
            while let Ok(Some(request)) = requests.message().await {
                let Some(invoke_request::Message::Batch(batch)) = request.message else { continue };
                let results = batch
                    .rows
                    .into_iter()
                    .map(|row| CallResult { result: row.args.into_iter().next().map(call_result::Result::Value) })
                    .collect();
                if tx.send(Ok(InvokeResponse { batch_id: batch.batch_id, results })).await.is_err() {
                    break;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    type OpenSourceStream = Responses<OpenSourceResponse>;

    async fn open_source(&self, _: Request<OpenSourceRequest>) -> Result<Response<Self::OpenSourceStream>, Status> {
        Err(Status::unimplemented("floor"))
    }

    type OpenSinkStream = Responses<OpenSinkResponse>;

    async fn open_sink(
        &self,
        _: Request<Streaming<OpenSinkRequest>>,
    ) -> Result<Response<Self::OpenSinkStream>, Status> {
        Err(Status::unimplemented("floor"))
    }

    async fn shutdown(&self, _: Request<ShutdownRequest>) -> Result<Response<ShutdownResponse>, Status> {
        Err(Status::unimplemented("floor"))
    }
}

/// One open `Invoke` stream of the client.
struct Stream {
    tx: mpsc::Sender<InvokeRequest>,
    rx: Streaming<InvokeResponse>,
    next: u64,
}

impl Stream {
    async fn open(channel: tonic::transport::Channel) -> Result<Self> {
        let (tx, requests) = mpsc::channel(4);
        let open = InvokeOpen { function: "echo".into(), rule_id: "floor".into(), arg_count: 1 };
        tx.send(InvokeRequest { message: Some(invoke_request::Message::Open(open)) }).await?;
        let mut client = oort_proto::plugin::v1::plugin_service_client::PluginServiceClient::new(channel);
        let mut rx = client.invoke(ReceiverStream::new(requests)).await?.into_inner();
        rx.message().await?.context("no acknowledgement")?;
        Ok(Self { tx, rx, next: 1 })
    }

    /// One round trip of one row.
    async fn call(&mut self, x: f64) -> Result<()> {
        let row = ArgRow { args: vec![Value { kind: Some(Kind::FloatValue(x)) }] };
        let batch = InvokeBatch { batch_id: self.next, rows: vec![row] };
        self.next += 1;
        self.tx.send(InvokeRequest { message: Some(invoke_request::Message::Batch(batch)) }).await?;
        let response = self.rx.message().await?.context("the stream ended")?;
        anyhow::ensure!(response.results.len() == 1, "one result");
        Ok(())
    }
}

/// Sorted round trips of `n` calls (after `n / 10` to warm up), made from
/// the calling thread.
pub fn round_trips(n: usize) -> Result<Vec<Duration>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("floor.sock");
    // The server on a runtime of its own, as the Rust SDK's process has.
    let server = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let listener = {
        let _context = server.enter();
        tokio::net::UnixListener::bind(&path)?
    };
    server.spawn(
        tonic::transport::Server::builder()
            .add_service(PluginServiceServer::new(Echo))
            .serve_with_incoming(tokio_stream::wrappers::UnixListenerStream::new(listener)),
    );
    // The client driven by the calling thread, as the host's calls are.
    let client = CallRuntime::new()?;
    let mut stream = client.block(async move {
        let connector = tower::service_fn(move |_: http::Uri| {
            let path = path.clone();
            async move {
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tokio::net::UnixStream::connect(path).await?))
            }
        });
        let channel =
            tonic::transport::Endpoint::from_static("http://floor.localhost").connect_with_connector(connector).await?;
        Stream::open(channel).await
    })?;
    let mut times = Vec::with_capacity(n);
    for i in 0..n + n / 10 {
        let started = Instant::now();
        client.block(stream.call(i as f64))?;
        if i >= n / 10 {
            times.push(started.elapsed());
        }
    }
    server.shutdown_background();
    times.sort();
    Ok(times)
}
