//! Plain aligned tables for terminals. Every cell is escaped here too, so no
//! row can carry a control character whatever built it.

use super::stdout::out;

pub fn print(headers: &[&str], rows: &[Vec<String>]) -> anyhow::Result<()> {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            r.iter()
                .map(|c| crate::text::escape(c).into_owned())
                .collect()
        })
        .collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
    }
    let line = |cells: &[String]| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{:<w$}  ", c, w = widths[i]));
            }
        }
        out(s.trim_end())
    };
    line(&headers.iter().map(|h| h.to_string()).collect::<Vec<_>>())?;
    for r in &rows {
        line(r)?;
    }
    if rows.is_empty() {
        out("(none)")?;
    }
    Ok(())
}
