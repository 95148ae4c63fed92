//! `oort publish STREAM`: JSON lines from stdin or a file into a `TYPE="grpc"`
//! stream, over one client-streaming `EventService.Publish` call.
//!
//! A thread reads and checks the lines and hands batches to the call through a
//! small channel, so a large file is sent as it is read, never held whole.

use std::io::BufRead;
use std::path::Path;

use oort_proto::v1::PublishRequest;
use oort_proto::v1::event_service_client::EventServiceClient;
use serde_json::Value as Json;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::{Ctx, input_name, is_stdin};
use crate::error::Error;

/// Events a request carries at most: the saving of batching is all had by then.
const BATCH_EVENTS: usize = 500;
/// Bytes of JSON a request carries at most, well under the server's message bound.
const BATCH_BYTES: usize = 1 << 20;

/// Publishes every event of `file` (`-`: stdin) to `stream`.
pub async fn run(ctx: &Ctx, stream: String, file: &Path) -> Result<(), Error> {
    let name = input_name(file);
    let input: Box<dyn BufRead + Send> = if is_stdin(file) {
        Box::new(std::io::BufReader::new(std::io::stdin()))
    } else {
        let opened = std::fs::File::open(file).map_err(|e| Error::usage(format!("cannot read {name}: {e}")))?;
        Box::new(std::io::BufReader::new(opened))
    };
    let (batches, received) = mpsc::channel(4);
    let reader = {
        let stream = stream.clone();
        std::thread::spawn(move || read_batches(input, &name, &stream, &batches))
    };
    let mut client = EventServiceClient::new(ctx.long_channel().await?);
    // The call ends when the reader stops: at the end of the input, or at a bad
    // line, after which what was sent before it stays published.
    let accepted = client.publish(ReceiverStream::new(received)).await?.into_inner().accepted;
    let read = reader.join().map_err(|_| Error::usage("the input reader panicked"))?;
    if let Err(error) = read {
        return Err(Error::usage(format!("{error}; the {accepted} event(s) before it were published")));
    }
    if ctx.json {
        println!("{}", serde_json::json!({ "stream": stream, "accepted": accepted }));
    } else {
        println!("{accepted} event(s) published to {stream}");
    }
    Ok(())
}

/// Reads `input` line by line into requests of at most [`BATCH_EVENTS`]
/// events and [`BATCH_BYTES`] bytes. Stops at the first line that is not an
/// object or an array of objects, after sending every event before it, or when
/// the call has ended (then the call's own error is what the user sees).
fn read_batches(
    input: Box<dyn BufRead + Send>,
    name: &str,
    stream: &str,
    batches: &mpsc::Sender<PublishRequest>,
) -> Result<(), String> {
    let mut batch = Batch::default();
    for (index, line) in input.lines().enumerate() {
        let added = line
            .map_err(|e| format!("cannot read {name}: {e}"))
            .and_then(|line| batch.push_line(&line).map_err(|e| format!("{name}, line {}: {e}", index + 1)));
        if let Err(error) = added {
            if batch.events > 0 {
                let _ = batches.blocking_send(batch.take(stream));
            }
            return Err(error);
        }
        if (batch.events >= BATCH_EVENTS || batch.json.len() >= BATCH_BYTES)
            && batches.blocking_send(batch.take(stream)).is_err()
        {
            return Ok(());
        }
    }
    if batch.events > 0 {
        let _ = batches.blocking_send(batch.take(stream));
    }
    Ok(())
}

/// Events gathered as one JSON array, the form `PublishRequest.json` takes.
#[derive(Default)]
struct Batch {
    json: Vec<u8>,
    events: usize,
}

impl Batch {
    /// Adds the events of one line: an object, or an array of objects.
    fn push_line(&mut self, line: &str) -> Result<(), String> {
        let line = line.trim();
        if line.is_empty() {
            return Ok(());
        }
        match serde_json::from_str::<Json>(line).map_err(|e| e.to_string())? {
            Json::Object(_) => self.push(line),
            Json::Array(items) => {
                if let Some(item) = items.iter().find(|item| !item.is_object()) {
                    return Err(format!("an array of events holds only objects, not {item}"));
                }
                for item in &items {
                    self.push(&item.to_string());
                }
            }
            other => return Err(format!("an event is a JSON object, not {other}")),
        }
        Ok(())
    }

    fn push(&mut self, object: &str) {
        self.json.push(if self.events == 0 { b'[' } else { b',' });
        self.json.extend_from_slice(object.as_bytes());
        self.events += 1;
    }

    fn take(&mut self, stream: &str) -> PublishRequest {
        let mut json = std::mem::take(&mut self.json);
        json.push(b']');
        self.events = 0;
        PublishRequest { stream: stream.to_owned(), json, ..Default::default() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batches_of(text: &'static str) -> (Vec<String>, Result<(), String>) {
        let (sender, mut receiver) = mpsc::channel(64);
        let result = read_batches(Box::new(text.as_bytes()), "<stdin>", "s", &sender);
        drop(sender);
        let mut sent = Vec::new();
        while let Ok(request) = receiver.try_recv() {
            assert_eq!(request.stream, "s");
            sent.push(String::from_utf8(request.json.to_vec()).unwrap());
        }
        (sent, result)
    }

    #[test]
    fn lines_of_objects_and_arrays_become_one_json_array() {
        let (sent, result) = batches_of("{\"a\": 1}\n\n[{\"a\": 2}, {\"a\": 3}]\n");
        assert_eq!(result, Ok(()));
        assert_eq!(sent, vec![r#"[{"a": 1},{"a":2},{"a":3}]"#]);
    }

    #[test]
    fn a_bad_line_stops_the_input_naming_its_line_after_what_came_before() {
        let (sent, result) = batches_of("{\"a\": 1}\n{\"a\": \n");
        let error = result.unwrap_err();
        assert!(error.starts_with("<stdin>, line 2: "), "{error}");
        // The good line before it was sent all the same.
        assert_eq!(sent, vec![r#"[{"a": 1}]"#]);
        let (_, result) = batches_of("[1]\n");
        assert!(result.unwrap_err().contains("only objects, not 1"));
    }

    #[test]
    fn batches_are_cut_at_the_event_bound() {
        let text: &'static str = Box::leak("{\"a\": 1}\n".repeat(BATCH_EVENTS + 1).into_boxed_str());
        let (sent, result) = batches_of(text);
        assert_eq!(result, Ok(()));
        assert_eq!(sent.len(), 2);
        assert_eq!(serde_json::from_str::<Vec<Json>>(&sent[1]).unwrap().len(), 1);
    }
}
