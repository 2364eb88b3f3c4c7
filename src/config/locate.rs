//! Maps a key path such as `policies[2].approvers[0]` to a line and column.
//!
//! serde's model forgets where values came from, so validation records the
//! path of each bad value and this module looks the span up in a second,
//! span-preserving parse of the same text. A path that cannot be found
//! (a defaulted value) falls back to its nearest existing parent.

use std::ops::Range;
use toml_edit::{ImDocument, Item, Table, Value};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// A path into the document, built with `path!`-like helpers in validate.rs.
pub type Path = Vec<Seg>;

pub fn render(path: &Path) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

pub struct Locator<'a> {
    text: &'a str,
    doc: Option<ImDocument<&'a str>>,
}

impl<'a> Locator<'a> {
    pub fn new(text: &'a str) -> Self {
        Locator {
            text,
            doc: ImDocument::parse(text).ok(),
        }
    }

    /// 1-based line and column of the value at `path`.
    pub fn line_col(&self, path: &Path) -> (usize, usize) {
        let offset = self.span(path).map(|r| r.start).unwrap_or(0);
        offset_to_line_col(self.text, offset)
    }

    /// 1-based line and column of the key that ends `path` (an unknown key
    /// is reported where its name is written); falls back to `line_col`.
    pub fn key_line_col(&self, path: &Path) -> (usize, usize) {
        let key_span = match path.split_last() {
            Some((Seg::Key(key), parent)) => match self.walk(parent) {
                (_, Some(Node::Table(t))) | (_, Some(Node::Item(Item::Table(t)))) => {
                    t.key(key).and_then(|k| k.span())
                }
                (_, Some(Node::Item(Item::Value(Value::InlineTable(t)))))
                | (_, Some(Node::Value(Value::InlineTable(t)))) => {
                    t.key(key).and_then(|k| k.span())
                }
                _ => None,
            },
            _ => None,
        };
        match key_span {
            Some(r) => offset_to_line_col(self.text, r.start),
            None => self.line_col(path),
        }
    }

    fn span(&self, path: &Path) -> Option<Range<usize>> {
        self.walk(path).0
    }

    /// The span of the deepest node of `path` that exists, and the node
    /// `path` names when all of it exists.
    fn walk(&self, path: &[Seg]) -> (Option<Range<usize>>, Option<Node<'_>>) {
        let Some(doc) = self.doc.as_ref() else {
            return (None, None);
        };
        let mut best: Option<Range<usize>> = None;
        let mut cur = Node::Table(doc.as_table());
        for seg in path {
            let next = match (&cur, seg) {
                (Node::Table(t), Seg::Key(k)) => t.get(k).map(Node::Item),
                (Node::Table(_), Seg::Index(_)) => None,
                (Node::Item(item), Seg::Key(k)) => match item {
                    Item::Table(t) => t.get(k).map(Node::Item),
                    Item::Value(Value::InlineTable(t)) => t.get(k).map(Node::Value),
                    _ => None,
                },
                (Node::Item(item), Seg::Index(i)) => match item {
                    Item::ArrayOfTables(a) => a.get(*i).map(Node::Table),
                    Item::Value(Value::Array(a)) => a.get(*i).map(Node::Value),
                    _ => None,
                },
                (Node::Value(v), Seg::Key(k)) => {
                    v.as_inline_table().and_then(|t| t.get(k)).map(Node::Value)
                }
                (Node::Value(v), Seg::Index(i)) => {
                    v.as_array().and_then(|a| a.get(*i)).map(Node::Value)
                }
            };
            match next {
                Some(n) => {
                    if let Some(s) = n.span() {
                        best = Some(s);
                    }
                    cur = n;
                }
                None => return (best, None),
            }
        }
        (best, Some(cur))
    }
}

enum Node<'d> {
    Table(&'d Table),
    Item(&'d Item),
    Value(&'d Value),
}

impl Node<'_> {
    fn span(&self) -> Option<Range<usize>> {
        match self {
            Node::Table(t) => t.span(),
            Node::Item(Item::Table(t)) => t.span(),
            Node::Item(i) => i.span(),
            Node::Value(v) => v.span(),
        }
    }
}

pub fn offset_to_line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rfind('\n').map(|p| offset - p).unwrap_or(offset + 1);
    (line, col)
}
