//! REST invocation with reqwest, JSON both ways.
//!
//! A method's route follows its `google.api.http` annotation: the verb, the
//! path template (`/v1/items/{id}`, `{name=shelves/*}`, nested `{a.b}`) filled
//! from the request's fields, and `body` (`*`: the fields the path did not
//! use; a field name: that field; none: the other fields go in the query).
//! A method without an annotation is `POST /<Method>` with the whole request
//! as the body. A `google.protobuf.StringValue` request sent as `body: "*"` is
//! sent raw: the string is a pre-encoded JSON body (eKuiper's convention).
//!
//! A schemaless interface takes `fn(verb, path[, body...])`: the body is the
//! JSON of the third argument (several: a JSON array of them); the answer's
//! JSON becomes the value (an empty body is NULL, text that is not JSON a string).

use std::sync::Arc;
use std::time::Duration;

use oort_engine::Value;
use prost_reflect::{DynamicMessage, ExtensionDescriptor, Kind, MethodDescriptor, SerializeOptions};
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};

use oort_policy::EgressPolicy;

use crate::description::Options;
use crate::error::{CallError, ExternalError};
use crate::grpc::MAX_RESPONSE_BYTES;

/// One segment of a path template.
#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Literal(String),
    /// A field path (`a.b`); `multi` when its pattern spans segments (`**`, `a/*`), kept unescaped.
    Field {
        path: Vec<String>,
        multi: bool,
    },
}

/// Where the body comes from.
#[derive(Debug, Clone, PartialEq)]
enum Body {
    None,
    All,
    Field(String),
}

/// How a method maps onto HTTP.
#[derive(Debug, Clone, PartialEq)]
pub struct RestRoute {
    verb: reqwest::Method,
    template: Vec<Segment>,
    body: Body,
}

impl RestRoute {
    /// The route of `method`: its `google.api.http` annotation, or `POST /<Method>`.
    pub fn of(method: &MethodDescriptor) -> Result<Self, ExternalError> {
        let bad = |why: String| ExternalError::Description(format!("method {}: {why}", method.full_name()));
        let annotation = http_extension(method).and_then(|ext| {
            let options = method.options();
            options.has_extension(&ext).then(|| options.get_extension(&ext).into_owned())
        });
        let Some(prost_reflect::Value::Message(rule)) = annotation else {
            return Ok(RestRoute {
                verb: reqwest::Method::POST,
                template: vec![Segment::Literal(format!("/{}", method.name()))],
                body: Body::All,
            });
        };
        let text = |name: &str| rule.get_field_by_name(name).and_then(|v| v.as_str().map(str::to_owned));
        let mut pattern = None;
        for verb in ["get", "put", "post", "delete", "patch"] {
            if rule.has_field_by_name(verb) {
                let method = reqwest::Method::from_bytes(verb.to_ascii_uppercase().as_bytes())
                    .map_err(|e| bad(e.to_string()))?;
                pattern = Some((method, text(verb).unwrap_or_default()));
            }
        }
        if pattern.is_none()
            && let Some(prost_reflect::Value::Message(custom)) =
                rule.get_field_by_name("custom").map(|v| v.into_owned())
        {
            let kind = custom.get_field_by_name("kind").and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
            let path = custom.get_field_by_name("path").and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
            let verb = reqwest::Method::from_bytes(kind.as_bytes()).map_err(|e| bad(format!("custom verb: {e}")))?;
            pattern = Some((verb, path));
        }
        let (verb, path) = pattern.ok_or_else(|| bad("google.api.http has no verb".into()))?;
        let template = parse_template(&path).map_err(bad)?;
        let body = match text("body").unwrap_or_default().as_str() {
            "" => Body::None,
            "*" => Body::All,
            field => {
                if method.input().get_field_by_name(field).is_none() {
                    return Err(bad(format!("body \"{field}\" is not a field of {}", method.input().full_name())));
                }
                Body::Field(field.to_owned())
            }
        };
        for segment in &template {
            if let Segment::Field { path, .. } = segment {
                check_path(&method.input(), path).map_err(bad)?;
            }
        }
        Ok(RestRoute { verb, template, body })
    }
}

fn http_extension(method: &MethodDescriptor) -> Option<ExtensionDescriptor> {
    method.parent_pool().get_extension_by_name("google.api.http")
}

fn check_path(desc: &prost_reflect::MessageDescriptor, path: &[String]) -> Result<(), String> {
    let mut desc = desc.clone();
    for (i, name) in path.iter().enumerate() {
        let field =
            desc.get_field_by_name(name).ok_or_else(|| format!("path field \"{}\" does not exist", path.join(".")))?;
        if i + 1 < path.len() {
            match field.kind() {
                Kind::Message(m) => desc = m,
                _ => return Err(format!("path field \"{}\" does not exist", path.join("."))),
            }
        }
    }
    Ok(())
}

fn parse_template(path: &str) -> Result<Vec<Segment>, String> {
    if !path.starts_with('/') {
        return Err(format!("path template \"{path}\" must start with /"));
    }
    let mut out = Vec::new();
    let mut rest = path;
    while let Some(open) = rest.find('{') {
        if open > 0 {
            out.push(Segment::Literal(rest[..open].to_owned()));
        }
        let close =
            rest[open..].find('}').ok_or_else(|| format!("path template \"{path}\" has an unclosed {{"))? + open;
        let inner = &rest[open + 1..close];
        let (field, pattern) = inner.split_once('=').unwrap_or((inner, "*"));
        out.push(Segment::Field {
            path: field.trim().split('.').map(str::to_owned).collect(),
            multi: pattern.contains("**") || pattern.contains('/'),
        });
        rest = &rest[close + 1..];
    }
    if !rest.is_empty() {
        out.push(Segment::Literal(rest.to_owned()));
    }
    Ok(out)
}

/// The REST side of one interface.
pub struct RestClient {
    http: reqwest::Client,
    egress: Arc<EgressPolicy>,
    base: String,
    retry_count: u32,
    retry_interval: Duration,
    timeout_ms: u64,
}

impl RestClient {
    /// A client of `address` with the interface's options.
    pub fn new(address: &str, options: &Options, egress: &Arc<EgressPolicy>) -> Result<Self, ExternalError> {
        let base = address.trim().trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(ExternalError::Description(format!(
                "REST address \"{address}\" must be an http:// or https:// URL"
            )));
        }
        let mut headers = HeaderMap::new();
        for (k, v) in &options.headers {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| ExternalError::Description(format!("header name \"{k}\" is not valid")))?;
            let value = HeaderValue::from_str(v)
                .map_err(|_| ExternalError::Description(format!("header \"{k}\" has a value that is not valid")))?;
            headers.insert(name, value);
        }
        // reqwest is built without a TLS crypto provider (ring rather than its aws-lc-rs); an
        // installed one stays.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = egress
            .http_client(reqwest::Client::builder())
            .default_headers(headers)
            .danger_accept_invalid_certs(options.insecure_skip_verify)
            .timeout(options.timeout())
            .tcp_nodelay(true)
            .build()
            .map_err(|e| ExternalError::Description(format!("REST client: {e}")))?;
        Ok(Self {
            http,
            egress: Arc::clone(egress),
            base,
            retry_count: options.retry_count.unwrap_or(0),
            retry_interval: Duration::from_millis(options.retry_interval.unwrap_or(1000)),
            timeout_ms: options.timeout().as_millis() as u64,
        })
    }

    /// Calls a method along its route; decodes the JSON answer as its response.
    pub async fn call(
        &self,
        method: &MethodDescriptor,
        route: &RestRoute,
        mut request: DynamicMessage,
    ) -> Result<DynamicMessage, CallError> {
        let mut url = self.base.clone();
        let mut used = Vec::new();
        for segment in &route.template {
            match segment {
                Segment::Literal(text) => url.push_str(text),
                Segment::Field { path, multi } => {
                    let text = path_value(&request, path)?;
                    let set = if *multi { PATH_MULTI } else { PATH_SEGMENT };
                    url.push_str(&percent_encoding::utf8_percent_encode(&text, set).to_string());
                    used.push(path.clone());
                }
            }
        }
        // Top-level fields taken by the path leave the body and the query.
        for path in used.iter().filter(|p| p.len() == 1) {
            request.clear_field_by_name(&path[0]);
        }
        let options = SerializeOptions::new().use_proto_field_name(true).stringify_64_bit_integers(false);
        let to_json = |message: &DynamicMessage| {
            message
                .serialize_with_options(serde_json::value::Serializer, &options)
                .map_err(|e| CallError::Convert(e.to_string()))
        };
        let mut query: Vec<(String, String)> = Vec::new();
        let body: Option<Vec<u8>> = match &route.body {
            Body::All if method.input().full_name() == "google.protobuf.StringValue" => Some(
                request
                    .get_field_by_number(1)
                    .and_then(|v| v.as_str().map(|s| s.as_bytes().to_vec()))
                    .unwrap_or_default(),
            ),
            Body::All => Some(to_json(&request)?.to_string().into_bytes()),
            Body::Field(name) => {
                let json = to_json(&request)?;
                Some(json.get(name).cloned().unwrap_or(serde_json::Value::Null).to_string().into_bytes())
            }
            Body::None => {
                if let serde_json::Value::Object(fields) = to_json(&request)? {
                    for (k, v) in fields {
                        match v {
                            serde_json::Value::Array(items) => {
                                query.extend(items.into_iter().map(|i| (k.clone(), plain(i))))
                            }
                            serde_json::Value::Object(_) | serde_json::Value::Null => {}
                            other => query.push((k, plain(other))),
                        }
                    }
                }
                None
            }
        };
        let answer = self.send(route.verb.clone(), &url, &query, body).await?;
        let mut deserializer = serde_json::Deserializer::from_slice(if answer.is_empty() { b"{}" } else { &answer });
        DynamicMessage::deserialize_with_options(
            method.output(),
            &mut deserializer,
            &prost_reflect::DeserializeOptions::new().deny_unknown_fields(false),
        )
        .map_err(|e| CallError::Response(format!("JSON answer is not a {}: {e}", method.output().full_name())))
    }

    /// A schemaless call.
    pub async fn call_schemaless(
        &self,
        verb: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<Value, CallError> {
        let verb = reqwest::Method::from_bytes(verb.to_ascii_uppercase().as_bytes())
            .map_err(|_| CallError::Convert(format!("\"{verb}\" is not an HTTP verb")))?;
        let url = format!("{}/{}", self.base, path.trim_start_matches('/'));
        let answer = self.send(verb, &url, &[], body.map(|b| b.to_string().into_bytes())).await?;
        if answer.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        Ok(match serde_json::from_slice::<serde_json::Value>(&answer) {
            Ok(json) => oort_engine::json::json_to_value(&json),
            Err(_) => Value::string(String::from_utf8_lossy(&answer).into_owned()),
        })
    }

    /// Sends one request, retrying failures to connect and 5xx answers; returns the body of a 2xx answer.
    async fn send(
        &self,
        verb: reqwest::Method,
        url: &str,
        query: &[(String, String)],
        body: Option<Vec<u8>>,
    ) -> Result<Vec<u8>, CallError> {
        // A path can change the authority (`@host`): the whole URL is checked.
        let parsed = reqwest::Url::parse(url).map_err(|e| CallError::Convert(format!("{url}: {e}")))?;
        self.egress.check_url(&parsed).map_err(|e| CallError::Unavailable(e.to_string()))?;
        let mut attempt = 0;
        loop {
            let mut request = self.http.request(verb.clone(), parsed.clone());
            if !query.is_empty() {
                request = request.query(query);
            }
            if let Some(body) = &body {
                request = request.header(CONTENT_TYPE, "application/json").body(body.clone());
            }
            let outcome = match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    let body = read_limited(response).await?;
                    if status.is_success() {
                        return Ok(body);
                    }
                    let text: String = String::from_utf8_lossy(&body).chars().take(200).collect();
                    let error = CallError::Status(format!("HTTP {status}: {}", text.trim()));
                    if status.is_server_error() { Err(error) } else { return Err(error) }
                }
                Err(e) if e.is_timeout() => return Err(CallError::Deadline(self.timeout_ms)),
                Err(e) => Err(CallError::Unavailable(error_chain(&e))),
            };
            if attempt >= self.retry_count {
                return outcome;
            }
            attempt += 1;
            tokio::time::sleep(self.retry_interval).await;
        }
    }
}

async fn read_limited(mut response: reqwest::Response) -> Result<Vec<u8>, CallError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| CallError::Unavailable(error_chain(&e)))? {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(CallError::Response(format!("answer larger than {MAX_RESPONSE_BYTES} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// A JSON scalar as query or path text.
fn plain(v: serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s,
        other => other.to_string(),
    }
}

/// Characters escaped in a path variable (one segment).
const PATH_SEGMENT: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');
/// Characters escaped in a multi-segment path variable (`/` kept).
const PATH_MULTI: &percent_encoding::AsciiSet = &PATH_SEGMENT.remove(b'/');

/// The text of a (nested) field for the path.
fn path_value(request: &DynamicMessage, path: &[String]) -> Result<String, CallError> {
    let missing = || CallError::Convert(format!("path parameter {} is not set", path.join(".")));
    let mut message = request.clone();
    for (i, name) in path.iter().enumerate() {
        let value = message.get_field_by_name(name).ok_or_else(missing)?.into_owned();
        if i + 1 < path.len() {
            match value {
                prost_reflect::Value::Message(m) => message = m,
                _ => return Err(missing()),
            }
            continue;
        }
        return Ok(match value {
            prost_reflect::Value::String(s) => s,
            prost_reflect::Value::Bool(b) => b.to_string(),
            prost_reflect::Value::I32(n) => n.to_string(),
            prost_reflect::Value::I64(n) => n.to_string(),
            prost_reflect::Value::U32(n) => n.to_string(),
            prost_reflect::Value::U64(n) => n.to_string(),
            prost_reflect::Value::F32(n) => n.to_string(),
            prost_reflect::Value::F64(n) => n.to_string(),
            prost_reflect::Value::EnumNumber(n) => n.to_string(),
            _ => return Err(CallError::Convert(format!("path parameter {} is not a scalar", path.join(".")))),
        });
    }
    Err(missing())
}

/// `fn(verb, path[, body...])` → its parts.
pub fn schemaless_args(args: &[Value]) -> Result<(String, String, Option<serde_json::Value>), CallError> {
    let text = |i: usize, what: &str| match args.get(i) {
        Some(Value::String(s)) => Ok(s.to_string()),
        Some(other) => {
            Err(CallError::Convert(format!("argument {} ({what}) must be a string, got {}", i + 1, other.type_name())))
        }
        None => Err(CallError::Convert(format!("argument {} ({what}) is missing", i + 1))),
    };
    let (verb, path) = (text(0, "the HTTP verb")?, text(1, "the path")?);
    let body = match &args[2..] {
        [] => None,
        [one] => Some(oort_engine::json::value_to_json(one)),
        many => Some(serde_json::Value::Array(many.iter().map(oort_engine::json::value_to_json).collect())),
    };
    Ok((verb, path, body))
}

/// Query parameters as a map, for tests.
#[cfg(test)]
fn template_fields(route: &RestRoute) -> std::collections::BTreeMap<String, bool> {
    route
        .template
        .iter()
        .filter_map(|s| match s {
            Segment::Field { path, multi } => Some((path.join("."), *multi)),
            Segment::Literal(_) => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{compile, find_method};

    const PROTO: &str = r#"syntax = "proto3"; package shop;
        import "google/api/annotations.proto"; import "google/protobuf/wrappers.proto";
        message Item { string id = 1; string name = 2; Shelf shelf = 3; int64 qty = 4; }
        message Shelf { string name = 1; }
        service Shop {
          rpc GetItem(Item) returns (Item) { option (google.api.http) = { get: "/v1/shelves/{shelf.name=s/*}/items/{id}" }; }
          rpc PutItem(Item) returns (Item) { option (google.api.http) = { put: "/v1/items/{id}" body: "shelf" }; }
          rpc Raw(google.protobuf.StringValue) returns (Item) { option (google.api.http) = { post: "/raw" body: "*" }; }
          rpc Plain(Item) returns (Item);
          rpc Bad(Item) returns (Item) { option (google.api.http) = { get: "/v1/{nope}" }; }
        }"#;

    #[test]
    fn routes_follow_the_http_annotation() {
        let pool = compile(&[("shop.proto".into(), PROTO.into())]).unwrap();
        let get = RestRoute::of(&find_method(&pool, "shop.proto", "GetItem").unwrap()).unwrap();
        assert_eq!(get.verb, reqwest::Method::GET);
        assert_eq!(get.body, Body::None);
        assert_eq!(
            template_fields(&get),
            std::collections::BTreeMap::from([("id".into(), false), ("shelf.name".into(), true)])
        );
        let put = RestRoute::of(&find_method(&pool, "shop.proto", "PutItem").unwrap()).unwrap();
        assert_eq!((put.verb, put.body), (reqwest::Method::PUT, Body::Field("shelf".into())));
        let plain = RestRoute::of(&find_method(&pool, "shop.proto", "Plain").unwrap()).unwrap();
        assert_eq!(plain.template, vec![Segment::Literal("/Plain".into())]);
        let err = RestRoute::of(&find_method(&pool, "shop.proto", "Bad").unwrap()).unwrap_err().to_string();
        assert!(err.contains("nope"), "{err}");
    }

    #[test]
    fn schemaless_arguments_are_verb_path_and_body() {
        let (verb, path, body) = schemaless_args(&["post".into(), "/a".into(), Value::Int(1)]).unwrap();
        assert_eq!((verb.as_str(), path.as_str(), body), ("post", "/a", Some(serde_json::json!(1))));
        assert!(schemaless_args(&[Value::Int(1), "/a".into()]).is_err());
    }
}
