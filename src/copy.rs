//! `COPY ... TO STDOUT` as PostgreSQL writes it: the options (`FORMAT text | csv | binary`,
//! `DELIMITER`, `NULL`, `QUOTE`, `ESCAPE`, `HEADER`, `FORCE_QUOTE`, in the option list or the
//! legacy syntax) and the bytes of each row. Rows come in as the wire encodes them (a DataRow:
//! a length-prefixed value per column, text or binary), so COPY writes exactly the values a
//! query would return.
//!
//! pgwire's own COPY encoder is not used for the lines: it ignores ESCAPE and quotes a CSV value
//! that contains the NULL string rather than one that equals it, and its text format does not
//! escape the delimiter; PostgreSQL's rules (copyto.c) are written here. pgwire's CopyResponse
//! still frames the stream (and writes the binary trailer).

use datafusion::sql::sqlparser::ast::{CopyLegacyCsvOption, CopyLegacyOption, CopyOption};

use crate::error::LaloError;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CopyFormat {
    Text,
    Csv,
    Binary,
}

/// Which columns CSV quotes even when they need no quotes.
#[derive(Debug, Clone, PartialEq)]
pub enum ForceQuote {
    None,
    All,
    Columns(Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct CopyOptions {
    pub format: CopyFormat,
    pub delimiter: char,
    pub null: String,
    pub quote: char,
    pub escape: char,
    pub header: bool,
    pub force_quote: ForceQuote,
}

impl CopyOptions {
    /// The options of a `COPY ... TO STDOUT`, checked as PostgreSQL checks them.
    pub fn parse(options: &[CopyOption], legacy: &[CopyLegacyOption]) -> Result<CopyOptions, LaloError> {
        let bad = |m: String| LaloError::Syntax(m);
        let mut format = CopyFormat::Text;
        let (mut delimiter, mut null, mut quote, mut escape) = (None, None, None, None);
        let mut header = false;
        let mut force_quote = ForceQuote::None;
        for o in options {
            match o {
                CopyOption::Format(f) => {
                    format = match f.value.to_ascii_lowercase().as_str() {
                        "text" => CopyFormat::Text,
                        "csv" => CopyFormat::Csv,
                        "binary" => CopyFormat::Binary,
                        other => return Err(bad(format!("COPY format \"{other}\" not recognized"))),
                    }
                }
                CopyOption::Delimiter(c) => delimiter = Some(*c),
                CopyOption::Null(s) => null = Some(s.clone()),
                CopyOption::Quote(c) => quote = Some(*c),
                CopyOption::Escape(c) => escape = Some(*c),
                CopyOption::Header(h) => header = *h,
                CopyOption::ForceQuote(cols) => force_quote = columns(cols.iter().map(|c| c.value.clone()).collect()),
                CopyOption::Encoding(e) if e.eq_ignore_ascii_case("utf8") || e.eq_ignore_ascii_case("utf-8") => {}
                other => return Err(LaloError::NotSupported(format!("COPY option {other} is not supported"))),
            }
        }
        for o in legacy {
            match o {
                CopyLegacyOption::Binary => format = CopyFormat::Binary,
                CopyLegacyOption::Delimiter(c) => delimiter = Some(*c),
                CopyLegacyOption::Null(s) => null = Some(s.clone()),
                CopyLegacyOption::Header => header = true,
                CopyLegacyOption::Csv(csv) => {
                    format = CopyFormat::Csv;
                    for c in csv {
                        match c {
                            CopyLegacyCsvOption::Header => header = true,
                            CopyLegacyCsvOption::Quote(q) => quote = Some(*q),
                            CopyLegacyCsvOption::Escape(e) => escape = Some(*e),
                            CopyLegacyCsvOption::ForceQuote(cols) => force_quote = columns(cols.iter().map(|c| c.value.clone()).collect()),
                            other => return Err(LaloError::NotSupported(format!("COPY option {other} is not supported"))),
                        }
                    }
                }
                other => return Err(LaloError::NotSupported(format!("COPY option {other} is not supported"))),
            }
        }
        let csv = format == CopyFormat::Csv;
        if format == CopyFormat::Binary && (delimiter.is_some() || null.is_some() || header) {
            return Err(bad("cannot specify DELIMITER, NULL or HEADER in BINARY mode".into()));
        }
        if !csv && (quote.is_some() || escape.is_some() || force_quote != ForceQuote::None) {
            return Err(bad("COPY QUOTE, ESCAPE and FORCE_QUOTE are available only in CSV mode".into()));
        }
        let delimiter = delimiter.unwrap_or(if csv { ',' } else { '\t' });
        let quote = quote.unwrap_or('"');
        let escape = escape.unwrap_or(quote);
        let null = null.unwrap_or_else(|| if csv { String::new() } else { "\\N".into() });
        if delimiter == '\r' || delimiter == '\n' || (!csv && delimiter == '\\') {
            return Err(bad("COPY delimiter cannot be newline, carriage return or backslash".into()));
        }
        if csv && delimiter == quote {
            return Err(bad("COPY delimiter and quote must be different".into()));
        }
        if null.contains(delimiter) {
            return Err(bad("COPY delimiter character must not appear in the NULL specification".into()));
        }
        Ok(CopyOptions { format, delimiter, null, quote, escape, header, force_quote })
    }

    /// The header line (text and CSV only): the column names.
    pub fn header_line(&self, names: &[String]) -> Option<Vec<u8>> {
        if !self.header || self.format == CopyFormat::Binary {
            return None;
        }
        let mut out = Vec::new();
        for (i, n) in names.iter().enumerate() {
            if i > 0 {
                push_char(&mut out, self.delimiter);
            }
            match self.format {
                CopyFormat::Csv => self.csv_value(&mut out, n.as_bytes(), false, names.len() == 1),
                _ => self.text_value(&mut out, n.as_bytes()),
            }
        }
        out.push(b'\n');
        Some(out)
    }

    /// The signature, flags and header extension that open a binary COPY.
    pub fn binary_header() -> Vec<u8> {
        let mut out = b"PGCOPY\n\xff\r\n\0".to_vec();
        out.extend_from_slice(&0i32.to_be_bytes());
        out.extend_from_slice(&0i32.to_be_bytes());
        out
    }

    /// Whether each of these columns is force-quoted.
    pub fn forced(&self, names: &[String]) -> Vec<bool> {
        names
            .iter()
            .map(|n| match &self.force_quote {
                ForceQuote::None => false,
                ForceQuote::All => true,
                ForceQuote::Columns(cols) => cols.iter().any(|c| c == n),
            })
            .collect()
    }

    /// One row: its DataRow's values (`count` length-prefixed fields) as a COPY line or, in
    /// binary, a tuple (the field count, then the fields as they are).
    pub fn row(&self, count: usize, data: &[u8], forced: &[bool]) -> Vec<u8> {
        if self.format == CopyFormat::Binary {
            let mut out = Vec::with_capacity(data.len() + 2);
            out.extend_from_slice(&(count as i16).to_be_bytes());
            out.extend_from_slice(data);
            return out;
        }
        let mut out = Vec::with_capacity(data.len() + 8);
        let mut pos = 0;
        for i in 0..count {
            if i > 0 {
                push_char(&mut out, self.delimiter);
            }
            let Some(len) = data.get(pos..pos + 4).map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]])) else { break };
            pos += 4;
            if len < 0 {
                out.extend_from_slice(self.null.as_bytes());
                continue;
            }
            let Some(v) = data.get(pos..pos + len as usize) else { break };
            pos += len as usize;
            match self.format {
                CopyFormat::Csv => self.csv_value(&mut out, v, forced.get(i).copied().unwrap_or(false), count == 1),
                _ => self.text_value(&mut out, v),
            }
        }
        out.push(b'\n');
        out
    }

    /// A text-format value: backslash, the delimiter and control characters escaped.
    fn text_value(&self, out: &mut Vec<u8>, v: &[u8]) {
        let delim = self.delimiter.is_ascii().then_some(self.delimiter as u8);
        for &b in v {
            match b {
                b'\\' => out.extend_from_slice(b"\\\\"),
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                b'\t' => out.extend_from_slice(b"\\t"),
                0x08 => out.extend_from_slice(b"\\b"),
                0x0c => out.extend_from_slice(b"\\f"),
                0x0b => out.extend_from_slice(b"\\v"),
                b if Some(b) == delim => {
                    out.push(b'\\');
                    out.push(b);
                }
                b => out.push(b),
            }
        }
    }

    /// A CSV value, quoted when forced, when it reads as the NULL string, when it holds the
    /// delimiter, the quote or a line break (or is a lone `\.`); quote and escape characters
    /// inside are escaped.
    fn csv_value(&self, out: &mut Vec<u8>, v: &[u8], forced: bool, single: bool) {
        let s = String::from_utf8_lossy(v);
        let needs = forced
            || s == self.null
            || (single && s == "\\.")
            || s.chars().any(|c| c == self.delimiter || c == self.quote || c == '\n' || c == '\r');
        if !needs {
            out.extend_from_slice(v);
            return;
        }
        push_char(out, self.quote);
        for c in s.chars() {
            if c == self.quote || c == self.escape {
                push_char(out, self.escape);
            }
            push_char(out, c);
        }
        push_char(out, self.quote);
    }
}

fn columns(cols: Vec<String>) -> ForceQuote {
    if cols.len() == 1 && cols[0] == "*" || cols.is_empty() {
        ForceQuote::All
    } else {
        ForceQuote::Columns(cols)
    }
}

fn push_char(out: &mut Vec<u8>, c: char) {
    let mut buf = [0u8; 4];
    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn datarow(values: &[Option<&str>]) -> Vec<u8> {
        let mut d = Vec::new();
        for v in values {
            match v {
                Some(v) => {
                    d.extend_from_slice(&(v.len() as i32).to_be_bytes());
                    d.extend_from_slice(v.as_bytes());
                }
                None => d.extend_from_slice(&(-1i32).to_be_bytes()),
            }
        }
        d
    }

    fn opts(format: CopyFormat) -> CopyOptions {
        let csv = format == CopyFormat::Csv;
        CopyOptions {
            format,
            delimiter: if csv { ',' } else { '\t' },
            null: if csv { String::new() } else { "\\N".into() },
            quote: '"',
            escape: '"',
            header: false,
            force_quote: ForceQuote::None,
        }
    }

    #[test]
    fn lines_as_postgresql_writes_them() {
        let row = datarow(&[Some("a|b"), None, Some("say \"hi\""), Some("")]);
        let text = CopyOptions { delimiter: '|', null: "NULL".into(), ..opts(CopyFormat::Text) };
        assert_eq!(String::from_utf8(text.row(4, &row, &[])).unwrap(), "a\\|b|NULL|say \"hi\"|\n");
        let csv = opts(CopyFormat::Csv);
        assert_eq!(String::from_utf8(csv.row(4, &row, &[])).unwrap(), "a|b,,\"say \"\"hi\"\"\",\"\"\n");
        let csv = CopyOptions { delimiter: ';', quote: '\'', escape: '\\', null: "-".into(), ..opts(CopyFormat::Csv) };
        assert_eq!(String::from_utf8(csv.row(4, &row, &[true, false, false, false])).unwrap(), "'a|b';-;say \"hi\";\n");
    }

    #[test]
    fn binary_tuples_carry_the_fields_as_they_are() {
        let row = datarow(&[Some("xy"), None]);
        let out = opts(CopyFormat::Binary).row(2, &row, &[]);
        assert_eq!(&out[..2], &2i16.to_be_bytes());
        assert_eq!(&out[2..], &row[..]);
        assert_eq!(&CopyOptions::binary_header()[..11], b"PGCOPY\n\xff\r\n\0");
    }
}
