//! The service description, in eKuiper's shape: parsed from eKuiper's JSON
//! service file as-is, or converted from the typed `oort.v1.ServiceDescription`.
//! Stored as JSON (this model serialized), which keeps every option, including
//! those the typed API message has no field for (`schemaless`, `retryCount`,
//! `retryInterval`).

use std::collections::BTreeMap;

use oort_proto::v1 as pb;
use serde::{Deserialize, Serialize};

use crate::error::ExternalError;

/// Default deadline of one call (eKuiper hard-codes 5 s).
pub const DEFAULT_TIMEOUT_MS: u64 = 5_000;
/// Default bound on the calls in flight to one interface.
pub const DEFAULT_MAX_IN_FLIGHT: u32 = 64;

/// A whole service description: eKuiper's JSON service file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Description {
    /// Who made it and what it does, kept as written (eKuiper uses objects and
    /// per-language maps here).
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub about: serde_json::Value,
    /// The interfaces, by name.
    #[serde(default)]
    pub interfaces: BTreeMap<String, Interface>,
}

/// The wire protocol of an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// gRPC, invoked dynamically from the descriptors.
    Grpc,
    /// HTTP + JSON, following the methods' `google.api.http` annotations.
    Rest,
    /// tarpc, Oort's generic request/response service.
    Rpc,
}

/// One endpoint of a service and the functions it exports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Interface {
    /// `host:port`, `tcp://host:port` (grpc, rpc) or `http(s)://host:port/base` (rest).
    pub address: String,
    /// grpc, rest or rpc.
    pub protocol: Protocol,
    /// Only "protobuf" is supported; absent for a schemaless REST interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_type: Option<String>,
    /// The .proto file (a name of the uploaded files) that defines the service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_file: Option<String>,
    /// A REST interface without a .proto: `fn("post", "/path", args...)`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub schemaless: bool,
    /// SQL functions and the methods they call.
    #[serde(default)]
    pub functions: Vec<FunctionMapping>,
    /// Connection options.
    #[serde(default)]
    pub options: Options,
}

/// Maps a SQL function onto a method.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionMapping {
    /// Name in SQL.
    pub name: String,
    /// Method (rpc) name; the SQL name when absent, as in eKuiper.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
}

impl FunctionMapping {
    /// The method this function calls.
    pub fn method(&self) -> &str {
        self.service_name.as_deref().filter(|s| !s.is_empty()).unwrap_or(&self.name)
    }
}

/// Connection options of an interface (eKuiper's, plus `timeout` and `maxInFlight`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Options {
    /// HTTP headers (REST) or metadata (gRPC) sent with every call.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Accept any TLS certificate (REST over https; test setups only).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure_skip_verify: bool,
    /// REST: how many times a failed call is retried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_count: Option<u32>,
    /// REST: milliseconds between retries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_interval: Option<u64>,
    /// Deadline of one call in milliseconds (default 5000), retries included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
    /// At most this many calls in flight to the interface (default 64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_in_flight: Option<u32>,
}

impl Options {
    /// The call deadline.
    pub fn timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.timeout.unwrap_or(DEFAULT_TIMEOUT_MS).max(1))
    }

    /// The in-flight bound.
    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight.unwrap_or(DEFAULT_MAX_IN_FLIGHT).max(1) as usize
    }
}

impl Description {
    /// Parses eKuiper's JSON service file.
    pub fn from_json(json: &str) -> Result<Self, ExternalError> {
        serde_json::from_str(json).map_err(|e| ExternalError::Description(format!("invalid service JSON: {e}")))
    }

    /// This description as JSON (eKuiper's format), as stored.
    pub fn to_json(&self) -> String {
        // A tree of strings, maps and numbers always serializes.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// From the typed API message.
    pub fn from_proto(description: &pb::ServiceDescription) -> Result<Self, ExternalError> {
        let about = description.about.as_ref().map(|a| {
            serde_json::json!({
                "author": { "name": a.author, "email": a.email },
                "helpUrl": { "en_US": a.help_url },
                "description": { "en_US": a.description },
            })
        });
        let mut interfaces = BTreeMap::new();
        for (name, i) in &description.interfaces {
            let protocol = match pb::ServiceProtocol::try_from(i.protocol) {
                Ok(pb::ServiceProtocol::Grpc) => Protocol::Grpc,
                Ok(pb::ServiceProtocol::Rest) => Protocol::Rest,
                Ok(pb::ServiceProtocol::Rpc) => Protocol::Rpc,
                _ => return Err(ExternalError::Description(format!("interface {name}: `protocol` is required"))),
            };
            let options = i.options.clone().unwrap_or_default();
            interfaces.insert(
                name.clone(),
                Interface {
                    address: i.address.clone(),
                    protocol,
                    schema_type: Some(i.schema_type.clone()).filter(|s| !s.is_empty()),
                    schema_file: Some(i.schema_file.clone()).filter(|s| !s.is_empty()),
                    schemaless: i.schemaless,
                    functions: i
                        .functions
                        .iter()
                        .map(|f| FunctionMapping {
                            name: f.name.clone(),
                            service_name: Some(f.service_name.clone()).filter(|s| !s.is_empty()),
                        })
                        .collect(),
                    options: Options {
                        headers: options.headers.into_iter().collect(),
                        insecure_skip_verify: options.insecure_skip_verify,
                        retry_count: options.retry_count,
                        retry_interval: options.retry_interval_ms,
                        timeout: options.timeout_ms.map(|t| t.max(0) as u64),
                        max_in_flight: options.max_in_flight,
                    },
                },
            );
        }
        Ok(Description { about: about.unwrap_or_default(), interfaces })
    }

    /// As the typed API message.
    pub fn to_proto(&self) -> pb::ServiceDescription {
        let text = |v: &serde_json::Value| match v {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Object(m) => {
                m.get("en_US").or_else(|| m.values().next()).and_then(|v| v.as_str()).unwrap_or_default().to_owned()
            }
            _ => String::new(),
        };
        let author = &self.about["author"];
        let about = (!self.about.is_null()).then(|| pb::ServiceAbout {
            author: author.get("name").map(text).unwrap_or_else(|| text(author)),
            email: author.get("email").map(text).unwrap_or_default(),
            help_url: text(&self.about["helpUrl"]),
            description: text(&self.about["description"]),
        });
        let interfaces = self
            .interfaces
            .iter()
            .map(|(name, i)| {
                let protocol = match i.protocol {
                    Protocol::Grpc => pb::ServiceProtocol::Grpc,
                    Protocol::Rest => pb::ServiceProtocol::Rest,
                    Protocol::Rpc => pb::ServiceProtocol::Rpc,
                };
                let interface = pb::ServiceInterface {
                    address: i.address.clone(),
                    protocol: protocol as i32,
                    schema_type: i.schema_type.clone().unwrap_or_default(),
                    schema_file: i.schema_file.clone().unwrap_or_default(),
                    functions: i
                        .functions
                        .iter()
                        .map(|f| pb::FunctionMapping {
                            name: f.name.clone(),
                            service_name: f.service_name.clone().unwrap_or_default(),
                        })
                        .collect(),
                    options: Some(pb::InterfaceOptions {
                        headers: i.options.headers.clone().into_iter().collect(),
                        timeout_ms: i.options.timeout.map(|t| t as i64),
                        insecure_skip_verify: i.options.insecure_skip_verify,
                        max_in_flight: i.options.max_in_flight,
                        retry_count: i.options.retry_count,
                        retry_interval_ms: i.options.retry_interval,
                    }),
                    schemaless: i.schemaless,
                };
                (name.clone(), interface)
            })
            .collect();
        pb::ServiceDescription { about, interfaces }
    }

    /// Every SQL function name the description declares, lower-case, in order.
    pub fn function_names(&self) -> Vec<String> {
        self.interfaces.values().flat_map(|i| i.functions.iter().map(|f| f.name.to_ascii_lowercase())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// eKuiper's sample service file (docs: "External function", sample.json), abridged.
    const EKUIPER_SAMPLE: &str = r#"{
      "about": {
        "author": {"name": "EMQ", "email": "contact@emqx.io", "company": "EMQ Technologies Co., Ltd", "website": "https://www.emqx.io"},
        "helpUrl": {"en_US": "https://example.com/doc", "zh_CN": "https://example.com/doc/zh"},
        "description": {"en_US": "Sample external services for test only", "zh_CN": "示例外部函数配置"}
      },
      "interfaces": {
        "tsrpc": {
          "address": "tcp://localhost:50051",
          "protocol": "grpc",
          "schemaType": "protobuf",
          "schemaFile": "hw.proto",
          "functions": [{"name": "helloFromGrpc", "serviceName": "SayHello"}, {"name": "Compute"}]
        },
        "tsrest": {
          "address": "http://localhost:51234",
          "protocol": "rest",
          "options": {"insecureSkipVerify": true, "headers": {"Accept-Charset": "utf-8"}, "retryCount": 2, "retryInterval": 100},
          "schemaType": "protobuf",
          "schemaFile": "hw.proto",
          "functions": [{"name": "helloFromRest", "serviceName": "SayHello"}]
        },
        "tsschemaless": {
          "address": "http://localhost:51234",
          "protocol": "rest",
          "schemaless": true,
          "functions": [{"name": "schemaless"}]
        }
      }
    }"#;

    #[test]
    fn parses_ekuiper_json_as_is_and_round_trips() {
        let d = Description::from_json(EKUIPER_SAMPLE).unwrap();
        assert_eq!(d.interfaces.len(), 3);
        let rest = &d.interfaces["tsrest"];
        assert_eq!(rest.protocol, Protocol::Rest);
        assert_eq!(rest.options.retry_count, Some(2));
        assert!(rest.options.insecure_skip_verify);
        assert_eq!(d.interfaces["tsrpc"].functions[1].method(), "Compute");
        assert!(d.interfaces["tsschemaless"].schemaless);
        assert_eq!(Description::from_json(&d.to_json()).unwrap(), d);
        let proto = d.to_proto();
        assert_eq!(proto.about.as_ref().unwrap().author, "EMQ");
        assert_eq!(proto.about.as_ref().unwrap().description, "Sample external services for test only");
        assert_eq!(proto.interfaces["tsrest"].options.as_ref().unwrap().retry_interval_ms, Some(100));
        let back = Description::from_proto(&proto).unwrap();
        assert_eq!(back.interfaces, d.interfaces, "every interface field has a typed twin");
    }

    #[test]
    fn a_bad_protocol_is_an_error_that_says_so() {
        let err = Description::from_json(r#"{"interfaces": {"a": {"address": "x", "protocol": "soap"}}}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("soap"), "{err}");
    }
}
