//! The file sink of a `path` template (`out/{{.device}}.jsonl`): each row
//! (with `sendSingle`) or result goes to the file its values name, each file
//! written as a sink of a fixed path would write it. At most
//! [`MAX_OPEN_FILES`] are open: the one used longest ago is closed (its
//! results written) to open another. The rendered path must lie inside the
//! file roots like any other; a row whose path cannot be rendered or is
//! outside them is dropped with a warning, as a row that cannot be encoded.
//!
//! A checkpoint writes and syncs every open file, but a rule restarting
//! from it cannot take back what it wrote after it into a file first
//! opened since: with a path template, a rule gets at least once, and its
//! status says so.

use std::collections::HashMap;

use async_trait::async_trait;
use oort_engine::{ConnectorError, Map, Sink, SinkConfig, SinkFactory};

use super::FileSinkFactory;
use crate::encode::{DynamicProp, SinkEncoder};

/// The most files a sink keeps open at once.
pub const MAX_OPEN_FILES: usize = 64;

/// Whether a path is a template.
pub(super) fn is_template(path: &str) -> bool {
    path.contains("{{") || path.contains("{%")
}

pub(super) struct DynamicFileSink {
    factory: FileSinkFactory,
    /// The action, with the path each file's sink replaces.
    config: SinkConfig,
    path: DynamicProp,
    send_single: bool,
    /// Each open file's sink, and when it was last used.
    files: HashMap<String, (Box<dyn Sink>, u64)>,
    uses: u64,
}

impl DynamicFileSink {
    pub(super) fn build(
        factory: &FileSinkFactory,
        config: &SinkConfig,
        path: &str,
    ) -> Result<Box<dyn Sink>, ConnectorError> {
        let encoder = SinkEncoder::of(config)?;
        let mut config = config.clone();
        // A file's sink cannot take back what follows a checkpoint here (see the module documentation).
        config.rewind_to = None;
        Ok(Box::new(Self {
            factory: FileSinkFactory(std::sync::Arc::clone(&factory.0)),
            config,
            path: DynamicProp::new("path", path)?,
            send_single: encoder.send_single(),
            files: HashMap::new(),
            uses: 0,
        }))
    }

    /// The sink of the file at `path`, opened (and another closed) if need be.
    async fn file(&mut self, path: &str) -> Result<&mut Box<dyn Sink>, ConnectorError> {
        self.uses += 1;
        if !self.files.contains_key(path) {
            if self.files.len() >= MAX_OPEN_FILES
                && let Some(oldest) = self.files.iter().min_by_key(|(_, (_, used))| *used).map(|(p, _)| p.clone())
                && let Some((mut sink, _)) = self.files.remove(&oldest)
            {
                sink.close().await?;
            }
            let mut config = self.config.clone();
            config.props.insert("path".into(), serde_json::Value::String(path.to_owned()));
            let mut sink = self.factory.build(&config)?;
            sink.open().await?;
            self.files.insert(path.to_owned(), (sink, self.uses));
        }
        let (sink, used) = self.files.get_mut(path).expect("inserted");
        *used = self.uses;
        Ok(sink)
    }
}

#[async_trait]
impl Sink for DynamicFileSink {
    async fn collect(&mut self, rows: &[Map]) -> Result<(), ConnectorError> {
        // Each file's rows, in the order they came.
        let mut groups: Vec<(String, Vec<Map>)> = Vec::new();
        let mut add = |path: String, rows: &[Map]| match groups.iter_mut().find(|(p, _)| *p == path) {
            Some((_, held)) => held.extend_from_slice(rows),
            None => groups.push((path, rows.to_vec())),
        };
        let rendered: Vec<(Result<String, ConnectorError>, &[Map])> = if self.send_single {
            rows.iter().map(|row| (self.path.render_row(row), std::slice::from_ref(row))).collect()
        } else {
            vec![(self.path.render_rows(rows), rows)]
        };
        for (path, rows) in rendered {
            match path {
                Ok(path) => add(path, rows),
                Err(e) => tracing::warn!(error = %e, "file sink: the path of a result cannot be rendered; dropped"),
            }
        }
        for (path, rows) in groups {
            match self.file(&path).await {
                Ok(sink) => sink.collect(&rows).await?,
                Err(ConnectorError::Config(e)) => {
                    tracing::warn!(path, error = %e, "file sink: the result's file cannot be written; dropped");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Writes and syncs every open file; nothing to rewind to.
    async fn flush(&mut self) -> Result<Option<Vec<u8>>, ConnectorError> {
        for (sink, _) in self.files.values_mut() {
            sink.flush().await?;
        }
        Ok(None)
    }

    async fn close(&mut self) -> Result<(), ConnectorError> {
        for (_, (mut sink, _)) in self.files.drain() {
            sink.close().await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use oort_engine::Value;
    use oort_policy::FileRoots;
    use serde_json::json;

    use super::*;

    fn row(device: &str, n: i64) -> Map {
        [(Arc::from("device"), Value::from(device)), (Arc::from("n"), Value::Int(n))].into_iter().collect()
    }

    #[tokio::test]
    async fn each_row_goes_to_the_file_its_values_name() {
        let dir = tempfile::tempdir().unwrap();
        let factory = FileSinkFactory(Arc::new(FileRoots::create([dir.path().to_path_buf()]).unwrap()));
        let props = json!({"path": "by/{{.device}}.jsonl", "sendSingle": true, "interval": 0});
        assert!(!factory.rewinds(props.as_object().unwrap()), "at least once with a template");
        let config = SinkConfig { props: props.as_object().cloned().unwrap(), ..Default::default() };
        let mut sink = factory.build(&config).unwrap();
        sink.collect(&[row("a", 1), row("b", 2), row("a", 3), row("../../x", 4)]).await.unwrap();
        sink.close().await.unwrap();
        let read = |name: &str| std::fs::read_to_string(dir.path().join("by").join(name)).unwrap();
        assert_eq!(read("a.jsonl"), "{\"device\":\"a\",\"n\":1}\n{\"device\":\"a\",\"n\":3}\n");
        assert_eq!(read("b.jsonl"), "{\"device\":\"b\",\"n\":2}\n");
        assert!(!dir.path().join("x.jsonl").exists(), "a path outside the roots is not written");
    }
}
