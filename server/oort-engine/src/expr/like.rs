//! `LIKE` patterns: `%` matches any run of characters, `_` exactly one; the
//! escape character (`\` unless `ESCAPE` says otherwise) makes the next
//! character literal. Everything else matches itself, so `a.b` does not match
//! `axb` (eKuiper passes other characters to its regexp unescaped; Oort does not).

use regex::{Regex, RegexBuilder};

/// Compiles a `LIKE` pattern into an anchored regular expression.
pub(crate) fn compile_like(pattern: &str, escape: Option<char>, case_insensitive: bool) -> Result<Regex, String> {
    let escape = escape.unwrap_or('\\');
    let mut regex = String::with_capacity(pattern.len() + 8);
    regex.push_str("^(?s:");
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c == escape {
            match chars.next() {
                Some(next) => regex.push_str(&regex::escape(next.encode_utf8(&mut [0; 4]))),
                None => return Err(format!("LIKE pattern \"{pattern}\" ends with the escape character `{escape}`")),
            }
        } else if c == '%' {
            regex.push_str(".*");
        } else if c == '_' {
            regex.push('.');
        } else {
            regex.push_str(&regex::escape(c.encode_utf8(&mut [0; 4])));
        }
    }
    regex.push_str(")$");
    RegexBuilder::new(&regex)
        .case_insensitive(case_insensitive)
        .build()
        .map_err(|e| format!("invalid LIKE pattern \"{pattern}\": {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, text: &str) -> bool {
        compile_like(pattern, None, false).unwrap().is_match(text)
    }

    #[test]
    fn percent_and_underscore() {
        assert!(matches("a%", "abc"));
        assert!(matches("a%", "a"));
        assert!(!matches("a%", "ba"));
        assert!(matches("%c", "abc"));
        assert!(matches("%b%", "abc"));
        assert!(matches("a_c", "abc"));
        assert!(!matches("a_c", "abbc"));
        assert!(matches("", ""));
        assert!(!matches("", "x"));
        assert!(matches("%", "multi\nline"));
        assert!(matches("h_llo wörld", "hällo wörld"));
    }

    #[test]
    fn other_characters_are_literal() {
        assert!(matches("a.b", "a.b"));
        assert!(!matches("a.b", "axb"));
        assert!(matches("(x)+[y]", "(x)+[y]"));
        assert!(matches("^$", "^$"));
    }

    #[test]
    fn escapes() {
        assert!(matches(r"100\%", "100%"));
        assert!(!matches(r"100\%", "1000"));
        assert!(matches(r"a\_b", "a_b"));
        assert!(!matches(r"a\_b", "axb"));
        assert!(matches(r"a\\b", r"a\b"));
        let bang = compile_like("50!%%", Some('!'), false).unwrap();
        assert!(bang.is_match("50% off"));
        assert!(!bang.is_match("500"));
        assert!(compile_like(r"abc\", None, false).unwrap_err().contains("ends with the escape character"));
    }

    #[test]
    fn case_insensitive() {
        let re = compile_like("HeLLo%", None, true).unwrap();
        assert!(re.is_match("hello world"));
        assert!(!compile_like("HeLLo%", None, false).unwrap().is_match("hello world"));
    }
}
