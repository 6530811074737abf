//! The first wall of the SQL sandbox: `sqlparser` reads the text before SQLite sees it.
//!
//! A query passes only if it is exactly one `SELECT` (common table expressions allowed, also
//! recursive ones: the time budget and row limit stop those), reads only the tables of the
//! schema (or its own CTEs), calls only functions on [`ALLOWED_FUNCTIONS`], and stays within
//! the limits below. Each refusal names its reason. SQLite's authorizer (`sandbox`) checks the
//! same things again at prepare time, so that a parser difference between sqlparser and SQLite
//! cannot open a hole: this wall gives good messages, the second one is the guarantee.

use std::collections::BTreeSet;
use std::ops::ControlFlow;

use sqlparser::ast::{
    Expr, ObjectName, ObjectNamePart, Query, Select, SetExpr, Statement, Visit, Visitor,
};
use sqlparser::dialect::SQLiteDialect;
use sqlparser::parser::{Parser, ParserError};

use super::schema::Table;
use crate::text;

/// The longest query accepted, in bytes. The longest converted Sigma rule is ~70 KB.
pub const MAX_SQL_BYTES: usize = 256 * 1024;
/// Joins in the whole query, every `SELECT` counted.
pub const MAX_JOINS: usize = 16;
/// Queries nested in queries (subqueries, CTE bodies), the outermost counting as 1.
pub const MAX_QUERY_DEPTH: usize = 8;
/// `SELECT`s in the whole query (`UNION` arms, subqueries, CTEs).
pub const MAX_SELECTS: usize = 64;
/// How deep sqlparser may recurse into expressions before it gives up.
const PARSER_RECURSION_LIMIT: usize = 100;

/// Functions a query may call: SQLite's core scalar, aggregate, date, JSON and window
/// functions, and ours (`regexp`, `regex_match`). Left out on purpose: `randomblob` and
/// `zeroblob` (gigabyte blobs), `load_extension`, `sqlite_*` (internals), `random` (rules must
/// be deterministic), `unhex`/`char` are harmless and kept.
pub const ALLOWED_FUNCTIONS: &[&str] = &[
    // Scalar.
    "abs",
    "char",
    "coalesce",
    "concat",
    "concat_ws",
    "format",
    "glob",
    "hex",
    "ifnull",
    "iif",
    "instr",
    "length",
    "like",
    "likelihood",
    "likely",
    "lower",
    "ltrim",
    "max",
    "min",
    "nullif",
    "octet_length",
    "printf",
    "quote",
    "replace",
    "round",
    "rtrim",
    "sign",
    "soundex",
    "substr",
    "substring",
    "trim",
    "typeof",
    "unhex",
    "unicode",
    "unlikely",
    "upper",
    // Aggregate.
    "avg",
    "count",
    "group_concat",
    "string_agg",
    "sum",
    "total",
    // Date and time.
    "date",
    "datetime",
    "julianday",
    "strftime",
    "time",
    "timediff",
    "unixepoch",
    // JSON.
    "json",
    "json_array",
    "json_array_length",
    "json_extract",
    "json_group_array",
    "json_group_object",
    "json_object",
    "json_quote",
    "json_type",
    "json_valid",
    // Window.
    "cume_dist",
    "dense_rank",
    "first_value",
    "lag",
    "last_value",
    "lead",
    "nth_value",
    "ntile",
    "percent_rank",
    "rank",
    "row_number",
    // Ours.
    "regexp",
    "regex_match",
];

/// Whether a query may call `name` (ASCII case-insensitive).
pub fn is_allowed_function(name: &str) -> bool {
    ALLOWED_FUNCTIONS
        .iter()
        .any(|allowed| allowed.eq_ignore_ascii_case(name))
}

/// Why a query was refused before it ran. The texts a variant holds are as the query had
/// them (cut to 200 characters); the message escapes them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// Empty or only comments.
    #[error("the query is empty")]
    Empty,
    /// Longer than [`MAX_SQL_BYTES`].
    #[error("the query is {0} bytes long, more than the {MAX_SQL_BYTES} allowed")]
    TooLong(usize),
    /// sqlparser could not read it.
    #[error("the query does not parse: {}", text::escape(.0))]
    Syntax(String),
    /// Expressions nested deeper than the parser's limit.
    #[error("the query nests expressions too deeply")]
    TooDeep,
    /// More than one statement, e.g. `SELECT 1; DELETE FROM alerts`.
    #[error("only one statement is allowed, found {0}")]
    Stacked(usize),
    /// Not a `SELECT`.
    #[error("only SELECT is allowed, not {}", text::escape(.0))]
    NotSelect(String),
    /// A table that is not in the schema.
    #[error("unknown table {}", text::quoted(.0))]
    UnknownTable(String),
    /// `main.processes`, `temp.x`: other schemas are not reachable.
    #[error("schema-qualified name {} is not allowed", text::quoted(.0))]
    Qualified(String),
    /// A function not on the allowed list.
    #[error("function {} is not allowed", text::quoted(.0))]
    Function(String),
    /// Too many joins.
    #[error("the query has {0} joins, more than the {MAX_JOINS} allowed")]
    TooManyJoins(usize),
    /// Subqueries nested too deeply.
    #[error("subqueries are nested {0} deep, more than the {MAX_QUERY_DEPTH} allowed")]
    TooNested(usize),
    /// Too many `SELECT`s.
    #[error("the query has {0} SELECTs, more than the {MAX_SELECTS} allowed")]
    TooManySelects(usize),
    /// `SELECT … INTO`, `FOR UPDATE` and the like.
    #[error("{0} is not allowed")]
    Clause(&'static str),
    /// The parser's thread could not be started (the machine is out of threads or memory).
    #[error("the query could not be checked: {}", text::escape(.0))]
    Resources(String),
}

/// A query that passed the parser's checks, and what it reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedSql {
    sql: String,
    tables: BTreeSet<Table>,
}

impl CheckedSql {
    /// The text, unchanged.
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// The schema tables the query reads (the view counts as `processes` and `users` too).
    pub fn tables(&self) -> &BTreeSet<Table> {
        &self.tables
    }
}

/// The stack the parser runs on. sqlparser parses operator chains (`1+1+1…`, `a OR b OR …`)
/// in a loop but builds them as left-deep trees, and walking or dropping such a tree recurses
/// once per operator: a 120 KB query of `+1`s overflowed a 2 MiB thread stack (found by the
/// hostile-query corpus). [`MAX_SQL_BYTES`] bounds the depth to ~130,000, which needs well
/// under this; the memory is reserved, and only touched as deep as a query goes.
const PARSER_STACK_BYTES: usize = 256 * 1024 * 1024;

/// Checks `sql`; see the module doc.
///
/// The parse runs on a thread of its own with a large stack (see [`PARSER_STACK_BYTES`]), so
/// that a deep expression cannot overflow the caller's stack, whatever thread it is on.
pub fn check(sql: &str) -> Result<CheckedSql, Refusal> {
    if sql.len() > MAX_SQL_BYTES {
        return Err(Refusal::TooLong(sql.len()));
    }
    let owned = sql.to_owned();
    std::thread::Builder::new()
        .name("sql-precheck".into())
        .stack_size(PARSER_STACK_BYTES)
        .spawn(move || check_on_this_thread(&owned))
        .map_err(|err| Refusal::Resources(cut(&err.to_string())))?
        .join()
        .unwrap_or_else(|_| Err(Refusal::Resources("the parser panicked".to_owned())))
}

fn check_on_this_thread(sql: &str) -> Result<CheckedSql, Refusal> {
    let dialect = SQLiteDialect {};
    let statements = Parser::new(&dialect)
        .with_recursion_limit(PARSER_RECURSION_LIMIT)
        .try_with_sql(sql)
        .and_then(|mut parser| parser.parse_statements())
        .map_err(|err| match err {
            ParserError::RecursionLimitExceeded => Refusal::TooDeep,
            // A statement that is not a query at all (`PRAGMA table_info(processes)`, which
            // the parser does not know in that form) is refused for what it is, not for its
            // syntax.
            other => match first_keyword(sql) {
                Some(word) if !QUERY_STARTS.contains(&word.as_str()) => Refusal::NotSelect(word),
                _ => Refusal::Syntax(cut(&other.to_string())),
            },
        })?;
    let statement = match statements.as_slice() {
        [] => return Err(Refusal::Empty),
        [one] => one,
        many => return Err(Refusal::Stacked(many.len())),
    };
    let Statement::Query(_) = statement else {
        return Err(Refusal::NotSelect(statement_kind(statement)));
    };
    let mut walk = Walk::default();
    if let ControlFlow::Break(refusal) = statement.visit(&mut walk) {
        return Err(refusal);
    }
    let mut tables = walk.tables;
    if tables.contains(&Table::ProcessCreation) {
        tables.insert(Table::Processes);
        tables.insert(Table::Users);
    }
    Ok(CheckedSql {
        sql: sql.to_owned(),
        tables,
    })
}

/// The first word or two of a statement, for the refusal message.
/// The words a query may start with.
const QUERY_STARTS: [&str; 3] = ["SELECT", "WITH", "VALUES"];

/// The first word of `sql` in capitals, past whitespace and comments; `None` when it starts
/// with something else (a parenthesis, a literal) or does not tokenize.
fn first_keyword(sql: &str) -> Option<String> {
    use sqlparser::tokenizer::{Token, Tokenizer};
    let tokens = Tokenizer::new(&SQLiteDialect {}, sql).tokenize().ok()?;
    let first = tokens
        .into_iter()
        .find(|token| !matches!(token, Token::Whitespace(_)))?;
    match first {
        Token::Word(word) if word.quote_style.is_none() => {
            Some(cut(&word.value.to_ascii_uppercase()))
        }
        _ => None,
    }
}

fn statement_kind(statement: &Statement) -> String {
    let text = statement.to_string();
    let words: Vec<&str> = text.split_whitespace().take(2).collect();
    let kind = match words.as_slice() {
        [first, second] if matches!(first.to_ascii_uppercase().as_str(), "CREATE" | "DROP") => {
            format!("{first} {second}")
        }
        [first, ..] => (*first).to_owned(),
        [] => String::new(),
    };
    cut(&kind.to_ascii_uppercase())
}

#[derive(Default)]
struct Walk {
    tables: BTreeSet<Table>,
    ctes: BTreeSet<String>,
    depth: usize,
    joins: usize,
    selects: usize,
}

impl Visitor for Walk {
    type Break = Refusal;

    fn pre_visit_statement(&mut self, statement: &Statement) -> ControlFlow<Refusal> {
        // Nested statements (an INSERT in a CTE body, say) are never a read.
        if let Statement::Query(_) = statement {
            ControlFlow::Continue(())
        } else {
            ControlFlow::Break(Refusal::NotSelect(statement_kind(statement)))
        }
    }

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<Refusal> {
        self.depth += 1;
        if self.depth > MAX_QUERY_DEPTH {
            return ControlFlow::Break(Refusal::TooNested(self.depth));
        }
        if let Some(with) = &query.with {
            // CTE names are collected without scoping: SQLite resolves the scopes, and a name
            // it cannot resolve fails at prepare time (and again in the authorizer).
            for cte in &with.cte_tables {
                self.ctes.insert(cte.alias.name.value.to_ascii_lowercase());
            }
        }
        if !query.locks.is_empty() {
            return ControlFlow::Break(Refusal::Clause("FOR UPDATE / FOR SHARE"));
        }
        if query.for_clause.is_some() {
            return ControlFlow::Break(Refusal::Clause("a FOR clause"));
        }
        if !matches!(
            *query.body,
            SetExpr::Select(_)
                | SetExpr::Query(_)
                | SetExpr::SetOperation { .. }
                | SetExpr::Values(_)
        ) {
            let start = query.body.to_string().chars().take(20).collect();
            return ControlFlow::Break(Refusal::NotSelect(start));
        }
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _query: &Query) -> ControlFlow<Refusal> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, select: &Select) -> ControlFlow<Refusal> {
        self.selects += 1;
        if self.selects > MAX_SELECTS {
            return ControlFlow::Break(Refusal::TooManySelects(self.selects));
        }
        if select.into.is_some() {
            return ControlFlow::Break(Refusal::Clause("SELECT INTO"));
        }
        // `FROM a, b` is a join too.
        for from in &select.from {
            self.joins += from.joins.len();
        }
        self.joins += select.from.len().saturating_sub(1);
        if self.joins > MAX_JOINS {
            return ControlFlow::Break(Refusal::TooManyJoins(self.joins));
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_relation(&mut self, relation: &ObjectName) -> ControlFlow<Refusal> {
        let name = match relation.0.as_slice() {
            [ObjectNamePart::Identifier(ident)] => ident.value.as_str(),
            _ => return ControlFlow::Break(Refusal::Qualified(cut(&relation.to_string()))),
        };
        if let Some(table) = Table::from_name(name) {
            self.tables.insert(table);
        } else if !self.ctes.contains(&name.to_ascii_lowercase()) {
            return ControlFlow::Break(Refusal::UnknownTable(cut(name)));
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<Refusal> {
        if let Expr::Function(function) = expr {
            let name = match function.name.0.as_slice() {
                [ObjectNamePart::Identifier(ident)] => ident.value.as_str(),
                _ => {
                    return ControlFlow::Break(Refusal::Function(cut(&function.name.to_string())));
                }
            };
            if !is_allowed_function(name) {
                return ControlFlow::Break(Refusal::Function(cut(name)));
            }
        }
        ControlFlow::Continue(())
    }
}

/// The first 200 characters of `text`, for a refusal: enough to recognise it, and a query of
/// 100 KB does not make a message of 100 KB.
pub(crate) fn cut(text: &str) -> String {
    text.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_refusal(sql: &str, expected: Refusal) {
        assert_eq!(check(sql), Err(expected), "{sql}");
    }

    #[test]
    fn accepts_selects_ctes_joins_and_allowed_functions() {
        for (sql, tables) in [
            ("SELECT pid FROM processes", vec![Table::Processes]),
            (
                "WITH t AS (SELECT pid FROM processes) SELECT * FROM t",
                vec![Table::Processes],
            ),
            (
                "SELECT p.pid, pp.name FROM processes p JOIN processes pp ON pp.pid = p.parent \
                 WHERE p.cmdline REGEXP 'a+' AND regex_match(p.path, '(x)', 1) IS NOT NULL",
                vec![Table::Processes],
            ),
            (
                "SELECT * FROM process_creation WHERE Image LIKE '%/x' ESCAPE '\\'",
                vec![Table::Processes, Table::Users, Table::ProcessCreation],
            ),
            (
                "SELECT count(*) FROM scans UNION ALL SELECT count(*) FROM alerts",
                vec![Table::Scans, Table::Alerts],
            ),
            ("select 1", vec![]),
        ] {
            let checked = check(sql).unwrap_or_else(|err| panic!("{sql}: {err}"));
            assert_eq!(checked.tables().iter().copied().collect::<Vec<_>>(), tables);
        }
    }

    #[test]
    fn refusals_name_their_reason() {
        check_refusal("", Refusal::Empty);
        check_refusal("-- nothing", Refusal::Empty);
        check_refusal("SELECT 1; SELECT 2", Refusal::Stacked(2));
        check_refusal(
            "SELECT 1 /* hide */; DELETE FROM alerts",
            Refusal::Stacked(2),
        );
        check_refusal("DELETE FROM alerts", Refusal::NotSelect("DELETE".into()));
        check_refusal(
            "PRAGMA writable_schema = 1",
            Refusal::NotSelect("PRAGMA".into()),
        );
        // Forms the parser does not know are refused for what they are, not for syntax.
        for sql in [
            "PRAGMA table_info(processes)",
            "  /* x */ pragma table_info('processes')",
            "PRAGMA main.table_list",
        ] {
            check_refusal(sql, Refusal::NotSelect("PRAGMA".into()));
        }
        check_refusal("VACUUM INTO '/tmp/x'", Refusal::NotSelect("VACUUM".into()));
        assert!(matches!(
            check("SELECT FROM WHERE"),
            Err(Refusal::Syntax(_))
        ));
        check_refusal(
            "ATTACH DATABASE '/etc/x' AS x",
            Refusal::NotSelect("ATTACH".into()),
        );
        check_refusal(
            "CREATE TABLE x (a)",
            Refusal::NotSelect("CREATE TABLE".into()),
        );
        check_refusal(
            "SELECT * FROM sqlite_master",
            Refusal::UnknownTable("sqlite_master".into()),
        );
        check_refusal(
            "SELECT * FROM main.processes",
            Refusal::Qualified("main.processes".into()),
        );
        check_refusal(
            "SELECT load_extension('/tmp/x.so')",
            Refusal::Function("load_extension".into()),
        );
        check_refusal(
            "SELECT randomblob(1000000000)",
            Refusal::Function("randomblob".into()),
        );
        check_refusal(
            &format!("SELECT '{}'", "x".repeat(MAX_SQL_BYTES)),
            Refusal::TooLong(MAX_SQL_BYTES + 9),
        );
        let joins = (0..=MAX_JOINS)
            .map(|i| format!("JOIN processes p{i} ON 1"))
            .collect::<Vec<_>>()
            .join(" ");
        check_refusal(
            &format!("SELECT 1 FROM processes {joins}"),
            Refusal::TooManyJoins(MAX_JOINS + 1),
        );
        let nested = (0..MAX_QUERY_DEPTH).fold("SELECT 1".to_owned(), |inner, _| {
            format!("SELECT ({inner})")
        });
        check_refusal(&nested, Refusal::TooNested(MAX_QUERY_DEPTH + 1));
        let deep = format!("SELECT {}1{}", "(".repeat(500), ")".repeat(500));
        check_refusal(&deep, Refusal::TooDeep);
        // A 120 KB chain of additions once overflowed the caller's stack on drop; on a thread
        // with a small stack it must now come back as an answer.
        let chain = format!("SELECT 1{}", "+1".repeat(60_000));
        let answer = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || check(&chain).map(|checked| checked.tables().len()))
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(answer, Ok(0));
    }

    #[test]
    fn syntax_errors_are_one_line() {
        let Err(refusal @ Refusal::Syntax(_)) = check("SELECT FROM WHERE\n\n(") else {
            panic!("expected a syntax refusal");
        };
        let message = refusal.to_string();
        assert!(!message.contains('\n'), "{message}");
    }
}
