//! Plain-text tables for the human report.
//!
//! Columns are sized to their widest cell (counted in characters, since
//! "µs" and "×" are more than one byte in UTF-8). The first column is
//! left-aligned (it names the row); the others are right-aligned so digits
//! line up, unless marked as text with [`Table::text_column`].

/// A table under construction.
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
    left: Vec<bool>,
    notes: Vec<String>,
}

impl Table {
    pub fn new<S: AsRef<str>>(headers: &[S]) -> Table {
        Table {
            headers: headers.iter().map(|h| h.as_ref().to_string()).collect(),
            rows: Vec::new(),
            left: (0..headers.len()).map(|i| i == 0).collect(),
            notes: Vec::new(),
        }
    }

    /// A row that could not be measured: "skipped" in the table, the reason
    /// in a note under it (reasons are long; they would stretch a column).
    pub fn skipped(&mut self, first: String, why: &str) -> &mut Table {
        self.notes.push(format!("{first}: skipped: {why}"));
        self.rows.push(vec![first, "skipped".into()]);
        self
    }

    /// Left-align column `col` (it holds words, not numbers).
    pub fn text_column(&mut self, col: usize) -> &mut Table {
        if let Some(l) = self.left.get_mut(col) {
            *l = true;
        }
        self
    }

    /// Add a row; missing cells are left empty.
    pub fn row(&mut self, cells: Vec<String>) -> &mut Table {
        self.rows.push(cells);
        self
    }

    /// Render with two spaces between columns and a rule under the header.
    pub fn render(&self) -> String {
        let cols = self.headers.len();
        let width = |s: &str| s.chars().count();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| width(h)).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate().take(cols) {
                widths[i] = widths[i].max(width(cell));
            }
        }
        let line = |cells: &[String]| {
            let mut out = String::from("  ");
            for (i, w) in widths.iter().enumerate() {
                let cell = cells.get(i).map(String::as_str).unwrap_or("");
                let pad = " ".repeat(w - width(cell));
                if i > 0 {
                    out.push_str("  ");
                }
                if self.left[i] {
                    out.push_str(cell);
                    out.push_str(&pad);
                } else {
                    out.push_str(&pad);
                    out.push_str(cell);
                }
            }
            out.trim_end().to_string() + "\n"
        };
        let mut out = line(&self.headers);
        let total: usize = widths.iter().sum::<usize>() + 2 * (cols - 1);
        out.push_str(&format!("  {}\n", "-".repeat(total)));
        for row in &self.rows {
            out.push_str(&line(row));
        }
        for note in &self.notes {
            out.push_str(&format!("  {note}\n"));
        }
        out
    }

    /// Render as a Markdown table (for results.md).
    pub fn markdown(&self) -> String {
        let esc = |s: &str| s.replace('|', "\\|");
        let mut out = format!(
            "| {} |\n|{}\n",
            self.headers
                .iter()
                .map(|h| esc(h))
                .collect::<Vec<_>>()
                .join(" | "),
            self.left
                .iter()
                .map(|&l| if l { "---|" } else { "---:|" })
                .collect::<String>()
        );
        for row in &self.rows {
            let cells: Vec<String> = (0..self.headers.len())
                .map(|i| esc(row.get(i).map(String::as_str).unwrap_or("")))
                .collect();
            out.push_str(&format!("| {} |\n", cells.join(" | ")));
        }
        for note in &self.notes {
            out.push_str(&format!("\n{}\n", esc(note)));
        }
        out
    }

    /// Render as an HTML `<table>` (for index.html); notes follow as `<p>`.
    pub fn html(&self) -> String {
        let cell = |tag: &str, i: usize, text: &str| {
            let class = if self.left.get(i).copied().unwrap_or(true) {
                ""
            } else {
                " class=\"num\""
            };
            format!("<{tag}{class}>{}</{tag}>", escape(text))
        };
        let mut out = String::from("<table>\n<thead><tr>");
        for (i, h) in self.headers.iter().enumerate() {
            out.push_str(&cell("th", i, h));
        }
        out.push_str("</tr></thead>\n<tbody>\n");
        for row in &self.rows {
            out.push_str("<tr>");
            for i in 0..self.headers.len() {
                out.push_str(&cell("td", i, row.get(i).map(String::as_str).unwrap_or("")));
            }
            out.push_str("</tr>\n");
        }
        out.push_str("</tbody>\n</table>\n");
        for note in &self.notes {
            out.push_str(&format!("<p class=\"note\">{}</p>\n", escape(note)));
        }
        out
    }
}

/// Text made safe inside HTML or SVG: `&`, `<`, `>` and quotes escaped.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_columns() {
        let mut t = Table::new(&["what", "ns"]);
        t.row(vec!["a".into(), "1.0".into()]);
        t.row(vec!["long name".into(), "123.0 µs".into()]);
        let s = t.render();
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[2].ends_with("     1.0"), "{s}");
        assert!(t.markdown().starts_with("| what | ns |\n|---|---:|\n"));
        let html = t.html();
        assert!(
            html.contains("<th>what</th><th class=\"num\">ns</th>"),
            "{html}"
        );
        assert_eq!(escape("a<b & \"c\""), "a&lt;b &amp; &quot;c&quot;");
    }
}
