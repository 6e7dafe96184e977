//! One column's classification from its evidence: what its name and comment say, and what share
//! of its sampled values have a kind's shape. Shape evidence alone is enough for shapes that
//! carry their own check (a Luhn digit, an IBAN checksum, an address with a domain); a name alone
//! never masks a column whose values contradict it; names of people and birth dates need a name
//! that says so and values that fit.

use datafusion::arrow::datatypes::DataType;

use super::detect::{comment_kind, looks_like_date, looks_like_name, name_kind, value_kind};
use super::{Classification, PiiKind};

/// Share of non-empty samples that must have one shape for the column to have it.
const SHAPE_SHARE: f64 = 0.8;
/// Fewest samples shape evidence is read from.
const MIN_SAMPLES: usize = 3;

/// The evidence for one column.
pub struct ColumnEvidence<'a> {
    pub table: &'a str,
    pub column: &'a str,
    pub comment: &'a str,
    pub data_type: &'a DataType,
    /// Sampled values as text (nulls left out).
    pub samples: &'a [String],
}

/// How sure a kind's shape alone makes lalo (no name evidence).
fn shape_confidence(kind: PiiKind) -> f64 {
    match kind {
        PiiKind::Email | PiiKind::Iban => 0.95,
        PiiKind::PaymentCard => 0.9,
        // Part numbers can be written AAA-GG-SSSS and versions in four dotted numbers; these
        // shapes, like a phone number's digit groups, need the name too to be masked.
        PiiKind::NationalId | PiiKind::IpAddress | PiiKind::Phone => 0.7,
        PiiKind::DateOfBirth | PiiKind::PersonName => 0.0,
    }
}

/// Classify one column, or `None` when nothing points at personal data.
pub fn classify(ev: &ColumnEvidence<'_>) -> Option<Classification> {
    // Placeholders for a missing value say nothing about the column's shape.
    let samples: Vec<&str> = ev.samples.iter().map(|s| s.trim()).filter(|s| !s.is_empty() && !is_placeholder(s)).collect();
    let n = samples.len();
    let share = |f: &dyn Fn(&str) -> bool| if n == 0 { 0.0 } else { samples.iter().filter(|s| f(s)).count() as f64 / n as f64 };
    // The dominant shape among the values, with its share.
    let shape = if n >= MIN_SAMPLES {
        let mut counts: std::collections::BTreeMap<PiiKind, usize> = Default::default();
        for s in &samples {
            if let Some(k) = value_kind(s) {
                *counts.entry(k).or_default() += 1;
            }
        }
        counts.into_iter().max_by_key(|(_, c)| *c).map(|(k, c)| (k, c as f64 / n as f64))
    } else {
        None
    };
    let named = name_kind(ev.column).map(|k| (k, format!("column name \"{}\"", ev.column))).or_else(|| {
        comment_kind(ev.comment).map(|k| (k, format!("column comment \"{}\"", one_line(ev.comment))))
    });
    let said = |k: PiiKind, share: f64| format!("{}/{} sampled values look like {}", (share * n as f64).round() as usize, n, k.as_str().replace('_', " "));
    let (kind, confidence, evidence) = match (named, shape) {
        // Name and values agree.
        (Some((k, why)), Some((s, sh))) if k == s && sh >= SHAPE_SHARE => (k, 0.99, format!("{why}; {}", said(s, sh))),
        // Values with a self-checking shape, whatever the name says.
        (_, Some((s, sh))) if sh >= SHAPE_SHARE && shape_confidence(s) > 0.0 => (s, shape_confidence(s) * sh.min(1.0), said(s, sh)),
        (Some((k, why)), _) => {
            let (confidence, detail) = named_only(k, ev, &samples, &share)?;
            (k, confidence, if detail.is_empty() { why } else { format!("{why}; {detail}") })
        }
        // The name of a row that is a person: `name` in a table of authors, users or patients.
        (None, _) if names_the_row(ev) && n >= MIN_SAMPLES => {
            let sh = share(&|s| looks_like_name(s));
            if sh < SHAPE_SHARE {
                return None;
            }
            let why = format!("column \"{}\" names a row of \"{}\"; {}", ev.column, table_name(ev.table), format!("{}/{n} sampled values read as names", (sh * n as f64).round() as usize));
            (PiiKind::PersonName, 0.85, why)
        }
        (None, _) => return None,
    };
    Some(Classification {
        table: ev.table.to_ascii_lowercase(),
        column: ev.column.to_ascii_lowercase(),
        kind,
        confidence: (confidence * 100.0).round() / 100.0,
        evidence,
        mask: kind.default_mask(ev.data_type).to_string(),
    })
}

/// Nouns for tables whose rows are people.
const PERSON_TABLES: &[&str] = &[
    "person", "people", "user", "customer", "client", "employee", "staff", "student", "teacher", "instructor",
    "professor", "author", "patient", "member", "contact", "driver", "passenger", "player", "doctor", "nurse",
    "worker", "applicant", "candidate", "guest", "subscriber", "reviewer", "manager", "agent", "tenant", "voter",
];

fn table_name(full: &str) -> &str {
    full.rsplit('.').next().unwrap_or(full)
}

/// Whether the column is the name of the row in a table of people: `name`, `full_name`,
/// `<table>name` or `<table>_name` (`author.authorname`, `users.user_name`).
fn names_the_row(ev: &ColumnEvidence<'_>) -> bool {
    let table = super::detect::words(table_name(ev.table));
    let Some(noun) = table.last() else { return false };
    let noun = noun.strip_suffix('s').filter(|n| PERSON_TABLES.contains(n)).unwrap_or(noun);
    if !PERSON_TABLES.contains(&noun) {
        return false;
    }
    let col = super::detect::words(ev.column);
    let joined = col.concat();
    joined == "name" || joined == format!("{noun}name") || joined == format!("{}name", table.concat())
}

/// A name that says personal data, with no values to check it against (an empty or unreadable
/// table, a sparse column): masked by default, since nothing contradicts the name.
const NAME_ONLY: f64 = 0.8;

fn is_text(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

/// Confidence for a column whose name says `k` and whose values did not show the shape on
/// their own: what the values (or the type) add, or `None` when they contradict the name.
fn named_only(k: PiiKind, ev: &ColumnEvidence<'_>, samples: &[&str], share: &dyn Fn(&dyn Fn(&str) -> bool) -> f64) -> Option<(f64, String)> {
    let n = samples.len();
    let dated = matches!(ev.data_type, DataType::Date32 | DataType::Date64 | DataType::Timestamp(_, _));
    let numeric = ev.data_type.is_numeric();
    let fit = |sh: f64, what: &str| format!("{}/{n} sampled values {what}", (sh * n as f64).round() as usize);
    match k {
        PiiKind::DateOfBirth if dated => Some((0.95, "a date column".into())),
        PiiKind::DateOfBirth => {
            let sh = share(&|s| looks_like_date(s));
            (n == 0 || sh >= SHAPE_SHARE).then(|| (if n == 0 { NAME_ONLY } else { 0.9 }, if n == 0 { String::new() } else { fit(sh, "are dates") }))
        }
        PiiKind::PersonName if !is_text(ev.data_type) => None,
        PiiKind::PersonName => {
            let sh = share(&|s| looks_like_name(s));
            if n == 0 {
                Some((NAME_ONLY, String::new()))
            } else {
                (sh >= SHAPE_SHARE).then(|| (0.9, fit(sh, "read as names")))
            }
        }
        // National ids are written many ways (with or without separators, letters in passports):
        // values of 6 to 20 letters and digits, mostly digits, fit.
        PiiKind::NationalId => {
            let sh = share(&|s| {
                let alnum: String = s.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
                (6..=20).contains(&alnum.len()) && alnum.chars().filter(|c| c.is_ascii_digit()).count() * 2 >= alnum.len()
            });
            if n == 0 {
                Some((NAME_ONLY, String::new()))
            } else {
                (sh >= SHAPE_SHARE).then(|| (0.9, fit(sh, "are id-like")))
            }
        }
        // Card numbers kept as numbers: the Luhn check still applies.
        PiiKind::PaymentCard if numeric && n > 0 => {
            let sh = share(&|s| super::detect::is_card(s));
            (sh >= SHAPE_SHARE).then(|| (0.95, fit(sh, "pass the Luhn check")))
        }
        // A column named for phone numbers: any run of 7 to 15 digits in groups fits (`030 1234567`),
        // in a text column (a number column named so holds amounts or ids, not dialable numbers).
        PiiKind::Phone if n > 0 && !is_text(ev.data_type) => None,
        PiiKind::Phone if n > 0 => {
            let sh = share(&|s| super::detect::digits_of(s.trim_start_matches('+'), " -.()/").is_some_and(|d| (7..=15).contains(&d.len())));
            (sh >= SHAPE_SHARE).then(|| (0.95, fit(sh, "are phone-like digit groups")))
        }
        _ if n == 0 => Some((NAME_ONLY, String::new())),
        // The name says one thing and most values are not of its shape: report it weakly only
        // when some are (a mixed column), never mask it.
        _ => {
            let sh = share(&|s| value_kind(s) == Some(k));
            (sh >= 0.2).then(|| (0.5 + 0.3 * sh, fit(sh, &format!("look like {}", k.as_str().replace('_', " ")))))
        }
    }
}

/// `N/A`, `unknown`, `-` and the like.
fn is_placeholder(s: &str) -> bool {
    matches!(
        s.to_ascii_lowercase().as_str(),
        "n/a" | "na" | "n.a." | "none" | "null" | "nil" | "unknown" | "-" | "--" | "?" | "tbd" | "not available" | "no" | "x"
    )
}

fn one_line(s: &str) -> String {
    let t: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    t.chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(column: &str, ty: DataType, values: &[&str]) -> Option<Classification> {
        let samples: Vec<String> = values.iter().map(|s| s.to_string()).collect();
        classify(&ColumnEvidence { table: "db.s.t", column, comment: "", data_type: &ty, samples: &samples })
    }

    #[test]
    fn agreeing_evidence_is_confident() {
        let c = run("c_phone", DataType::Utf8, &["25-989-741-2988", "23-768-687-3665", "11-719-748-3364"]).unwrap();
        assert_eq!((c.kind, c.confidence, c.mask.as_str()), (PiiKind::Phone, 0.99, "last4"));
        let c = run("contact", DataType::Utf8, &["a@x.org", "b@y.com", "c@z.net", "d@w.io"]).unwrap();
        assert_eq!(c.kind, PiiKind::Email);
        assert!(c.masks());
    }

    #[test]
    fn placeholders_and_sparse_columns_do_not_hide_pii() {
        let c = run("email", DataType::Utf8, &["a@x.org", "b@y.com", "N/A", "c@z.net", "unknown", "d@w.io"]).unwrap();
        assert!(c.kind == PiiKind::Email && c.masks(), "{c:?}");
        let c = run("phone_num", DataType::Utf8, &["25-989-741-2988", "23-768-687-3665", "11-719-748-3364"]).unwrap();
        assert!(c.kind == PiiKind::Phone && c.masks(), "{c:?}");
        let c = run("contact_email", DataType::Utf8, &[]).unwrap();
        assert!(c.masks(), "a name alone, nothing to contradict it: {c:?}");
    }

    #[test]
    fn look_alikes_are_not_pii() {
        assert!(run("mobile_revenue", DataType::Float64, &["1234567.89", "2345678.9", "3456789.1"]).is_none());
        assert!(run("cell_id", DataType::Int64, &["1234567", "2345678", "3456789"]).is_none());
        assert!(run("part_code", DataType::Utf8, &["123-45-6789", "234-56-7890", "345-67-8901"]).is_none_or(|c| !c.masks()));
        assert!(run("assembly_version", DataType::Utf8, &["4.0.0.0", "4.1.0.0", "2.0.0.0"]).is_none_or(|c| !c.masks()));
        assert!(run("c_name", DataType::Utf8, &["Customer#000000001", "Customer#000000002", "Customer#000000003"]).is_none());
        assert!(run("order_ref", DataType::Utf8, &["1234-5678-9012-3456", "1111-2222-3333-4444", "9876-5432-1098-7654"]).is_none_or(|c| c.kind != PiiKind::PaymentCard));
        assert!(run("version", DataType::Utf8, &["1.2.3", "1.10.0", "2.0.1"]).is_none());
        assert!(run("email_template", DataType::Utf8, &["welcome", "reset", "invoice"]).is_none());
        assert!(run("first_name", DataType::Int64, &["1", "2", "3"]).is_none());
    }

    #[test]
    fn names_need_values_that_fit() {
        let c = run("last_name", DataType::Utf8, &["Smith", "O'Neil", "García", "Lee"]).unwrap();
        assert_eq!(c.kind, PiiKind::PersonName);
        assert!(run("name", DataType::Utf8, &["Alice", "Bob", "Carol"]).is_none());
        let people = |table: &str, column: &str, values: &[&str]| {
            let samples: Vec<String> = values.iter().map(|s| s.to_string()).collect();
            classify(&ColumnEvidence { table, column, comment: "", data_type: &DataType::Utf8, samples: &samples })
        };
        let c = people("db.public.authors", "name", &["Ada Lovelace", "Alan Turing", "Grace Hopper"]).unwrap();
        assert_eq!(c.kind, PiiKind::PersonName);
        assert!(people("db.public.author", "authorname", &["Ada Lovelace", "Alan Turing", "Grace Hopper"]).is_some());
        assert!(people("db.public.product", "name", &["Kettle", "Toaster", "Blender"]).is_none());
        assert!(people("db.public.users", "name", &["u1", "u2", "u3"]).is_none(), "values must read as names");
        let c = run("mobile", DataType::Utf8, &["030 1234567", "089 7654321", "040 5550100"]).unwrap();
        assert!(c.kind == PiiKind::Phone && c.masks(), "{c:?}");
        let c = run("birth_date", DataType::Date32, &["1990-01-02"]).unwrap();
        assert_eq!((c.kind, c.mask.as_str()), (PiiKind::DateOfBirth, "year"));
    }
}
