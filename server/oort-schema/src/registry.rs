//! The schema registry: `.proto` files registered by name, compiled once.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use prost_reflect::{DescriptorPool, MessageDescriptor};

use crate::SchemaError;

/// A registered protobuf schema: one `.proto` file, compiled (it may import
/// the well-known types).
#[derive(Debug, Clone)]
pub struct ProtoSchema {
    name: String,
    content: String,
    pool: DescriptorPool,
}

impl ProtoSchema {
    /// Compiles `content` as the file `<name>.proto`. A name is letters,
    /// digits and `_` (it is the first part of a schema id).
    pub fn compile(name: &str, content: &str) -> Result<Self, SchemaError> {
        let valid =
            !name.is_empty() && name.len() <= 128 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(SchemaError::Proto(format!(
                "schema name {name:?}: 1 to 128 letters, digits or '_' (it is the part of a schema id before the dot)"
            )));
        }
        let file = format!("{name}.proto");
        let pool = crate::compile(&[(file, content.to_owned())], &[])?;
        let schema = Self { name: name.to_owned(), content: content.to_owned(), pool };
        if schema.messages().is_empty() {
            return Err(SchemaError::Proto(format!("{name}.proto defines no message")));
        }
        Ok(schema)
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its `.proto` text.
    pub fn content(&self) -> &str {
        &self.content
    }

    /// The full names of the messages its file defines (nested ones too).
    pub fn messages(&self) -> Vec<String> {
        let Some(file) = self.pool.get_file_by_name(&format!("{}.proto", self.name)) else { return Vec::new() };
        let mut names = Vec::new();
        let mut pending: Vec<MessageDescriptor> = file.messages().collect();
        while let Some(message) = pending.pop() {
            if !message.is_map_entry() {
                names.push(message.full_name().to_owned());
            }
            pending.extend(message.child_messages());
        }
        names.sort();
        names
    }

    /// The message `name`: a full name (`pkg.Book`), or a name without the
    /// package when it is unique.
    pub fn message(&self, name: &str) -> Result<MessageDescriptor, SchemaError> {
        if let Some(message) = self.pool.get_message_by_name(name) {
            return Ok(message);
        }
        let messages = self.messages();
        let mut found =
            messages.iter().filter(|full| full.rsplit('.').next() == Some(name) || full.ends_with(&format!(".{name}")));
        match (found.next(), found.next()) {
            (Some(full), None) => Ok(self.pool.get_message_by_name(full).expect("listed")),
            (Some(a), Some(b)) => Err(SchemaError::NotFound(format!(
                "message {name:?} is ambiguous in schema {}: {a} and {b}",
                self.name
            ))),
            (None, _) => Err(SchemaError::NotFound(format!(
                "schema {} has no message {name:?}; its messages: {}",
                self.name,
                messages.join(", ")
            ))),
        }
    }
}

/// The registered schemas, by name.
#[derive(Debug, Default)]
pub struct SchemaRegistry {
    schemas: RwLock<BTreeMap<String, Arc<ProtoSchema>>>,
}

impl SchemaRegistry {
    /// Registers a schema, replacing one of the same name.
    pub fn put(&self, schema: ProtoSchema) {
        self.schemas.write().unwrap_or_else(|p| p.into_inner()).insert(schema.name.clone(), Arc::new(schema));
    }

    /// Forgets a schema.
    pub fn remove(&self, name: &str) {
        self.schemas.write().unwrap_or_else(|p| p.into_inner()).remove(name);
    }

    /// The schema `name`.
    pub fn get(&self, name: &str) -> Option<Arc<ProtoSchema>> {
        self.schemas.read().unwrap_or_else(|p| p.into_inner()).get(name).cloned()
    }

    /// Every schema, by name.
    pub fn list(&self) -> Vec<Arc<ProtoSchema>> {
        self.schemas.read().unwrap_or_else(|p| p.into_inner()).values().cloned().collect()
    }

    /// The message of a schema id, `<schema>.<Message>`.
    pub fn message(&self, schema_id: &str) -> Result<MessageDescriptor, SchemaError> {
        let (name, message) = schema_id.trim().split_once('.').ok_or_else(|| {
            SchemaError::NotFound(format!("schema id {schema_id:?} is <schema>.<Message>, e.g. \"book.Book\""))
        })?;
        let schema = self.get(name).ok_or_else(|| {
            SchemaError::NotFound(format!(
                "there is no schema {name:?}; register it first (SchemaService, `oort schema create`)"
            ))
        })?;
        schema.message(message)
    }
}

/// The schema name of a schema id (`book` of `book.Book`).
pub fn schema_of(schema_id: &str) -> &str {
    schema_id.trim().split_once('.').map_or(schema_id.trim(), |(name, _)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOOK: &str = r#"syntax = "proto3"; package lib; message Book { string title = 1; int64 pages = 2; message Note { string text = 1; } repeated Note notes = 3; map<string, int32> tags = 4; }"#;

    #[test]
    fn schemas_are_compiled_and_their_messages_found() {
        let registry = SchemaRegistry::default();
        registry.put(ProtoSchema::compile("book", BOOK).unwrap());
        assert_eq!(registry.get("book").unwrap().messages(), ["lib.Book", "lib.Book.Note"]);
        assert_eq!(registry.message("book.Book").unwrap().full_name(), "lib.Book");
        assert_eq!(registry.message("book.lib.Book").unwrap().full_name(), "lib.Book");
        assert_eq!(registry.message("book.Note").unwrap().full_name(), "lib.Book.Note");
        let missing = registry.message("book.Shelf").unwrap_err().to_string();
        assert!(missing.contains("no message \"Shelf\"; its messages: lib.Book, lib.Book.Note"), "{missing}");
        assert!(registry.message("shelf.Book").unwrap_err().to_string().contains("no schema \"shelf\""));
        assert!(registry.message("Book").unwrap_err().to_string().contains("<schema>.<Message>"));
        assert_eq!(schema_of("book.Book"), "book");
    }

    #[test]
    fn bad_schemas_are_refused_with_where() {
        assert!(ProtoSchema::compile("a.b", BOOK).unwrap_err().to_string().contains("letters, digits or '_'"));
        let error = ProtoSchema::compile("bad", "syntax = \"proto3\"; message A { strin x = 1; }").unwrap_err();
        assert!(error.to_string().contains("bad.proto:1:32"), "{error}");
        assert!(ProtoSchema::compile("empty", "syntax = \"proto3\";").unwrap_err().to_string().contains("no message"));
    }
}
