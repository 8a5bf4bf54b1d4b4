//! One shape for both input formats: a body of settings (`key = value`) and stanzas
//! (`kind "label" { ... }`), each remembering the source line it came from. HCL and JSON are
//! turned into this first, so the meaning of a config is decided in one place and every
//! message can name a line whichever format the operator wrote.

use crate::error::ConfigError;
use hcl::edit::Span;
use serde_json::Value;

/// The contents of a file or of one stanza, in source order.
#[derive(Debug, Default)]
pub(crate) struct Body {
    pub entries: Vec<Entry>,
}

/// One item of a body.
#[derive(Debug)]
pub(crate) enum Entry {
    /// `key = value`; the value is already a plain literal.
    Setting {
        key: String,
        value: Value,
        line: usize,
    },
    /// `kind "label" { ... }`.
    Stanza(Stanza),
}

impl Entry {
    /// The key of a setting or the kind of a stanza.
    pub fn name(&self) -> &str {
        match self {
            Entry::Setting { key, .. } => key,
            Entry::Stanza(stanza) => &stanza.kind,
        }
    }

    /// The one-based line the entry starts on.
    pub fn line(&self) -> usize {
        match self {
            Entry::Setting { line, .. } => *line,
            Entry::Stanza(stanza) => stanza.line,
        }
    }
}

/// A labelled block such as `listener "tcp" { ... }`.
#[derive(Debug)]
pub(crate) struct Stanza {
    pub kind: String,
    pub labels: Vec<String>,
    pub body: Body,
    pub line: usize,
}

/// Maps byte offsets to one-based line numbers.
struct LineIndex {
    line_starts: Vec<usize>,
}

impl LineIndex {
    fn new(text: &str) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        LineIndex { line_starts }
    }

    fn line_of(&self, offset: usize) -> usize {
        self.line_starts.partition_point(|&start| start <= offset)
    }
}

// ---------------------------------------------------------------------------------------------
// HCL
// ---------------------------------------------------------------------------------------------

/// Parse HCL text into a [`Body`].
pub(crate) fn from_hcl(text: &str) -> Result<Body, ConfigError> {
    coffer_hcl::check_nesting(text).map_err(|e| ConfigError::Syntax {
        line: e.line,
        column: e.column,
        message: e.to_string(),
    })?;
    let parsed = hcl::edit::parser::parse_body(text).map_err(|e| ConfigError::Syntax {
        line: e.location().line(),
        column: e.location().column(),
        // Only the parser's expectation: `e.line()` and `Display` would repeat the source
        // line, which may hold a secret.
        message: e.message().to_string(),
    })?;
    let lines = LineIndex::new(text);
    hcl_body(&parsed, &lines)
}

fn hcl_body(body: &hcl::edit::structure::Body, lines: &LineIndex) -> Result<Body, ConfigError> {
    use hcl::edit::structure::Structure;
    let line_of = |span: Option<std::ops::Range<usize>>| span.map_or(0, |s| lines.line_of(s.start));
    let mut entries = Vec::new();
    for structure in body.iter() {
        match structure {
            Structure::Attribute(attr) => {
                let key = attr.key.as_str().to_string();
                let line = line_of(attr.span());
                let value = hcl_literal(&attr.value).ok_or_else(|| {
                    ConfigError::at(
                        line,
                        format!(
                            "{key} must be a literal value; HCL expressions, functions and \
                             ${{...}} interpolation are not supported"
                        ),
                    )
                })?;
                entries.push(Entry::Setting { key, value, line });
            }
            Structure::Block(block) => entries.push(Entry::Stanza(Stanza {
                kind: block.ident.as_str().to_string(),
                labels: block
                    .labels
                    .iter()
                    .map(|l| l.as_str().to_string())
                    .collect(),
                body: hcl_body(&block.body, lines)?,
                line: line_of(block.span()),
            })),
        }
    }
    Ok(Body { entries })
}

/// Evaluate an HCL expression that must be a literal (string, number, bool, null, heredoc,
/// list or object of those) into JSON. Vault's HCL1 has no variables or functions, so any
/// expression needing them is refused rather than guessed at.
fn hcl_literal(expr: &hcl::edit::expr::Expression) -> Option<Value> {
    use hcl::eval::Evaluate;
    let expr = hcl::Expression::from(expr.clone());
    // Only literals reach the evaluator: hcl-rs's arithmetic panics on inputs such as
    // `1 % 0` (found by fuzzing), and a configuration has no use for expressions anyway.
    if !is_literal(&expr) {
        return None;
    }
    let value = expr.evaluate(&hcl::eval::Context::new()).ok()?;
    serde_json::to_value(value).ok()
}

/// Whether an expression is a literal: scalars, templates without interpolation or
/// directives (quoted strings, heredocs), and arrays and objects of literals.
fn is_literal(expr: &hcl::Expression) -> bool {
    use hcl::expr::{Expression, ObjectKey};
    match expr {
        Expression::Null | Expression::Bool(_) | Expression::Number(_) | Expression::String(_) => {
            true
        }
        Expression::Array(items) => items.iter().all(is_literal),
        Expression::Object(map) => map.iter().all(|(k, v)| {
            let key_ok = match k {
                ObjectKey::Identifier(_) => true,
                ObjectKey::Expression(e) => is_literal(e),
                _ => false,
            };
            key_ok && is_literal(v)
        }),
        Expression::TemplateExpr(t) => hcl::template::Template::from_expr(t)
            .map(|tpl| {
                tpl.elements()
                    .iter()
                    .all(|e| matches!(e, hcl::template::Element::Literal(_)))
            })
            .unwrap_or(false),
        _ => false,
    }
}

// ---------------------------------------------------------------------------------------------
// JSON
// ---------------------------------------------------------------------------------------------

/// Top-level keys whose JSON value is a map from a type label to a stanza body, mirroring
/// how HCL's JSON form spells `storage "file" { ... }` as `{"storage": {"file": {...}}}`.
/// Only stanzas Coffer interprets need expanding; other keys stay settings and are warned
/// about by name like any unknown key.
const LABELLED_STANZAS: &[&str] = &["storage", "backend", "listener"];

/// Parse JSON text into a [`Body`].
pub(crate) fn from_json(text: &str) -> Result<Body, ConfigError> {
    // serde_json validates first so syntax errors carry its precise line and column; the
    // line-tracking reader below then only ever sees well-formed input.
    if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(text) {
        let full = e.to_string();
        let message = match full.rfind(" at line ") {
            Some(i) => full[..i].to_string(),
            None => full,
        };
        return Err(ConfigError::Syntax {
            line: e.line(),
            column: e.column(),
            message,
        });
    }
    let lines = LineIndex::new(text);
    let mut reader = JsonReader { text, pos: 0 };
    let root = reader.value()?;
    let LocatedJson::Object(members) = root.value else {
        return Err(ConfigError::at(
            lines.line_of(root.offset),
            "the configuration must be a JSON object",
        ));
    };
    let line = |offset| lines.line_of(offset);
    let mut entries = Vec::new();
    for member in members {
        let key_line = line(member.key_offset);
        if LABELLED_STANZAS.contains(&member.key.as_str()) && member.value.is_container() {
            expand_stanzas(&member.key, member.value, key_line, &line, &mut entries)?;
        } else {
            entries.push(Entry::Setting {
                key: member.key,
                value: member.value.into_json(),
                line: key_line,
            });
        }
    }
    Ok(Body { entries })
}

/// Turn `{"tcp": {...}}`, `{"tcp": [{...}, {...}]}` or `[{"tcp": {...}}, ...]` into stanzas.
fn expand_stanzas(
    kind: &str,
    value: Located,
    line: usize,
    line_of: &dyn Fn(usize) -> usize,
    out: &mut Vec<Entry>,
) -> Result<(), ConfigError> {
    match value.value {
        LocatedJson::Array(items) => {
            for item in items {
                let item_line = line_of(item.offset);
                expand_stanzas(kind, item, item_line, line_of, out)?;
            }
        }
        LocatedJson::Object(members) => {
            for member in members {
                let label_line = line_of(member.key_offset);
                let bodies = match member.value.value {
                    LocatedJson::Array(items) => items,
                    other => vec![Located {
                        value: other,
                        offset: member.value.offset,
                    }],
                };
                for body in bodies {
                    let LocatedJson::Object(fields) = body.value else {
                        return Err(ConfigError::at(
                            label_line,
                            format!("{kind} \"{}\" must be an object of settings", member.key),
                        ));
                    };
                    let entries = fields
                        .into_iter()
                        .map(|f| Entry::Setting {
                            line: line_of(f.key_offset),
                            key: f.key,
                            value: f.value.into_json(),
                        })
                        .collect();
                    out.push(Entry::Stanza(Stanza {
                        kind: kind.to_string(),
                        labels: vec![member.key.clone()],
                        body: Body { entries },
                        line: label_line,
                    }));
                }
            }
        }
        LocatedJson::Scalar(_) => {
            return Err(ConfigError::at(
                line,
                format!("{kind} must be an object keyed by {kind} type"),
            ));
        }
    }
    Ok(())
}

/// A JSON value with the byte offset where it starts.
struct Located {
    value: LocatedJson,
    offset: usize,
}

enum LocatedJson {
    Object(Vec<Member>),
    Array(Vec<Located>),
    Scalar(Value),
}

struct Member {
    key: String,
    key_offset: usize,
    value: Located,
}

impl Located {
    fn is_container(&self) -> bool {
        !matches!(self.value, LocatedJson::Scalar(_))
    }

    fn into_json(self) -> Value {
        match self.value {
            LocatedJson::Scalar(v) => v,
            LocatedJson::Array(items) => {
                Value::Array(items.into_iter().map(Located::into_json).collect())
            }
            LocatedJson::Object(members) => Value::Object(
                members
                    .into_iter()
                    .map(|m| (m.key, m.value.into_json()))
                    .collect(),
            ),
        }
    }
}

/// A reader for already-validated JSON that records where every value and key starts.
/// serde_json has no span API; tokens are cut out here and decoded by serde_json, so string
/// escapes and number syntax are still handled by the real parser.
struct JsonReader<'a> {
    text: &'a str,
    pos: usize,
}

impl JsonReader<'_> {
    fn skip_whitespace(&mut self) {
        let rest = &self.text[self.pos..];
        self.pos += rest.len() - rest.trim_start_matches([' ', '\t', '\n', '\r']).len();
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn expect(&mut self, byte: u8) -> Result<(), ConfigError> {
        self.skip_whitespace();
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.unexpected())
        }
    }

    /// Only reachable if this reader disagrees with serde_json about what is valid.
    fn unexpected(&self) -> ConfigError {
        let line = LineIndex::new(self.text).line_of(self.pos);
        ConfigError::Syntax {
            line,
            column: 0,
            message: "unexpected input".to_string(),
        }
    }

    fn value(&mut self) -> Result<Located, ConfigError> {
        self.skip_whitespace();
        let offset = self.pos;
        let value = match self.peek() {
            Some(b'{') => {
                self.pos += 1;
                let mut members = Vec::new();
                self.skip_whitespace();
                if self.peek() == Some(b'}') {
                    self.pos += 1;
                } else {
                    loop {
                        self.skip_whitespace();
                        let key_offset = self.pos;
                        let key = self.string()?;
                        if let Some(first) = members.iter().find(|m: &&Member| m.key == key) {
                            // Same rule as HCL, whose parser refuses a redefined attribute: a
                            // silently shadowed setting is more likely a mistake than intent.
                            let lines = LineIndex::new(self.text);
                            return Err(ConfigError::at(
                                lines.line_of(key_offset),
                                format!(
                                    "\"{key}\" is defined twice in the same object (first on line {})",
                                    lines.line_of(first.key_offset)
                                ),
                            ));
                        }
                        self.expect(b':')?;
                        let value = self.value()?;
                        members.push(Member {
                            key,
                            key_offset,
                            value,
                        });
                        self.skip_whitespace();
                        match self.peek() {
                            Some(b',') => self.pos += 1,
                            Some(b'}') => {
                                self.pos += 1;
                                break;
                            }
                            _ => return Err(self.unexpected()),
                        }
                    }
                }
                LocatedJson::Object(members)
            }
            Some(b'[') => {
                self.pos += 1;
                let mut items = Vec::new();
                self.skip_whitespace();
                if self.peek() == Some(b']') {
                    self.pos += 1;
                } else {
                    loop {
                        items.push(self.value()?);
                        self.skip_whitespace();
                        match self.peek() {
                            Some(b',') => self.pos += 1,
                            Some(b']') => {
                                self.pos += 1;
                                break;
                            }
                            _ => return Err(self.unexpected()),
                        }
                    }
                }
                LocatedJson::Array(items)
            }
            Some(b'"') => LocatedJson::Scalar(Value::String(self.string()?)),
            Some(_) => {
                let rest = &self.text[self.pos..];
                let len = rest
                    .find([',', '}', ']', ' ', '\t', '\n', '\r'])
                    .unwrap_or(rest.len());
                let token = &rest[..len];
                self.pos += len;
                LocatedJson::Scalar(serde_json::from_str(token).map_err(|_| self.unexpected())?)
            }
            None => return Err(self.unexpected()),
        };
        Ok(Located { value, offset })
    }

    fn string(&mut self) -> Result<String, ConfigError> {
        let start = self.pos;
        if self.peek() != Some(b'"') {
            return Err(self.unexpected());
        }
        let bytes = self.text.as_bytes();
        let mut i = start + 1;
        while i < bytes.len() && bytes[i] != b'"' {
            i += if bytes[i] == b'\\' { 2 } else { 1 };
        }
        if i >= bytes.len() {
            return Err(self.unexpected());
        }
        self.pos = i + 1;
        serde_json::from_str(&self.text[start..self.pos]).map_err(|_| self.unexpected())
    }
}
