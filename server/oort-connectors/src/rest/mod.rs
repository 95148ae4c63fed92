//! The `rest` sink, as eKuiper's: each payload of a result is sent as one HTTP
//! request.
//!
//! ```json
//! {"rest": {"url": "http://127.0.0.1:8080/api/alerts", "sendSingle": true,
//!           "headers": {"Authorization": "Bearer t0k3n"},
//!           "dataTemplate": "{\"device\": \"{{ device }}\", \"t\": {{ temperature }}}"}}
//! ```
//!
//! | property | meaning |
//! |---|---|
//! | `url` | Required. An `http://` or `https://` URL. Internal addresses (loopback, private, link-local...) are refused unless the server's `egress_allow` names them ([`oort_policy::egress`]): an address in the URL when the rule is created, a name when it resolves, and every redirect hop. |
//! | `method` | `get`, `post`, `put`, `patch`, `delete` or `head`, any case. Default `POST` (eKuiper's is `GET`). |
//! | `headers` | A map of header names to string values, added to every request. |
//! | `bodyType` | `json` (default; `none` for GET and HEAD), `text`, `html`, `xml`, `javascript`, or `none` (no body: the payload is not sent). Sets `Content-Type` (`application/json`, `text/plain`, `text/html`, `application/xml`, `application/javascript`) unless `headers` has one. |
//! | `timeout` | Milliseconds for a whole request; default 5000; `0` means none. |
//! | `insecureSkipVerify` | `true` accepts any TLS certificate. Default `false` (eKuiper's is `true`). |
//! | `debugResp` | `true` logs each response's status and body at debug level. |
//! | common properties | `sendSingle`, `dataTemplate`, `dataField`, `fields`, `format`, `omitIfEmpty`: see [`crate::encode`]. |
//!
//! A connection error, a timeout, or a status other than 2xx is a
//! `ConnectorError::External` (the message has the status and the start of the
//! response body), and the engine retries the result with backoff; requests of
//! that result that already succeeded are not sent again by the retry. A result
//! that cannot be encoded (a template failing on a row) is dropped with a
//! warning in the server log, as retrying could only fail again. Redirects
//! are followed (up to 10). TLS uses rustls with the system's root certificates.
//!
//! Every request carries `Idempotency-Key: <rule id>:<result number>:<request
//! of the result>` (the result number as [`oort_engine::Sink::collect_numbered`]
//! gives it: for a rule at `qos` ≥ 1, the same when a restart replays the
//! result), so that a receiver can drop what it already has.
//!
//! # Not supported yet
//!
//! `bodyType: "form"`, client certificates and custom CAs (`certificationPath`,
//! `privateKeyPath`, `rootCaPath`), `oAuth`, dynamic properties (templates in
//! `url`, `method`, `headers`, `bodyType`), `compression`, and
//! `resendDestination`: all rejected when set.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use oort_engine::{ConnectorError, ConnectorOption, Map, OptionKind, Sink, SinkConfig, SinkFactory};
use oort_policy::EgressPolicy;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, Url};
use serde::Deserialize;

use crate::encode::{Progress, SinkEncoder, props_subset};

/// Builds `rest` sinks.
pub struct RestSinkFactory(pub Arc<EgressPolicy>);

/// eKuiper rest sink properties Oort does not implement yet: rejected when set.
const UNSUPPORTED_KEYS: [&str; 5] = ["certificationPath", "privateKeyPath", "rootCaPath", "oAuth", "resendDestination"];

/// Default request timeout, in milliseconds (eKuiper's).
const DEFAULT_TIMEOUT_MS: u64 = 5000;

/// How much of an error response's body goes into the error message.
const ERROR_BODY_CHARS: usize = 512;

/// The rest sink's own properties, as written in a rule action.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
struct RestSinkProps {
    /// The endpoint, `http://` or `https://`.
    url: Option<String>,
    /// The HTTP method; POST by default.
    method: Option<String>,
    /// Headers added to every request.
    headers: BTreeMap<String, String>,
    /// `json`, `text`, `html`, `xml`, `javascript` or `none`.
    body_type: Option<String>,
    /// Request timeout in milliseconds; 0 for none.
    timeout: Option<u64>,
    /// Accept any TLS certificate.
    insecure_skip_verify: bool,
    /// Log responses at debug level.
    debug_resp: bool,
}

struct RestSink {
    client: reqwest::Client,
    method: Method,
    url: Url,
    headers: HeaderMap,
    /// Whether payloads are sent as the body.
    send_body: bool,
    debug_resp: bool,
    encoder: SinkEncoder,
    /// How far the current result got, so that a retry sends only the rest.
    progress: Progress,
    /// The rule's id, and the number of the result being sent: its requests'
    /// `Idempotency-Key`.
    rule_id: String,
    sequence: Option<u64>,
}

/// The rest sink's own properties (module documentation); the common ones
/// are the encoder's.
const OPTIONS: &[ConnectorOption] = &[
    ConnectorOption {
        key: "url",
        kind: OptionKind::Text,
        default: "",
        description: "Required. An http:// or https:// URL; internal addresses need egress_allow.",
    },
    ConnectorOption {
        key: "method",
        kind: OptionKind::OneOf(&["get", "post", "put", "delete", "head", "patch"]),
        default: "post",
        description: "The HTTP method.",
    },
    ConnectorOption {
        key: "headers",
        kind: OptionKind::Object,
        default: "",
        description: "Headers added to every request.",
    },
    ConnectorOption {
        key: "bodyType",
        kind: OptionKind::OneOf(&["json", "text", "html", "xml", "javascript", "none"]),
        default: "json",
        description: "What the body is; none sends no body.",
    },
    ConnectorOption {
        key: "timeout",
        kind: OptionKind::Millis,
        default: "5000",
        description: "Request timeout in milliseconds; 0 for none.",
    },
    ConnectorOption {
        key: "insecureSkipVerify",
        kind: OptionKind::Bool,
        default: "false",
        description: "Accept any TLS certificate.",
    },
    ConnectorOption {
        key: "debugResp",
        kind: OptionKind::Bool,
        default: "false",
        description: "Log responses at debug level.",
    },
];

impl SinkFactory for RestSinkFactory {
    fn description(&self) -> &'static str {
        "Sends results to an HTTP(S) endpoint, under the egress policy."
    }

    fn options(&self) -> Option<Vec<ConnectorOption>> {
        Some([OPTIONS, crate::encode::COMMON_OPTIONS].concat())
    }

    fn build(&self, config: &SinkConfig) -> Result<Box<dyn Sink>, ConnectorError> {
        Ok(Box::new(build_sink(config, &self.0)?))
    }
}

/// Checks an action's properties and builds the sink.
fn build_sink(config: &SinkConfig, egress: &Arc<EgressPolicy>) -> Result<RestSink, ConnectorError> {
    for key in UNSUPPORTED_KEYS {
        if config.props.get(key).is_some_and(|v| !v.is_null() && v.as_str() != Some("")) {
            return Err(ConnectorError::Config(format!("the rest property `{key}` is not supported yet")));
        }
    }
    let props: RestSinkProps = props_subset(&config.props, &crate::encode::keys(OPTIONS))?;
    let encoder = SinkEncoder::of(config)?;

    let url = props
        .url
        .filter(|u| !u.is_empty())
        .ok_or_else(|| ConnectorError::Config("a rest action needs the property `url`".into()))?;
    let dynamic = |what: &str, text: &str| {
        if text.contains("{{") {
            Err(ConnectorError::Config(format!(
                "rest `{what}` {text:?}: templates (dynamic properties) are not supported yet"
            )))
        } else {
            Ok(())
        }
    };
    dynamic("url", &url)?;
    let url = Url::parse(&url).map_err(|e| ConnectorError::Config(format!("rest `url` {url:?}: {e}")))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(ConnectorError::Config(format!("rest `url` must be http:// or https://, got {url}")));
    }
    // An address in the URL is refused now; a name, when it is resolved.
    egress.check_url(&url).map_err(|e| ConnectorError::Config(format!("rest `url`: {e}")))?;

    let method = match props.method.as_deref().filter(|m| !m.is_empty()) {
        None => Method::POST,
        Some(m) => {
            dynamic("method", m)?;
            match m.to_ascii_uppercase().as_str() {
                "GET" => Method::GET,
                "POST" => Method::POST,
                "PUT" => Method::PUT,
                "PATCH" => Method::PATCH,
                "DELETE" => Method::DELETE,
                "HEAD" => Method::HEAD,
                _ => {
                    return Err(ConnectorError::Config(format!(
                        "rest `method` must be get, post, put, patch, delete or head, got {m:?}"
                    )));
                }
            }
        }
    };

    let default_body = if method == Method::GET || method == Method::HEAD { "none" } else { "json" };
    let body_type = props.body_type.filter(|b| !b.is_empty()).unwrap_or_else(|| default_body.to_owned());
    dynamic("bodyType", &body_type)?;
    let content_type = match body_type.to_ascii_lowercase().as_str() {
        "none" => None,
        "json" => Some("application/json"),
        "text" => Some("text/plain"),
        "html" => Some("text/html"),
        "xml" => Some("application/xml"),
        "javascript" => Some("application/javascript"),
        "form" => return Err(ConnectorError::Config("rest `bodyType` \"form\" is not supported yet".into())),
        other => {
            return Err(ConnectorError::Config(format!(
                "rest `bodyType` must be json, text, html, xml, javascript or none, got {other:?}"
            )));
        }
    };

    let mut headers = HeaderMap::new();
    for (name, value) in &props.headers {
        dynamic("headers", value)?;
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| ConnectorError::Config(format!("rest `headers`: invalid header name {name:?}")))?;
        let value = HeaderValue::from_str(value)
            .map_err(|_| ConnectorError::Config(format!("rest `headers`: invalid value for {name:?}")))?;
        headers.append(header, value);
    }
    if let Some(content_type) = content_type
        && !headers.contains_key(CONTENT_TYPE)
    {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    }

    // reqwest is built without a TLS crypto provider (ring rather than its aws-lc-rs); an
    // installed one stays.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut client =
        egress.http_client(reqwest::Client::builder()).danger_accept_invalid_certs(props.insecure_skip_verify);
    match props.timeout.unwrap_or(DEFAULT_TIMEOUT_MS) {
        0 => {}
        ms => client = client.timeout(Duration::from_millis(ms)),
    }
    let client =
        client.build().map_err(|e| ConnectorError::Config(format!("rest: cannot build the HTTP client: {e}")))?;

    Ok(RestSink {
        client,
        method,
        url,
        headers,
        send_body: content_type.is_some(),
        debug_resp: props.debug_resp,
        encoder,
        progress: Progress::default(),
        rule_id: config.rule_id.clone(),
        sequence: None,
    })
}

impl RestSink {
    /// Sends request `index` of the current result.
    async fn send(&self, index: usize, payload: &[u8]) -> Result<(), ConnectorError> {
        let mut request = self.client.request(self.method.clone(), self.url.clone()).headers(self.headers.clone());
        if let Some(sequence) = self.sequence {
            request = request.header("idempotency-key", format!("{}:{sequence}:{index}", self.rule_id));
        }
        if self.send_body {
            request = request.body(payload.to_vec());
        }
        let what = || format!("rest {} {}", self.method, self.url);
        let response =
            request.send().await.map_err(|e| ConnectorError::External(format!("{}: {}", what(), chain(&e))))?;
        let status = response.status();
        if status.is_success() && !self.debug_resp {
            return Ok(());
        }
        let body = response.text().await.unwrap_or_default();
        if self.debug_resp {
            tracing::debug!(method = %self.method, url = %self.url, %status, body = %body, "rest sink response");
        }
        if status.is_success() {
            return Ok(());
        }
        let mut body: String = body.chars().take(ERROR_BODY_CHARS).collect();
        if !body.is_empty() {
            body.insert_str(0, ": ");
        }
        Err(ConnectorError::External(format!("{}: the server answered {status}{body}", what())))
    }
}

/// An error with its causes, which reqwest keeps out of its own message.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[async_trait]
impl Sink for RestSink {
    async fn collect(&mut self, rows: &[Map]) -> Result<(), ConnectorError> {
        let payloads = match self.encoder.encode(rows) {
            Ok(payloads) => payloads,
            Err(e) => {
                // Encoding the same rows again would fail the same way: drop them.
                tracing::warn!(url = %self.url, error = %e, "rest sink: result dropped");
                return Ok(());
            }
        };
        // The engine retries a failed result until it succeeds: skip what already went out.
        let done = self.progress.start(payloads.iter().map(Vec::as_slice));
        for (i, payload) in payloads.iter().enumerate().skip(done) {
            if let Err(e) = self.send(i, payload).await {
                self.progress.failed_at(i);
                return Err(e);
            }
        }
        self.progress.done();
        Ok(())
    }

    async fn collect_numbered(&mut self, sequence: u64, rows: &[Map]) -> Result<(), ConnectorError> {
        self.sequence = Some(sequence);
        let sent = self.collect(rows).await;
        self.sequence = None;
        sent
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(props: serde_json::Value) -> SinkConfig {
        let serde_json::Value::Object(props) = props else { panic!("props must be an object") };
        SinkConfig { sink_type: "rest".into(), props, rule_id: "r".into(), ..Default::default() }
    }

    fn config_error(props: serde_json::Value) -> String {
        match RestSinkFactory(Arc::new(EgressPolicy::allow_all())).build(&config(props)) {
            Err(ConnectorError::Config(m)) => m,
            Err(other) => panic!("expected a config error, got {other:?}"),
            Ok(_) => panic!("expected a config error"),
        }
    }

    #[test]
    fn config_errors() {
        assert!(config_error(json!({})).contains("`url`"));
        assert!(config_error(json!({"url": ""})).contains("`url`"));
        assert!(config_error(json!({"url": "not a url"})).contains("`url`"));
        assert!(config_error(json!({"url": "ftp://h/x"})).contains("http://"));
        assert!(config_error(json!({"url": "http://h/{{.id}}"})).contains("not supported yet"));
        assert!(config_error(json!({"url": "http://h", "method": "fetch"})).contains("`method`"));
        assert!(config_error(json!({"url": "http://h", "bodyType": "form"})).contains("not supported yet"));
        assert!(config_error(json!({"url": "http://h", "bodyType": "yaml"})).contains("`bodyType`"));
        assert!(config_error(json!({"url": "http://h", "timeout": -1})).contains("property `timeout`"));
        assert!(config_error(json!({"url": "http://h", "headers": ["a"]})).contains("property `headers`"));
        assert!(config_error(json!({"url": "http://h", "headers": {"a b": "x"}})).contains("header name"));
        assert!(config_error(json!({"url": "http://h", "headers": {"a": "x\ny"}})).contains("invalid value"));
        assert!(config_error(json!({"url": "http://h", "headers": {"a": "{{.t}}"}})).contains("not supported yet"));
        assert!(config_error(json!({"url": "http://h", "oAuth": {"access": {}}})).contains("oAuth"));
        assert!(config_error(json!({"url": "http://h", "insecureSkipVerify": "no"})).contains("insecureSkipVerify"));
        assert!(config_error(json!({"url": "http://h", "dataTemplate": "{{"})).contains("dataTemplate"));
    }

    #[test]
    fn defaults() {
        let sink =
            build_sink(&config(json!({"url": "https://example.com/x"})), &Arc::new(EgressPolicy::allow_all())).unwrap();
        assert_eq!(sink.method, Method::POST);
        assert!(sink.send_body);
        assert_eq!(sink.headers.get(CONTENT_TYPE).unwrap(), "application/json");
        let sink =
            build_sink(&config(json!({"url": "http://h", "method": "get"})), &Arc::new(EgressPolicy::allow_all()))
                .unwrap();
        assert_eq!(sink.method, Method::GET);
        assert!(!sink.send_body && sink.headers.is_empty());
        let sink = build_sink(
            &config(json!({
                "url": "http://h", "method": "Put", "bodyType": "text", "timeout": 0, "insecureSkipVerify": true,
                "headers": {"content-type": "text/csv", "X-Key": "k"},
            })),
            &Arc::new(EgressPolicy::allow_all()),
        )
        .unwrap();
        assert_eq!(sink.method, Method::PUT);
        assert_eq!(sink.headers.get(CONTENT_TYPE).unwrap(), "text/csv");
        assert_eq!(sink.headers.get("x-key").unwrap(), "k");
        let sink =
            build_sink(&config(json!({"url": "http://h", "bodyType": "xml"})), &Arc::new(EgressPolicy::allow_all()))
                .unwrap();
        assert_eq!(sink.headers.get(CONTENT_TYPE).unwrap(), "application/xml");
    }
}
