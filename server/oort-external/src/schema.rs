//! Compiling a service's `.proto` files at run time (protox → prost-reflect),
//! and finding the methods its functions map onto. The server ships the
//! well-known types (`google/protobuf/*.proto`, from protox) and
//! `google/api/annotations.proto` + `google/api/http.proto`, so descriptions
//! import them without uploading them.

use std::collections::BTreeMap;

use prost_reflect::{DescriptorPool, MethodDescriptor};
use protox::file::{ChainFileResolver, File, FileResolver, GoogleFileResolver};

use crate::error::ExternalError;

/// The `.proto` files every service may import without uploading them, besides
/// the well-known types.
pub const SHIPPED: [(&str, &str); 2] = [
    ("google/api/annotations.proto", include_str!("../proto/google/api/annotations.proto")),
    ("google/api/http.proto", include_str!("../proto/google/api/http.proto")),
];

/// Files by name, from memory.
struct InMemory(BTreeMap<String, String>);

impl FileResolver for InMemory {
    fn open_file(&self, name: &str) -> Result<File, protox::Error> {
        match self.0.get(name) {
            Some(source) => File::from_source(name, source),
            None => Err(protox::Error::file_not_found(name)),
        }
    }
}

/// Compiles the uploaded files (each must compile, with its imports) into one pool.
pub fn compile(files: &[(String, String)]) -> Result<DescriptorPool, ExternalError> {
    if files.is_empty() {
        return Err(ExternalError::Description("no .proto file was given".into()));
    }
    check_bounds(files)?;
    let uploaded: BTreeMap<String, String> = files.iter().cloned().collect();
    let mut resolver = ChainFileResolver::new();
    resolver.add(InMemory(uploaded.clone()));
    resolver.add(InMemory(SHIPPED.iter().map(|(n, s)| ((*n).to_owned(), (*s).to_owned())).collect()));
    resolver.add(GoogleFileResolver::new());
    let mut compiler = protox::Compiler::with_file_resolver(resolver);
    compiler.include_imports(true);
    for name in uploaded.keys() {
        compiler.open_file(name).map_err(|e| ExternalError::Proto(located(&e, &uploaded)))?;
    }
    Ok(compiler.descriptor_pool())
}

/// Most `.proto` files a service may bring.
pub const MAX_PROTO_FILES: usize = 64;
/// Largest `.proto` file, in bytes.
pub const MAX_PROTO_FILE_BYTES: usize = 1 << 20;
/// Largest total of a service's `.proto` files, in bytes.
pub const MAX_PROTO_TOTAL_BYTES: usize = 4 << 20;
/// Deepest nesting of braces, brackets and parentheses (message literals in
/// options nest this way), over which protox recurses; real schemas stay far
/// below. Import chains, over which it recurses too, are bounded by the number
/// of files.
pub const MAX_PROTO_NESTING: usize = 64;

/// Refuses input that would make the compiler recurse or allocate without
/// bound, before it sees it: too many or too large files, nesting too deep.
fn check_bounds(files: &[(String, String)]) -> Result<(), ExternalError> {
    let refuse = |message: String| Err(ExternalError::Proto(message));
    if files.len() > MAX_PROTO_FILES {
        return refuse(format!("{} .proto files; at most {MAX_PROTO_FILES} are accepted", files.len()));
    }
    let total: usize = files.iter().map(|(_, text)| text.len()).sum();
    if total > MAX_PROTO_TOTAL_BYTES {
        return refuse(format!(".proto files of {total} bytes in all; at most {MAX_PROTO_TOTAL_BYTES} are accepted"));
    }
    for (name, text) in files {
        if text.len() > MAX_PROTO_FILE_BYTES {
            return refuse(format!(
                "{name}: {} bytes; a .proto file may have at most {MAX_PROTO_FILE_BYTES}",
                text.len()
            ));
        }
        if let Some(line) = too_deep(text) {
            return refuse(format!("{name}:{line}: nested more than {MAX_PROTO_NESTING} levels deep"));
        }
    }
    Ok(())
}

/// The line where brackets first nest past the limit, skipping strings and comments.
fn too_deep(text: &str) -> Option<usize> {
    let (mut depth, mut line) = (0usize, 1usize);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\n' => line += 1,
            '"' | '\'' => {
                // A string: to its closing quote, minding escapes.
                while let Some(inner) = chars.next() {
                    match inner {
                        '\\' => {
                            chars.next();
                        }
                        '\n' => line += 1,
                        quote if quote == c => break,
                        _ => {}
                    }
                }
            }
            '/' if chars.peek() == Some(&'/') => {
                for inner in chars.by_ref() {
                    if inner == '\n' {
                        line += 1;
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut star = false;
                for inner in chars.by_ref() {
                    match inner {
                        '/' if star => break,
                        '\n' => line += 1,
                        _ => {}
                    }
                    star = inner == '*';
                }
            }
            '{' | '[' | '(' | '<' => {
                depth += 1;
                if depth > MAX_PROTO_NESTING {
                    return Some(line);
                }
            }
            '}' | ']' | ')' | '>' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

/// The error with its file, line and column when protox knows them.
fn located(error: &protox::Error, files: &BTreeMap<String, String>) -> String {
    use miette::Diagnostic;
    let Some(file) = error.file() else { return error.to_string() };
    let offset = error.labels().and_then(|mut labels| labels.next()).map(|label| label.offset());
    match (offset, files.get(file)) {
        (Some(offset), Some(source)) => {
            let before = &source[..offset.min(source.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("{file}:{line}:{column}: {error}")
        }
        _ if error.to_string().contains(file) => error.to_string(),
        _ => format!("{file}: {error}"),
    }
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
    fn hostile_schemas_are_refused_before_the_compiler_sees_them() {
        // A custom option whose value nests 1,000 message literals (8 KB) overflowed the stack.
        let deep = format!(
            "syntax = \"proto3\"; import \"google/protobuf/descriptor.proto\";\n\
             message Opt {{ Opt o = 1; }} extend google.protobuf.MessageOptions {{ Opt opt = 50000; }}\n\
             message M {{ option (opt) = {}{}; }}",
            "{ o: ".repeat(1_000),
            " }".repeat(1_000)
        );
        let error = compile(&files(&[("deep.proto", &deep)])).unwrap_err().to_string();
        assert!(error.contains("deep.proto:3: nested more than 64 levels deep"), "{error}");
        // A chain of 1,200 imports: more files than accepted.
        let chain: Vec<(String, String)> = (0..1_200)
            .map(|i| (format!("f{i}.proto"), format!("syntax = \"proto3\"; import \"f{}.proto\";", i + 1)))
            .collect();
        assert!(compile(&chain).unwrap_err().to_string().contains("at most 64"));
        let big = "// padding\n".repeat(200_000);
        assert!(compile(&files(&[("big.proto", &big)])).unwrap_err().to_string().contains("at most 1048576"));
        // Brackets in strings and comments do not count.
        let quoted = format!(
            "syntax = \"proto3\"; // {}\nmessage M {{ string s = 1 [default = \"{}\"]; }}",
            "{".repeat(100),
            "[".repeat(100)
        );
        assert!(too_deep(&quoted).is_none());
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

    #[test]
    fn a_file_that_does_not_compile_says_where() {
        let err = compile(&files(&[("bad.proto", "syntax = \"proto3\"; message A { strin x = 1; }")])).unwrap_err();
        assert!(matches!(err, ExternalError::Proto(_)));
        assert!(err.to_string().contains("bad.proto:1:32: name 'strin' is not defined"), "{err}");
        let err = compile(&files(&[("a.proto", "syntax = \"proto3\"; import \"missing.proto\";")])).unwrap_err();
        assert!(err.to_string().contains("missing.proto"), "{err}");
    }
}
