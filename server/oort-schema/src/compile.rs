//! Compiling `.proto` files at run time (protox → prost-reflect), within
//! bounds: a client's file must not make the compiler recurse or allocate
//! without limit. The well-known types (`google/protobuf/*.proto`) are always
//! there to import.

use std::collections::BTreeMap;

use prost_reflect::DescriptorPool;
use protox::file::{ChainFileResolver, File, FileResolver, GoogleFileResolver};

use crate::SchemaError;

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

/// Compiles `files` (each must compile, with its imports among `files`,
/// `shipped` and the well-known types) into one pool.
pub fn compile(files: &[(String, String)], shipped: &[(&str, &str)]) -> Result<DescriptorPool, SchemaError> {
    if files.is_empty() {
        return Err(SchemaError::Proto("no .proto file was given".into()));
    }
    check_bounds(files)?;
    let uploaded: BTreeMap<String, String> = files.iter().cloned().collect();
    let mut resolver = ChainFileResolver::new();
    resolver.add(InMemory(uploaded.clone()));
    resolver.add(InMemory(shipped.iter().map(|(n, s)| ((*n).to_owned(), (*s).to_owned())).collect()));
    resolver.add(GoogleFileResolver::new());
    let mut compiler = protox::Compiler::with_file_resolver(resolver);
    compiler.include_imports(true);
    for name in uploaded.keys() {
        compiler.open_file(name).map_err(|e| SchemaError::Proto(located(&e, &uploaded)))?;
    }
    Ok(compiler.descriptor_pool())
}

/// Most `.proto` files a schema may bring.
pub const MAX_PROTO_FILES: usize = 64;
/// Largest `.proto` file, in bytes.
pub const MAX_PROTO_FILE_BYTES: usize = 1 << 20;
/// Largest total of a schema's `.proto` files, in bytes.
pub const MAX_PROTO_TOTAL_BYTES: usize = 4 << 20;
/// Deepest nesting of braces, brackets and parentheses (message literals in
/// options nest this way), over which protox recurses; real schemas stay far
/// below. Import chains, over which it recurses too, are bounded by the number
/// of files.
pub const MAX_PROTO_NESTING: usize = 64;

/// Refuses input that would make the compiler recurse or allocate without
/// bound, before it sees it: too many or too large files, nesting too deep.
fn check_bounds(files: &[(String, String)]) -> Result<(), SchemaError> {
    let refuse = |message: String| Err(SchemaError::Proto(message));
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
        let error = compile(&files(&[("deep.proto", &deep)]), &[]).unwrap_err().to_string();
        assert!(error.contains("deep.proto:3: nested more than 64 levels deep"), "{error}");
        // A chain of 1,200 imports: more files than accepted.
        let chain: Vec<(String, String)> = (0..1_200)
            .map(|i| (format!("f{i}.proto"), format!("syntax = \"proto3\"; import \"f{}.proto\";", i + 1)))
            .collect();
        assert!(compile(&chain, &[]).unwrap_err().to_string().contains("at most 64"));
        let big = "// padding\n".repeat(200_000);
        assert!(compile(&files(&[("big.proto", &big)]), &[]).unwrap_err().to_string().contains("at most 1048576"));
        // Brackets in strings and comments do not count.
        let quoted = format!(
            "syntax = \"proto3\"; // {}\nmessage M {{ string s = 1 [default = \"{}\"]; }}",
            "{".repeat(100),
            "[".repeat(100)
        );
        assert!(too_deep(&quoted).is_none());
    }

    #[test]
    fn a_file_that_does_not_compile_says_where() {
        let err =
            compile(&files(&[("bad.proto", "syntax = \"proto3\"; message A { strin x = 1; }")]), &[]).unwrap_err();
        assert!(matches!(err, SchemaError::Proto(_)));
        assert!(err.to_string().contains("bad.proto:1:32: name 'strin' is not defined"), "{err}");
        let err = compile(&files(&[("a.proto", "syntax = \"proto3\"; import \"missing.proto\";")]), &[]).unwrap_err();
        assert!(err.to_string().contains("missing.proto"), "{err}");
    }
}
