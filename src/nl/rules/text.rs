//! Question normalisation: quoted literals, numbers and word tokens with light stemming, so
//! "Customers'", "customer" and "CUSTOMERS" meet the schema as the same word.

/// What a token is.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Word,
    /// A number written with digits or as a small English word ("five").
    Number(f64),
    /// Text the user put in quotes: a value to filter on, kept verbatim.
    Quoted,
}

/// One token of the question.
#[derive(Debug, Clone)]
pub struct Token {
    /// As written (quotes stripped).
    pub raw: String,
    /// Lower-case.
    pub lower: String,
    /// Lower-case stem, comparable with schema words.
    pub stem: String,
    pub kind: Kind,
    /// Written with a leading capital (not the first word): likely part of a proper name.
    pub capital: bool,
}

impl Token {
    pub fn number(&self) -> Option<f64> {
        match self.kind {
            Kind::Number(n) => Some(n),
            _ => None,
        }
    }

    /// A four-digit number that reads as a calendar year.
    pub fn year(&self) -> Option<i64> {
        let n = self.number()?;
        (n.fract() == 0.0 && (1800.0..=2100.0).contains(&n) && self.raw.len() == 4).then_some(n as i64)
    }
}

/// Split a question into tokens. Quoted spans ("...", '...', `...`, “...”) become one token each.
pub fn tokenize(question: &str) -> Vec<Token> {
    let text = question
        .replace(['“', '”', '«', '»'], "\"")
        .replace(['‘', '’'], "'")
        .replace("'s ", " ")
        .replace("s' ", "s ");
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = vec![];
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let opens_quote = matches!(c, '"' | '`')
            || (c == '\'' && (i == 0 || !chars[i - 1].is_alphanumeric()));
        if opens_quote {
            if let Some(len) = chars[i + 1..].iter().position(|&d| d == c) {
                let inner: String = chars[i + 1..i + 1 + len].iter().collect();
                let inner = inner.trim().trim_end_matches([',', '.']).to_string();
                if !inner.is_empty() {
                    let kind = if c == '`' { Kind::Word } else { Kind::Quoted };
                    tokens.push(token(&inner, kind, false));
                }
                i += len + 2;
                continue;
            }
        }
        if c.is_alphanumeric() {
            let start = i;
            while i < chars.len()
                && (chars[i].is_alphanumeric()
                    || chars[i] == '_'
                    || (chars[i] == '.' && i + 1 < chars.len() && chars[i + 1].is_ascii_digit() && chars[start].is_ascii_digit()))
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let capital = word.chars().next().is_some_and(char::is_uppercase) && !tokens.is_empty();
            let kind = match word.parse::<f64>() {
                Ok(n) => Kind::Number(n),
                Err(_) => number_word(&word.to_lowercase()).map(Kind::Number).unwrap_or(Kind::Word),
            };
            tokens.push(token(&word, kind, capital));
            continue;
        }
        match c {
            '>' | '<' | '=' => {
                let mut op = c.to_string();
                if chars.get(i + 1) == Some(&'=') {
                    op.push('=');
                    i += 1;
                }
                tokens.push(token(&op, Kind::Word, false));
            }
            '%' => tokens.push(token("percent", Kind::Word, false)),
            _ => {}
        }
        i += 1;
    }
    tokens
}

fn token(raw: &str, kind: Kind, capital: bool) -> Token {
    let lower = raw.to_lowercase();
    let stem = if kind == Kind::Word { stem(&lower) } else { lower.clone() };
    Token { raw: raw.to_string(), lower, stem, kind, capital }
}

fn number_word(w: &str) -> Option<f64> {
    const WORDS: &[&str] = &["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"];
    WORDS.iter().position(|x| *x == w).map(|n| n as f64).or(match w {
        "twenty" => Some(20.0),
        "hundred" => Some(100.0),
        "thousand" => Some(1000.0),
        "million" => Some(1_000_000.0),
        _ => None,
    })
}

/// A light English stemmer for matching: plurals and a few irregular forms.
pub fn stem(word: &str) -> String {
    let w = word.to_lowercase();
    let irregular = match w.as_str() {
        "people" | "persons" => Some("person"),
        "children" => Some("child"),
        "men" => Some("man"),
        "women" => Some("woman"),
        "data" => Some("data"),
        "status" | "statuses" => Some("status"),
        "analyses" => Some("analysis"),
        "indices" | "indexes" => Some("index"),
        _ => None,
    };
    if let Some(s) = irregular {
        return s.to_string();
    }
    if w.len() <= 3 {
        return w;
    }
    if let Some(s) = w.strip_suffix("ies") {
        return format!("{s}y");
    }
    for suffix in ["sses", "ches", "shes", "xes", "zes"] {
        if let Some(s) = w.strip_suffix(suffix) {
            return format!("{s}{}", &suffix[..suffix.len() - 2]);
        }
    }
    if w.ends_with("ss") || w.ends_with("us") || w.ends_with("is") || w.ends_with("ous") {
        return w;
    }
    match w.strip_suffix('s') {
        Some(s) => s.to_string(),
        None => w,
    }
}

/// Written in the plural ("authors"), which asks for a list rather than one row.
pub fn is_plural(t: &Token) -> bool {
    t.kind == Kind::Word && t.lower != t.stem && t.lower.ends_with('s')
}

/// Abbreviations common in column names, expanded to the words people use.
pub fn expand_abbreviation(word: &str) -> Option<&'static str> {
    Some(match word {
        "num" | "no" | "nbr" | "cnt" => "number",
        "acct" => "account",
        "bal" => "balance",
        "qty" => "quantity",
        "amt" => "amount",
        "addr" => "address",
        "desc" => "description",
        "avg" => "average",
        "pct" => "percent",
        "mfgr" => "manufacturer",
        "cust" => "customer",
        "supp" => "supplier",
        "mkt" => "market",
        "seg" | "mktsegment" => "segment",
        "dept" => "department",
        "info" => "information",
        "gpa" => "gpa",
        "loc" => "location",
        "dob" => "birth",
        "lat" => "latitude",
        "lon" | "lng" => "longitude",
        "pop" => "population",
        "ext" => "extended",
        "tx" | "txn" | "trans" => "transaction",
        "dt" => "date",
        "ts" => "timestamp",
        "pmt" | "pymt" => "payment",
        "prod" => "product",
        "cat" => "category",
        "emp" => "employee",
        "mgr" => "manager",
        "org" => "organization",
        "usr" => "user",
        "msg" => "message",
        "yr" => "year",
        "mth" => "month",
        "wk" => "week",
        "tel" => "phone",
        "cty" => "city",
        "ctry" | "cntry" => "country",
        "curr" | "ccy" => "currency",
        "px" => "price",
        "vol" => "volume",
        "exch" => "exchange",
        "inv" => "invoice",
        "trx" => "transaction",
        "stat" => "status",
        "reg" => "region",
        _ => return None,
    })
}
