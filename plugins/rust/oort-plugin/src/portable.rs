//! Portable mode (cargo feature `portable`): the same [`Plugin`] that
//! [`export_plugin!`](crate::export_plugin) exports as a native library, served
//! as a process of its own over `oort.plugin.v1` (see
//! `proto/oort/plugin/v1/plugin.proto` and `plugins/PROTOCOL.md`).
//!
//! [`serve`] follows every rule of the protocol: it refuses to run without the
//! magic cookie or with another protocol version (explaining why on stderr,
//! exit status 1); listens on `OORT_PLUGIN_SOCKET` and makes it mode 0600;
//! serves `PluginService` and `grpc.health.v1` ("" and the service, SERVING);
//! prints the handshake line on stdout; and exits when stdin reaches EOF or
//! after `Shutdown`, closing every source and sink instance first within
//! `OORT_PLUGIN_SHUTDOWN_GRACE_MS`. A function that fails or panics on one row
//! gives that row an error; sink batches are acknowledged one by one.

use std::collections::HashMap;
use std::io::Write;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use oort_proto::plugin::v1 as pb;
use oort_proto::plugin::v1::plugin_service_server::{PluginService, PluginServiceServer};
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::api::{Context, Plugin, Sink, Source, Symbol};
use crate::value::{Event, Row, Value, event_to_wire, from_wire, map_from_wire, to_wire};

/// The cookie the server sets.
pub const MAGIC_COOKIE: (&str, &str) = ("OORT_PLUGIN_MAGIC_COOKIE", "oort-plugin-7c2b1d9e");
/// The protocol version this SDK speaks.
pub const PROTOCOL_VERSION: u32 = 1;
/// How long a source's `read` waits at most: how soon it notices a stop.
const READ_TIMEOUT: Duration = Duration::from_millis(100);

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

/// Runs `f`, turning a panic into an error.
fn guarded<T>(f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|panic| Err(format!("panicked: {}", panic_message(&*panic))))
}

/// The open source and sink instances, so that `Shutdown` can close them.
#[derive(Default)]
struct Instances {
    stops: Mutex<Vec<(Arc<AtomicBool>, std::thread::JoinHandle<()>)>>,
}

impl Instances {
    fn add(&self, stop: Arc<AtomicBool>, thread: std::thread::JoinHandle<()>) {
        let mut stops = self.stops.lock().unwrap_or_else(|p| p.into_inner());
        stops.retain(|(_, t)| !t.is_finished());
        stops.push((stop, thread));
    }

    /// Asks every instance to close and waits for them, at most `grace`.
    fn close_all(&self, grace: Duration) {
        let all = std::mem::take(&mut *self.stops.lock().unwrap_or_else(|p| p.into_inner()));
        for (stop, _) in &all {
            stop.store(true, Ordering::Release);
        }
        let deadline = std::time::Instant::now() + grace;
        for (_, thread) in all {
            while !thread.is_finished() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}

struct Service {
    plugin: &'static Plugin,
    instances: Arc<Instances>,
    shutdown: Arc<tokio::sync::watch::Sender<bool>>,
}

type Out<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

impl Service {
    fn symbol(&self, name: &str) -> Option<&'static Symbol> {
        let name = name.to_ascii_lowercase();
        self.plugin.symbols.iter().find(|(n, _)| *n == name).map(|(_, s)| s)
    }
}

#[tonic::async_trait]
impl PluginService for Service {
    async fn describe(&self, _: Request<pb::DescribeRequest>) -> Result<Response<pb::DescribeResponse>, Status> {
        let symbols = self
            .plugin
            .symbols
            .iter()
            .map(|(name, symbol)| {
                let (kind, aggregate, description) = match symbol {
                    Symbol::Function(f) => (pb::SymbolKind::Function, f.is_aggregate(), f.description().to_owned()),
                    Symbol::Source(_) => (pb::SymbolKind::Source, false, String::new()),
                    Symbol::Sink(_) => (pb::SymbolKind::Sink, false, String::new()),
                };
                pb::Symbol { name: name.clone(), kind: kind as i32, aggregate, description }
            })
            .collect();
        Ok(Response::new(pb::DescribeResponse {
            name: self.plugin.name.clone(),
            version: self.plugin.version.clone(),
            protocol_version: PROTOCOL_VERSION,
            symbols,
        }))
    }

    type InvokeStream = Out<pb::InvokeResponse>;

    async fn invoke(
        &self,
        request: Request<Streaming<pb::InvokeRequest>>,
    ) -> Result<Response<Self::InvokeStream>, Status> {
        let mut input = request.into_inner();
        let open = match input.message().await? {
            Some(pb::InvokeRequest { message: Some(pb::invoke_request::Message::Open(open)) }) => open,
            _ => return Err(Status::invalid_argument("the first message of Invoke must be InvokeOpen")),
        };
        let Some(Symbol::Function(function)) = self.symbol(&open.function) else {
            return Err(Status::not_found(format!("this plugin has no function '{}'", open.function)));
        };
        let absent = vec![None; open.arg_count as usize];
        guarded(|| function.validate(&absent)).map_err(Status::invalid_argument)?;
        let (tx, rx) = mpsc::channel(4);
        // The acknowledgement of the open stream (the protocol's batch 0).
        let _ = tx.try_send(Ok(pb::InvokeResponse { batch_id: 0, results: Vec::new() }));
        tokio::spawn(async move {
            let ctx = Context { rule_id: &open.rule_id };
            let mut args: Vec<Value> = Vec::new();
            loop {
                let batch = match input.message().await {
                    Ok(Some(pb::InvokeRequest { message: Some(pb::invoke_request::Message::Batch(batch)) })) => batch,
                    Ok(Some(_)) => {
                        let _ = tx.send(Err(Status::invalid_argument("only batches may follow InvokeOpen"))).await;
                        return;
                    }
                    Ok(None) | Err(_) => return,
                };
                let results = batch
                    .rows
                    .iter()
                    .map(|row| {
                        args.clear();
                        args.extend(row.args.iter().map(from_wire));
                        let result = match guarded(|| function.exec(&ctx, &args)) {
                            Ok(value) => pb::call_result::Result::Value(to_wire(value)),
                            Err(message) => pb::call_result::Result::Error(message),
                        };
                        pb::CallResult { result: Some(result) }
                    })
                    .collect();
                let response = pb::InvokeResponse { batch_id: batch.batch_id, results };
                if tx.send(Ok(response)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    type OpenSourceStream = Out<pb::OpenSourceResponse>;

    async fn open_source(
        &self,
        request: Request<pb::OpenSourceRequest>,
    ) -> Result<Response<Self::OpenSourceStream>, Status> {
        let request = request.into_inner();
        let Some(Symbol::Source(new)) = self.symbol(&request.source) else {
            return Err(Status::not_found(format!("this plugin has no source '{}'", request.source)));
        };
        let config = crate::value::config_from_struct(request.config.as_ref());
        let opened = tokio::task::spawn_blocking(move || -> Result<Box<dyn Source>, Status> {
            let mut source = guarded(|| Ok(new())).map_err(Status::internal)?;
            guarded(|| source.configure(&request.datasource, &config)).map_err(Status::invalid_argument)?;
            guarded(|| source.open(&Context { rule_id: &request.rule_id })).map_err(Status::unavailable)?;
            Ok(source)
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))??;
        let (tx, rx) = mpsc::channel(16);
        // The acknowledgement of the open source: a response with no events.
        let _ = tx.try_send(Ok(pb::OpenSourceResponse { events: Vec::new() }));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || pump(opened, tx, stop))
        };
        self.instances.add(stop, thread);
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    type OpenSinkStream = Out<pb::OpenSinkResponse>;

    async fn open_sink(
        &self,
        request: Request<Streaming<pb::OpenSinkRequest>>,
    ) -> Result<Response<Self::OpenSinkStream>, Status> {
        let mut input = request.into_inner();
        let open = match input.message().await? {
            Some(pb::OpenSinkRequest { message: Some(pb::open_sink_request::Message::Open(open)) }) => open,
            _ => return Err(Status::invalid_argument("the first message of OpenSink must be SinkOpen")),
        };
        let Some(Symbol::Sink(new)) = self.symbol(&open.sink) else {
            return Err(Status::not_found(format!("this plugin has no sink '{}'", open.sink)));
        };
        let config = crate::value::config_from_struct(open.config.as_ref());
        let rule_id = open.rule_id.clone();
        let sink = tokio::task::spawn_blocking(move || -> Result<Box<dyn Sink>, Status> {
            let mut sink = guarded(|| Ok(new())).map_err(Status::internal)?;
            guarded(|| sink.configure(&config)).map_err(Status::invalid_argument)?;
            guarded(|| sink.open(&Context { rule_id: &rule_id })).map_err(Status::unavailable)?;
            Ok(sink)
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))??;
        let (ack_tx, ack_rx) = mpsc::channel(16);
        // The acknowledgement of the open sink (the protocol's batch 0).
        let _ = ack_tx.try_send(Ok(pb::OpenSinkResponse { batch_id: 0, error: String::new() }));
        let (batch_tx, batch_rx) = std::sync::mpsc::sync_channel::<pb::SinkBatch>(4);
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || write(sink, batch_rx, ack_tx, stop))
        };
        self.instances.add(Arc::clone(&stop), thread);
        tokio::spawn(async move {
            while let Ok(Some(pb::OpenSinkRequest { message: Some(pb::open_sink_request::Message::Batch(batch)) })) =
                input.message().await
            {
                let sender = batch_tx.clone();
                let sent = tokio::task::spawn_blocking(move || sender.send(batch).is_ok()).await;
                if !matches!(sent, Ok(true)) {
                    break;
                }
            }
            // Stream end: the writer closes the instance once the batches are written.
            drop(batch_tx);
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(ack_rx))))
    }

    async fn shutdown(&self, _: Request<pb::ShutdownRequest>) -> Result<Response<pb::ShutdownResponse>, Status> {
        self.shutdown.send_replace(true);
        Ok(Response::new(pb::ShutdownResponse {}))
    }
}

/// Reads a source on its own thread until the server cancels, the source
/// ends or fails, or the plugin shuts down; then closes it.
fn pump(mut source: Box<dyn Source>, tx: mpsc::Sender<Result<pb::OpenSourceResponse, Status>>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Acquire) && !tx.is_closed() {
        match guarded(|| source.read(READ_TIMEOUT)) {
            Ok(Some(events)) if events.is_empty() => {}
            Ok(Some(events)) => {
                let response = pb::OpenSourceResponse { events: events.into_iter().map(event_to_wire).collect() };
                if tx.blocking_send(Ok(response)).is_err() {
                    break;
                }
            }
            Ok(None) => break,
            Err(message) => {
                let _ = tx.blocking_send(Err(Status::unavailable(message)));
                break;
            }
        }
    }
    if let Err(error) = guarded(|| source.close()) {
        eprintln!("closing a source failed: {error}");
    }
}

/// Writes a sink's batches on its own thread, acknowledging each; closes the
/// sink when the stream ends or the plugin shuts down.
fn write(
    mut sink: Box<dyn Sink>,
    batches: std::sync::mpsc::Receiver<pb::SinkBatch>,
    acks: mpsc::Sender<Result<pb::OpenSinkResponse, Status>>,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::Acquire) {
        let batch = match batches.recv_timeout(READ_TIMEOUT) {
            Ok(batch) => batch,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => continue,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        };
        let rows: Vec<Row> = batch.events.iter().map(|e| map_from_wire(&e.fields)).collect();
        let error = guarded(|| sink.collect(&rows)).err().unwrap_or_default();
        if acks.blocking_send(Ok(pb::OpenSinkResponse { batch_id: batch.batch_id, error })).is_err() {
            break;
        }
    }
    if let Err(error) = guarded(|| sink.close()) {
        eprintln!("closing a sink failed: {error}");
    }
}

fn refuse(message: &str) -> ! {
    eprintln!("{message}");
    std::process::exit(1)
}

/// Serves `init()`'s plugin as a portable plugin process; never returns.
/// Call it from `main` (the `serve_portable` that
/// [`export_plugin!`](crate::export_plugin) generates does).
pub fn serve(init: impl FnOnce() -> Plugin) -> ! {
    if std::env::var(MAGIC_COOKIE.0).ok().as_deref() != Some(MAGIC_COOKIE.1) {
        refuse(
            "This program is an Oort plugin: it is meant to be started by oortd, not run by hand. \
             Install its package with `oort plugin install <name> --portable --file <zip>`.",
        );
    }
    match std::env::var("OORT_PLUGIN_PROTOCOL") {
        Ok(v) if v.trim() == PROTOCOL_VERSION.to_string() => {}
        other => refuse(&format!(
            "This plugin speaks Oort plugin protocol {PROTOCOL_VERSION}, but the server asked for {:?}: \
             use a server and an SDK of the same protocol version.",
            other.unwrap_or_default()
        )),
    }
    let Ok(socket) = std::env::var("OORT_PLUGIN_SOCKET") else { refuse("OORT_PLUGIN_SOCKET is not set") };
    let grace = std::env::var("OORT_PLUGIN_SHUTDOWN_GRACE_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(Duration::from_secs(2), Duration::from_millis);
    let plugin: &'static Plugin = match catch_unwind(AssertUnwindSafe(init)) {
        Ok(plugin) => Box::leak(Box::new(plugin)),
        Err(panic) => refuse(&format!("building the plugin panicked: {}", panic_message(&*panic))),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => refuse(&format!("cannot start the runtime: {e}")),
    };
    let code = runtime.block_on(run(plugin, socket, grace));
    std::process::exit(code)
}

async fn run(plugin: &'static Plugin, socket: String, grace: Duration) -> i32 {
    let _ = std::fs::remove_file(&socket);
    let listener = match tokio::net::UnixListener::bind(&socket) {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("cannot listen on {socket}: {e}");
            return 1;
        }
    };
    {
        use std::os::unix::fs::PermissionsExt;
        if let Err(e) = std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600)) {
            eprintln!("cannot make {socket} private: {e}");
            return 1;
        }
    }
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_service_status("", tonic_health::ServingStatus::Serving).await;
    health.set_service_status("oort.plugin.v1.PluginService", tonic_health::ServingStatus::Serving).await;
    let (shutdown, stop_rx) = tokio::sync::watch::channel(false);
    let shutdown = Arc::new(shutdown);
    let instances = Arc::new(Instances::default());
    let service = Service { plugin, instances: Arc::clone(&instances), shutdown: Arc::clone(&shutdown) };

    // stdin EOF: the server is gone (or wants us gone).
    {
        let shutdown = Arc::clone(&shutdown);
        std::thread::spawn(move || {
            let mut buf = [0u8; 256];
            let mut stdin = std::io::stdin();
            while matches!(std::io::Read::read(&mut stdin, &mut buf), Ok(n) if n > 0) {}
            shutdown.send_replace(true);
        });
    }
    let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
    let stopping = {
        let mut stop = stop_rx.clone();
        async move {
            let _ = stop.wait_for(|v| *v).await.map(|_| ());
            // Close every instance first: their streams then end and the server can stop.
            let _ = tokio::task::spawn_blocking(move || instances.close_all(grace)).await;
        }
    };
    let server = tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(
            PluginServiceServer::new(service)
                .max_decoding_message_size(64 * 1024 * 1024)
                .max_encoding_message_size(64 * 1024 * 1024),
        )
        .serve_with_incoming_shutdown(incoming, stopping);
    println!("OORT_PLUGIN|{PROTOCOL_VERSION}|unix|{socket}");
    let _ = std::io::stdout().flush();
    let mut stop = stop_rx;
    let served = tokio::select! {
        served = server => served,
        // Streams still open cannot hold the process much past the grace period.
        () = async {
            let _ = stop.wait_for(|v| *v).await.map(|_| ());
            tokio::time::sleep(grace + Duration::from_millis(200)).await;
        } => Ok(()),
    };
    let _ = std::fs::remove_file(&socket);
    match served {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("serving failed: {e}");
            1
        }
    }
}
