//! [`Cursor`]: a small recursive-descent helper over sqlparser tokens.
//!
//! sqlparser has no grammar for eKuiper's `CREATE STREAM`, so the DDL parser
//! walks the token stream itself. The tokens (and their locations) still come
//! from sqlparser's tokenizer with [`EkuiperDialect`](crate::EkuiperDialect),
//! so both parsers agree on what a string, an identifier or a comment is.

use sqlparser::tokenizer::{Token, TokenWithSpan, Word};

use crate::dialect::{end_of_input, tokenize};
use crate::error::{Position, SqlError};

/// A position-aware cursor over the significant tokens of a statement
/// (whitespace and comments removed).
pub(crate) struct Cursor {
    tokens: Vec<TokenWithSpan>,
    index: usize,
    end: Option<Position>,
}

impl Cursor {
    /// Tokenizes `sql`.
    pub(crate) fn new(sql: &str) -> Result<Self, SqlError> {
        let tokens = tokenize(sql)?;
        let end = end_of_input(&tokens);
        let tokens = tokens.into_iter().filter(|t| !matches!(t.token, Token::Whitespace(_) | Token::EOF)).collect();
        Ok(Self { tokens, index: 0, end })
    }

    /// The next token, if any.
    pub(crate) fn peek(&self) -> Option<&TokenWithSpan> {
        self.tokens.get(self.index)
    }

    /// Consumes and returns the next token.
    pub(crate) fn next_token(&mut self) -> Option<TokenWithSpan> {
        let token = self.tokens.get(self.index).cloned();
        if token.is_some() {
            self.index += 1;
        }
        token
    }

    /// True when every token has been consumed.
    pub(crate) fn is_at_end(&self) -> bool {
        self.index >= self.tokens.len()
    }

    /// Where the next token starts, or the end of input.
    pub(crate) fn position(&self) -> Option<Position> {
        match self.peek() {
            Some(token) => Position::from_location(token.span.start),
            None => self.end,
        }
    }

    /// True when the next token is the unquoted word `keyword`
    /// (case-insensitive).
    pub(crate) fn peek_keyword(&self, keyword: &str) -> bool {
        self.peek().is_some_and(|t| is_keyword(&t.token, keyword))
    }

    /// Consumes the unquoted word `keyword`, or fails with a syntax error.
    pub(crate) fn expect_keyword(&mut self, keyword: &str) -> Result<Position, SqlError> {
        if self.peek_keyword(keyword) {
            let position = self.position();
            self.index += 1;
            position.ok_or_else(|| SqlError::syntax("internal: token without position", None))
        } else {
            Err(self.unexpected(keyword))
        }
    }

    /// Consumes `token` if it is next.
    pub(crate) fn consume(&mut self, token: &Token) -> bool {
        if self.peek().is_some_and(|t| &t.token == token) {
            self.index += 1;
            true
        } else {
            false
        }
    }

    /// Consumes `token`, or fails with "expected `what`".
    pub(crate) fn expect(&mut self, token: &Token, what: &str) -> Result<(), SqlError> {
        if self.consume(token) { Ok(()) } else { Err(self.unexpected(what)) }
    }

    /// Consumes a word (quoted or not) and returns its text and position.
    pub(crate) fn expect_word(&mut self, what: &str) -> Result<(Word, Option<Position>), SqlError> {
        match self.peek() {
            Some(TokenWithSpan { token: Token::Word(word), span }) => {
                let result = (word.clone(), Position::from_location(span.start));
                self.index += 1;
                Ok(result)
            }
            _ => Err(self.unexpected(what)),
        }
    }

    /// A syntax error "expected `expected`, found <next token>" at the next
    /// token.
    pub(crate) fn unexpected(&self, expected: &str) -> SqlError {
        SqlError::syntax(format!("expected {expected}, found {}", self.describe_next()), self.position())
    }

    /// Describes the next token for error messages.
    pub(crate) fn describe_next(&self) -> String {
        match self.peek() {
            Some(token) => describe(&token.token),
            None => "end of input".to_owned(),
        }
    }
}

/// True when `token` is the unquoted word `keyword` (case-insensitive).
pub(crate) fn is_keyword(token: &Token, keyword: &str) -> bool {
    matches!(token, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(keyword))
}

/// Renders a token the way it appeared in the SQL.
pub(crate) fn describe(token: &Token) -> String {
    match token {
        Token::EOF => "end of input".to_owned(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_whitespace_and_comments() {
        let mut cursor = Cursor::new("  CREATE -- comment\n /* block */ stream").expect("tokenize");
        assert_eq!(cursor.position(), Some(Position::new(1, 3)));
        assert!(cursor.peek_keyword("create"));
        cursor.expect_keyword("CREATE").expect("CREATE");
        assert_eq!(cursor.position(), Some(Position::new(2, 14)));
        cursor.expect_keyword("STREAM").expect("STREAM");
        assert!(cursor.is_at_end());
        assert_eq!(cursor.position(), Some(Position::new(2, 20)));
    }

    #[test]
    fn quoted_word_is_not_a_keyword() {
        let cursor = Cursor::new("`WITH`").expect("tokenize");
        assert!(!cursor.peek_keyword("WITH"));
    }

    #[test]
    fn unexpected_describes_the_next_token() {
        let cursor = Cursor::new("CREATE 42").expect("tokenize");
        let error = cursor.unexpected("STREAM");
        assert_eq!(error.message(), "expected STREAM, found CREATE");
        let mut cursor = Cursor::new("x").expect("tokenize");
        cursor.next_token();
        assert_eq!(cursor.unexpected("`(`").message(), "expected `(`, found end of input");
        assert_eq!(cursor.unexpected("`(`").position(), Some(Position::new(1, 2)));
    }
}
