//! Compiling a service's `.proto` files at run time (protox → prost-reflect),
//! and finding the methods its functions map onto. The server ships the
//! well-known types (`google/protobuf/*.proto`, from protox) and
//! `google/api/annotations.proto` + `google/api/http.proto`, so descriptions
//! import them without uploading them.

use prost_reflect::{DescriptorPool, MethodDescriptor};

use crate::error::ExternalError;

/// The `.proto` files every service may import without uploading them, besides
/// the well-known types.
pub const SHIPPED: [(&str, &str); 2] = [
    ("google/api/annotations.proto", include_str!("../proto/google/api/annotations.proto")),
    ("google/api/http.proto", include_str!("../proto/google/api/http.proto")),
];

/// Compiles the uploaded files (each must compile, with its imports) into
/// one pool, within [`oort_schema`]'s bounds.
pub fn compile(files: &[(String, String)]) -> Result<DescriptorPool, ExternalError> {
    oort_schema::compile(files, &SHIPPED).map_err(|e| ExternalError::Proto(e.to_string()))
}

/// Finds `method` among the services of `schema_file`.
pub fn find_method(pool: &DescriptorPool, schema_file: &str, method: &str) -> Result<MethodDescriptor, ExternalError> {
    let file = pool.get_file_by_name(schema_file).ok_or_else(|| {
        ExternalError::Description(format!("schemaFile \"{schema_file}\" is not among the .proto files"))
    })?;
    let mut found = file.services().flat_map(|s| s.methods().collect::<Vec<_>>()).filter(|m| m.name() == method);
    let Some(first) = found.next() else {
        let known: Vec<String> =
            file.services().flat_map(|s| s.methods().map(|m| m.full_name().to_owned()).collect::<Vec<_>>()).collect();
        return Err(ExternalError::MissingMethod(format!(
            "method \"{method}\" is not defined in {schema_file}; its methods: {}",
            if known.is_empty() { "none".to_owned() } else { known.join(", ") }
        )));
    };
    if let Some(other) = found.next() {
        return Err(ExternalError::MissingMethod(format!(
            "method \"{method}\" is ambiguous in {schema_file}: {} and {}",
            first.full_name(),
            other.full_name()
        )));
    }
    if first.is_client_streaming() || first.is_server_streaming() {
        return Err(ExternalError::MissingMethod(format!(
            "method {} streams; only unary methods can be functions",
            first.full_name()
        )));
    }
    Ok(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(n, s)| ((*n).to_owned(), (*s).to_owned())).collect()
    }

    #[test]
    fn compiles_imports_between_uploaded_and_shipped_files() {
        let pool = compile(&files(&[
            ("common/v1/point.proto", "syntax = \"proto3\"; package common.v1; message Point { double x = 1; double y = 2; }"),
            (
                "geo.proto",
                r#"syntax = "proto3"; package geo;
                import "common/v1/point.proto"; import "google/protobuf/wrappers.proto"; import "google/api/annotations.proto";
                service Geo { rpc Dist(common.v1.Point) returns (google.protobuf.DoubleValue) { option (google.api.http) = { post: "/dist" body: "*" }; } }"#,
            ),
        ]))
        .unwrap();
        let m = find_method(&pool, "geo.proto", "Dist").unwrap();
        assert_eq!(m.output().full_name(), "google.protobuf.DoubleValue");
        let err = find_method(&pool, "geo.proto", "Nope").unwrap_err().to_string();
        assert!(err.contains("geo.Geo.Dist"), "{err}");
    }
}
