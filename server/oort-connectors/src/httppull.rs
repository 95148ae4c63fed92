//! The `httppull` source, as eKuiper's: the server requests a URL every
//! `INTERVAL` and each response becomes events.
//!
//! ```sql
//! CREATE STREAM prices () WITH (TYPE="httppull", DATASOURCE="https://api.example/prices?since={{.LastPullTime}}",
//!   INTERVAL="5000", INCREMENTAL="true")
//! ```
//!
//! | option | meaning |
//! |---|---|
//! | `DATASOURCE` | The URL, `http://` or `https://`; may hold `{{.PullTime}}` and `{{.LastPullTime}}` (Unix ms; the first pull's `LastPullTime` is one `INTERVAL` before it), as eKuiper's dynamic properties. |
//! | `METHOD` | `GET` (default), `POST`, `PUT` or `DELETE`. |
//! | `INTERVAL` | Milliseconds between two requests; default 10000, at least 100. |
//! | `TIMEOUT` | Milliseconds for one request; default 5000. |
//! | `BODY` | The request body (templates as in the URL); `BODY_TYPE` `json` (default), `text` or `none`. |
//! | `HEADERS` | A JSON object of header names to values, e.g. `{"Accept": "application/json"}`. |
//! | `INCREMENTAL` | `true`: a response equal to the previous one is skipped. |
//! | `RESPONSE_TYPE` | `code` (default): a 2xx status is success; `body`: the JSON body's `code` field must be 200 too. |
//!
//! A JSON array in the response is one event per element; anything else is
//! one event, decoded per the stream's FORMAT. A failed request (connection,
//! timeout, status) is counted as an exception of the source operator, and
//! the next one is made at the next interval. Responses are read up to
//! 16 MiB; a larger one is refused. The URL passes the server's egress
//! policy, checked on every address connected to and every redirect.
//!
//! Not supported yet, and refused: headers that carry secrets (a stream's
//! options are returned by `GetStream`; put them in a named connection when
//! that comes for HTTP), `states`, `oAuth`, TLS client certificates.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use oort_engine::{
    ConnectorError, ConnectorOption, OptionKind, Payload, Source, SourceConfig, SourceEvent, SourceFactory,
    SourceOutput,
};
use oort_policy::EgressPolicy;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, Url};
use tokio_util::sync::CancellationToken;

/// The largest response read.
const MAX_RESPONSE_BYTES: usize = 16 << 20;

/// The options of an `httppull` stream (module documentation).
pub const OPTIONS: &[ConnectorOption] = &[
    ConnectorOption {
        key: "METHOD",
        kind: OptionKind::OneOf(&["GET", "POST", "PUT", "DELETE"]),
        default: "GET",
        description: "The request's method.",
    },
    ConnectorOption {
        key: "INTERVAL",
        kind: OptionKind::Count,
        default: "10000",
        description: "Milliseconds between two requests (at least 100).",
    },
    ConnectorOption {
        key: "TIMEOUT",
        kind: OptionKind::Count,
        default: "5000",
        description: "Milliseconds for one request.",
    },
    ConnectorOption {
        key: "BODY",
        kind: OptionKind::Text,
        default: "",
        description: "The request body; {{.PullTime}} and {{.LastPullTime}} are replaced.",
    },
    ConnectorOption {
        key: "BODY_TYPE",
        kind: OptionKind::OneOf(&["json", "text", "none"]),
        default: "json",
        description: "The body's Content-Type: application/json, text/plain, or no body.",
    },
    ConnectorOption {
        key: "HEADERS",
        kind: OptionKind::Text,
        default: "",
        description: "A JSON object of header names to values; no credentials.",
    },
    ConnectorOption {
        key: "INCREMENTAL",
        kind: OptionKind::Bool,
        default: "false",
        description: "Skip a response equal to the previous one.",
    },
    ConnectorOption {
        key: "RESPONSE_TYPE",
        kind: OptionKind::OneOf(&["code", "body"]),
        default: "code",
        description: "code: a 2xx status is success; body: the JSON body's code field must be 200 too.",
    },
];

/// Builds `httppull` sources, whose requests pass the egress policy.
pub struct HttpPullSourceFactory(pub Arc<EgressPolicy>);

/// A stream's options, checked.
#[derive(Debug, Clone)]
struct PullConfig {
    url: String,
    method: Method,
    interval: Duration,
    timeout: Duration,
    body: Option<String>,
    headers: HeaderMap,
    incremental: bool,
    check_body: bool,
}

impl PullConfig {
    fn of(config: &SourceConfig, egress: &EgressPolicy) -> Result<Self, ConnectorError> {
        let option = |key: &str| config.options.get(key).map(|v| v.trim()).filter(|v| !v.is_empty());
        let invalid = |key: &str, message: String| ConnectorError::Option { key: key.into(), message };
        let millis = |key: &str, default: u64| -> Result<Duration, ConnectorError> {
            match option(key) {
                None => Ok(Duration::from_millis(default)),
                Some(v) => {
                    v.parse::<u64>().ok().filter(|ms| *ms <= 3_600_000).map(Duration::from_millis).ok_or_else(|| {
                        invalid(key, format!("httppull: {key} is milliseconds, at most an hour; got {v:?}"))
                    })
                }
            }
        };
        let url = config.datasource.trim().to_owned();
        let parsed = Url::parse(&render(&url, 0, 0))
            .map_err(|e| ConnectorError::Config(format!("httppull: DATASOURCE {url:?} is not a URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(ConnectorError::Config(format!("httppull: DATASOURCE {url:?} must be http:// or https://")));
        }
        egress.check_url(&parsed).map_err(|e| ConnectorError::Config(format!("httppull: {e}")))?;
        let method = match option("METHOD").map(str::to_ascii_uppercase).as_deref() {
            None | Some("GET") => Method::GET,
            Some("POST") => Method::POST,
            Some("PUT") => Method::PUT,
            Some("DELETE") => Method::DELETE,
            Some(other) => {
                return Err(invalid("METHOD", format!("httppull: METHOD {other:?} is GET, POST, PUT or DELETE")));
            }
        };
        let interval = millis("INTERVAL", 10_000)?;
        if interval < Duration::from_millis(100) {
            return Err(invalid("INTERVAL", "httppull: INTERVAL is at least 100 ms".into()));
        }
        let mut headers = HeaderMap::new();
        let body_type = option("BODY_TYPE").map(str::to_ascii_lowercase);
        let body = match body_type.as_deref() {
            Some("none") => None,
            Some("text") => {
                headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
                option("BODY").map(str::to_owned)
            }
            None | Some("json") => {
                headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                option("BODY").map(str::to_owned)
            }
            Some(other) => {
                return Err(invalid("BODY_TYPE", format!("httppull: BODY_TYPE {other:?} is json, text or none")));
            }
        };
        if let Some(text) = option("HEADERS") {
            let map: BTreeMap<String, String> = serde_json::from_str(text)
                .map_err(|e| invalid("HEADERS", format!("httppull: HEADERS must be a JSON object of strings: {e}")))?;
            for (name, value) in map {
                if oort_policy::secrets::is_secret(&name) {
                    return Err(invalid(
                        "HEADERS",
                        format!(
                            "httppull: header {name:?} carries a credential, which a stream's options would show to every reader; not supported yet"
                        ),
                    ));
                }
                let name = HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| invalid("HEADERS", format!("httppull: invalid header name {name:?}")))?;
                let value = HeaderValue::from_str(&value)
                    .map_err(|_| invalid("HEADERS", format!("httppull: invalid value of header {name}")))?;
                headers.insert(name, value);
            }
        }
        let check_body = match option("RESPONSE_TYPE").map(str::to_ascii_lowercase).as_deref() {
            None | Some("code") => false,
            Some("body") => true,
            Some(other) => {
                return Err(invalid("RESPONSE_TYPE", format!("httppull: RESPONSE_TYPE {other:?} is code or body")));
            }
        };
        Ok(Self {
            url,
            method,
            interval,
            timeout: millis("TIMEOUT", 5000)?,
            body,
            headers,
            incremental: option("INCREMENTAL").is_some_and(|v| v.eq_ignore_ascii_case("true")),
            check_body,
        })
    }
}

/// `text` with eKuiper's pull times put in.
fn render(text: &str, pull_time: i64, last_pull_time: i64) -> String {
    text.replace("{{.PullTime}}", &pull_time.to_string()).replace("{{.LastPullTime}}", &last_pull_time.to_string())
}

impl SourceFactory for HttpPullSourceFactory {
    fn description(&self) -> &'static str {
        "Polls an HTTP(S) URL every INTERVAL, under the egress policy; DATASOURCE is the URL."
    }

    fn options(&self) -> Option<Vec<ConnectorOption>> {
        Some(OPTIONS.to_vec())
    }

    fn validate(&self, config: &SourceConfig) -> Result<(), ConnectorError> {
        PullConfig::of(config, &self.0).map(drop)
    }

    fn build(&self, config: &SourceConfig) -> Result<Box<dyn Source>, ConnectorError> {
        let pull = PullConfig::of(config, &self.0)?;
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = self
            .0
            .http_client(reqwest::Client::builder())
            .timeout(pull.timeout)
            .build()
            .map_err(|e| ConnectorError::Config(format!("httppull: cannot build the HTTP client: {e}")))?;
        Ok(Box::new(HttpPullSource { pull, client }))
    }
}

struct HttpPullSource {
    pull: PullConfig,
    client: reqwest::Client,
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

#[async_trait]
impl Source for HttpPullSource {
    async fn run(self: Box<Self>, out: SourceOutput, cancel: CancellationToken) -> Result<(), ConnectorError> {
        let mut ticks = tokio::time::interval(self.pull.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first pull's window is the interval before it, so the windows
        // [LastPullTime, PullTime) of successive pulls follow each other and
        // none is empty.
        let mut last_pull = now_ms() - i64::try_from(self.pull.interval.as_millis()).unwrap_or(i64::MAX);
        let mut previous: Option<Vec<u8>> = None;
        loop {
            tokio::select! {
                biased;
                () = cancel.cancelled() => return Ok(()),
                _ = ticks.tick() => {}
            }
            let pull_time = now_ms();
            let pulled = tokio::select! {
                biased;
                () = cancel.cancelled() => return Ok(()),
                pulled = self.pull(pull_time, last_pull) => pulled,
            };
            last_pull = pull_time;
            let body = match pulled {
                Ok(body) => body,
                Err(why) => {
                    tracing::warn!(url = %self.pull.url, error = %why, "httppull: request failed");
                    out.record_error(format!("httppull {}: {why}", self.pull.url));
                    continue;
                }
            };
            if self.pull.incremental && previous.as_ref() == Some(&body) {
                continue;
            }
            for payload in split(&body) {
                let meta = Arc::new(BTreeMap::from([("url".to_owned(), self.pull.url.clone())]));
                if out.send(SourceEvent::new(Payload::Bytes(payload), meta)).await.is_err() {
                    return Ok(());
                }
            }
            previous = Some(body);
        }
    }
}

impl HttpPullSource {
    /// One request: the body of a successful response.
    async fn pull(&self, pull_time: i64, last_pull: i64) -> Result<Vec<u8>, String> {
        let url = render(&self.pull.url, pull_time, last_pull);
        let mut request = self.client.request(self.pull.method.clone(), &url).headers(self.pull.headers.clone());
        if let Some(body) = &self.pull.body {
            request = request.body(render(body, pull_time, last_pull));
        }
        let mut response = request.send().await.map_err(|e| e.to_string())?;
        let status = response.status();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
            if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(format!("the response is larger than {MAX_RESPONSE_BYTES} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        if !status.is_success() {
            let start: String = String::from_utf8_lossy(&body).chars().take(200).collect();
            return Err(format!("the server answered {status}: {start}"));
        }
        if self.pull.check_body {
            let code = serde_json::from_slice::<serde_json::Value>(&body).ok().and_then(|v| v.get("code")?.as_i64());
            if code != Some(200) {
                return Err(format!("the response body's code is {code:?}, not 200"));
            }
        }
        Ok(body)
    }
}

/// The events of a response: a JSON array's elements, else the body whole.
fn split(body: &[u8]) -> Vec<Vec<u8>> {
    let trimmed = body.iter().position(|b| !b.is_ascii_whitespace()).map_or(&body[..0], |start| &body[start..]);
    if trimmed.first() == Some(&b'[')
        && let Ok(serde_json::Value::Array(items)) = serde_json::from_slice::<serde_json::Value>(trimmed)
    {
        return items.iter().filter_map(|item| serde_json::to_vec(item).ok()).collect();
    }
    vec![body.to_vec()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(url: &str, options: &[(&str, &str)]) -> Result<PullConfig, ConnectorError> {
        let config = SourceConfig {
            datasource: url.into(),
            options: options.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            ..Default::default()
        };
        PullConfig::of(&config, &EgressPolicy::allow_all())
    }

    #[test]
    fn options_are_checked() {
        let ok = config("http://h/x?since={{.LastPullTime}}", &[("METHOD", "post"), ("INTERVAL", "250")]).unwrap();
        assert_eq!((ok.method, ok.interval), (Method::POST, Duration::from_millis(250)));
        for (url, options, why) in [
            ("ftp://h", vec![], "http://"),
            ("nota url", vec![], "not a URL"),
            ("http://h", vec![("INTERVAL", "10")], "at least 100"),
            ("http://h", vec![("METHOD", "PATCH")], "METHOD"),
            ("http://h", vec![("HEADERS", "[1]")], "JSON object"),
            ("http://h", vec![("HEADERS", r#"{"Authorization": "Bearer x"}"#)], "credential"),
        ] {
            let error = config(url, &options).unwrap_err().to_string();
            assert!(error.contains(why), "{url} {options:?}: {error}");
        }
        let refused = PullConfig::of(
            &SourceConfig { datasource: "http://127.0.0.1:9/".into(), ..Default::default() },
            &EgressPolicy::default(),
        );
        assert!(refused.unwrap_err().to_string().contains("loopback"));
    }

    #[test]
    fn arrays_are_one_event_per_element() {
        assert_eq!(split(br#" [{"a":1},{"a":2}]"#), [br#"{"a":1}"#.to_vec(), br#"{"a":2}"#.to_vec()]);
        assert_eq!(split(br#"{"a":1}"#), [br#"{"a":1}"#.to_vec()]);
        assert_eq!(render("t={{.PullTime}}&l={{.LastPullTime}}", 5, 3), "t=5&l=3");
    }
}
