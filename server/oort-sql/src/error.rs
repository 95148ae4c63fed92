//! The crate's error type, [`SqlError`], and source [`Position`]s.
//!
//! sqlparser reports positions by appending `" at Line: L, Column: C"` to its
//! messages. [`SqlError::from_parser_error`] and
//! [`SqlError::from_tokenizer_error`] split that suffix off into a structured
//! [`Position`] so callers can point at the offending text, and keep a clean
//! message for humans.

use std::fmt;

use sqlparser::parser::ParserError;
use sqlparser::tokenizer::{Location, TokenizerError};

/// A 1-based line and column in the SQL text.
///
/// Columns count characters (not bytes), as sqlparser's tokenizer does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    /// Line number, starting at 1.
    pub line: u64,
    /// Column number, starting at 1.
    pub column: u64,
}

impl Position {
    /// Creates a position from a 1-based line and column.
    pub const fn new(line: u64, column: u64) -> Self {
        Self { line, column }
    }

    /// Converts a sqlparser [`Location`]; `None` for the empty location
    /// (line 0) that sqlparser uses when it does not know where a node is.
    pub fn from_location(location: Location) -> Option<Self> {
        (location.line > 0 && location.column > 0).then(|| Self::new(location.line, location.column))
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

/// Renders `" at line L, column C"`, or nothing when the position is unknown.
struct At(Option<Position>);

impl fmt::Display for At {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(position) => write!(f, " at {position}"),
            None => Ok(()),
        }
    }
}

/// Everything that can go wrong while parsing stream DDL or rule SQL.
///
/// Every variant carries the position of the offending token whenever it is
/// known; see [`SqlError::position`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SqlError {
    /// The text is not well-formed: the tokenizer or the parser rejected it.
    #[error("syntax error{}: {message}", At(*.position))]
    Syntax {
        /// What was expected and what was found, without the position.
        message: String,
        /// Where the error was detected.
        position: Option<Position>,
    },
    /// The text parses, but breaks a rule of the eKuiper dialect: an unknown
    /// type or option, a duplicate field, a malformed window, and so on.
    #[error("invalid statement{}: {message}", At(*.position))]
    Semantic {
        /// What is wrong, naming the offending item.
        message: String,
        /// Where the offending item starts.
        position: Option<Position>,
    },
}

impl SqlError {
    /// A syntax error at `position`.
    pub fn syntax(message: impl Into<String>, position: Option<Position>) -> Self {
        Self::Syntax { message: message.into(), position }
    }

    /// A semantic (validation) error at `position`.
    pub fn semantic(message: impl Into<String>, position: Option<Position>) -> Self {
        Self::Semantic { message: message.into(), position }
    }

    /// Where the error is, if known.
    pub fn position(&self) -> Option<Position> {
        match self {
            Self::Syntax { position, .. } | Self::Semantic { position, .. } => *position,
        }
    }

    /// The message without the position prefix.
    pub fn message(&self) -> &str {
        match self {
            Self::Syntax { message, .. } | Self::Semantic { message, .. } => message,
        }
    }

    /// Converts a sqlparser tokenizer error, keeping its location.
    pub fn from_tokenizer_error(error: TokenizerError) -> Self {
        Self::syntax(clean_message(&error.message), Position::from_location(error.location))
    }

    /// Converts a sqlparser parser error, extracting the position from the
    /// message's `" at Line: L, Column: C"` suffix.
    ///
    /// sqlparser reports the end of input with an empty location, so errors
    /// that mention `EOF` get `end_of_input` as their position instead.
    pub fn from_parser_error(error: ParserError, end_of_input: Option<Position>) -> Self {
        let raw = match error {
            ParserError::TokenizerError(message) | ParserError::ParserError(message) => message,
            ParserError::RecursionLimitExceeded => {
                return Self::syntax("expression is nested too deeply", None);
            }
        };
        let (message, position) = split_location(&raw);
        let position = position.or_else(|| message.ends_with("found: EOF").then_some(end_of_input).flatten());
        Self::syntax(clean_message(message), position)
    }
}

/// Splits sqlparser's `"<message> at Line: L, Column: C"` into its parts.
fn split_location(raw: &str) -> (&str, Option<Position>) {
    const MARKER: &str = " at Line: ";
    let Some(index) = raw.rfind(MARKER) else {
        return (raw, None);
    };
    let tail = &raw[index + MARKER.len()..];
    let parsed = tail
        .split_once(", Column: ")
        .and_then(|(line, column)| Some(Position::new(line.trim().parse().ok()?, column.trim().parse().ok()?)));
    match parsed {
        Some(position) if position.line > 0 => (&raw[..index], Some(position)),
        _ => (raw, None),
    }
}

/// Normalizes sqlparser's wording: `"Expected: X, found: Y"` becomes
/// `"expected X, found Y"`, and `EOF` reads as `end of input`.
fn clean_message(message: &str) -> String {
    let message = message.trim();
    let message = match message.strip_prefix("Expected: ") {
        Some(rest) => format!("expected {rest}"),
        None => {
            let mut chars = message.chars();
            match chars.next() {
                Some(first) => first.to_lowercase().chain(chars).collect(),
                None => String::new(),
            }
        }
    };
    let message = message.replacen(", found: ", ", found ", 1);
    match message.strip_suffix("found EOF") {
        Some(head) => format!("{head}found end of input"),
        None => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_parser_location_suffix() {
        let error = ParserError::ParserError("Expected: an expression, found: FROM at Line: 3, Column: 17".into());
        let error = SqlError::from_parser_error(error, None);
        assert_eq!(error.position(), Some(Position::new(3, 17)));
        assert_eq!(error.message(), "expected an expression, found FROM");
        assert_eq!(error.to_string(), "syntax error at line 3, column 17: expected an expression, found FROM");
    }

    #[test]
    fn eof_errors_point_at_end_of_input() {
        let error = ParserError::ParserError("Expected: identifier, found: EOF".into());
        let error = SqlError::from_parser_error(error, Some(Position::new(2, 9)));
        assert_eq!(error.position(), Some(Position::new(2, 9)));
        assert_eq!(error.message(), "expected identifier, found end of input");
    }

    #[test]
    fn message_without_location_is_kept() {
        let error = ParserError::ParserError("Unexpected thing".into());
        let error = SqlError::from_parser_error(error, None);
        assert_eq!(error.position(), None);
        assert_eq!(error.to_string(), "syntax error: unexpected thing");
    }

    #[test]
    fn tokenizer_error_keeps_location() {
        let error = TokenizerError { message: "Unterminated string literal".into(), location: Location::new(1, 8) };
        let error = SqlError::from_tokenizer_error(error);
        assert_eq!(error.position(), Some(Position::new(1, 8)));
        assert_eq!(error.to_string(), "syntax error at line 1, column 8: unterminated string literal");
    }

    #[test]
    fn semantic_display_mentions_position() {
        let error = SqlError::semantic("duplicate field `a`", Some(Position::new(1, 30)));
        assert_eq!(error.to_string(), "invalid statement at line 1, column 30: duplicate field `a`");
        let error = SqlError::semantic("no position", None);
        assert_eq!(error.to_string(), "invalid statement: no position");
    }
}
