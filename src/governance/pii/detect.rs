//! Value and name evidence for personal data: what one sampled value looks like (an email, a
//! phone number, a payment card that passes the Luhn check, ...) and what a column's name or
//! comment says it holds. Each check is about the shape the value must have, so look-alikes
//! (order numbers, versions, product codes) fail the check rather than being guessed at.

use super::PiiKind;

/// The kind a single value has, when its shape alone says so (person names and dates of birth
/// never do: any word is a possible name, any date a possible birthday).
pub fn value_kind(v: &str) -> Option<PiiKind> {
    let v = v.trim();
    if v.is_empty() || v.len() > 320 {
        return None;
    }
    if is_email(v) {
        Some(PiiKind::Email)
    } else if is_ssn(v) {
        Some(PiiKind::NationalId)
    } else if is_card(v) {
        Some(PiiKind::PaymentCard)
    } else if is_iban(v) {
        Some(PiiKind::Iban)
    } else if is_ip(v) {
        Some(PiiKind::IpAddress)
    } else if is_phone(v) {
        Some(PiiKind::Phone)
    } else {
        None
    }
}

/// `local@domain.tld`: one `@`, a dotted domain of letters, digits and hyphens, a letter TLD.
pub fn is_email(v: &str) -> bool {
    let Some((local, domain)) = v.split_once('@') else { return false };
    if local.is_empty() || local.len() > 64 || domain.contains('@') {
        return false;
    }
    if !local.chars().all(|c| c.is_ascii_alphanumeric() || "._%+-'".contains(c)) {
        return false;
    }
    let labels: Vec<&str> = domain.split('.').collect();
    labels.len() >= 2
        && labels.iter().all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        && labels.last().is_some_and(|t| t.len() >= 2 && t.chars().all(|c| c.is_ascii_alphabetic()))
}

/// A US Social Security number written `AAA-GG-SSSS` with the number ranges the SSA never
/// issues (area 000, 666, 900-999; group 00; serial 0000) excluded.
pub fn is_ssn(v: &str) -> bool {
    let parts: Vec<&str> = v.split('-').collect();
    if parts.len() != 3 || [3, 2, 4] != [parts[0].len(), parts[1].len(), parts[2].len()] {
        return false;
    }
    if !parts.iter().all(|p| p.bytes().all(|b| b.is_ascii_digit())) {
        return false;
    }
    let area: u32 = parts[0].parse().unwrap_or(0);
    area != 0 && area != 666 && area < 900 && parts[1] != "00" && parts[2] != "0000"
}

/// Digits of a value made of digits and the separators card numbers are written with.
pub fn digits_of(v: &str, separators: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(v.len());
    for c in v.chars() {
        if let Some(d) = c.to_digit(10) {
            out.push(d as u8);
        } else if !separators.contains(c) {
            return None;
        }
    }
    Some(out)
}

/// A payment card number: 13 to 19 digits (spaces or hyphens between groups), an issuer prefix
/// in use (2-6) and a valid Luhn check digit. Nine in ten random digit strings fail the check.
pub fn is_card(v: &str) -> bool {
    let Some(d) = digits_of(v, " -") else { return false };
    (13..=19).contains(&d.len()) && (2..=6).contains(&d[0]) && luhn(&d) && !d.iter().all(|x| *x == d[0])
}

/// The Luhn (mod 10) checksum over all digits, check digit last.
pub fn luhn(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = d as u32;
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    sum % 10 == 0
}

/// An IBAN: a country code, two check digits and up to 30 letters and digits, spaces allowed,
/// whose ISO 7064 mod-97 remainder is 1.
pub fn is_iban(v: &str) -> bool {
    let s: String = v.chars().filter(|c| *c != ' ').collect();
    if !(15..=34).contains(&s.len()) || !s.is_ascii() {
        return false;
    }
    let b = s.as_bytes();
    if !(b[0].is_ascii_uppercase() && b[1].is_ascii_uppercase() && b[2].is_ascii_digit() && b[3].is_ascii_digit()) {
        return false;
    }
    if !b.iter().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()) {
        return false;
    }
    let rearranged = s[4..].bytes().chain(s[..4].bytes());
    let mut rem: u32 = 0;
    for c in rearranged {
        let n = if c.is_ascii_digit() { (c - b'0') as u32 } else { (c - b'A') as u32 + 10 };
        rem = if n >= 10 { (rem * 100 + n) % 97 } else { (rem * 10 + n) % 97 };
    }
    rem == 1
}

/// An IPv4 address in dotted quads (no leading zeros, so `1.02.3.4`-style codes fail) or an
/// IPv6 address.
pub fn is_ip(v: &str) -> bool {
    if v.contains(':') {
        return v.parse::<std::net::Ipv6Addr>().is_ok() && v.matches(':').count() >= 2;
    }
    let parts: Vec<&str> = v.split('.').collect();
    parts.len() == 4
        && parts.iter().all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()) && (p.len() == 1 || !p.starts_with('0')))
        && v.parse::<std::net::Ipv4Addr>().is_ok()
}

/// A phone number: 7 to 15 digits (E.164 allows 15) in groups separated by spaces, hyphens,
/// dots or parentheses, optionally after `+`; at least one separator or a `+`, so a bare run of
/// digits (an id, an amount) is not read as a phone number.
pub fn is_phone(v: &str) -> bool {
    let body = v.strip_prefix('+').unwrap_or(v);
    let plus = body.len() != v.len();
    let Some(d) = digits_of(body, " -.()") else { return false };
    if !(7..=15).contains(&d.len()) || looks_like_date(v) {
        return false;
    }
    let groups: Vec<&str> = body.split(|c: char| " -.()".contains(c)).filter(|g| !g.is_empty()).collect();
    // Dotted numbers are decimals or versions unless there are at least three groups.
    if body.contains('.') && groups.len() < 3 {
        return false;
    }
    // With `+` (E.164) any grouping; without, at least two short groups.
    let grouped = if plus { true } else { groups.len() >= 2 && groups.iter().all(|g| g.len() <= 5) };
    grouped && d.iter().any(|x| *x != d[0])
}

/// A value that reads as a person's name: one to four words of letters (with the hyphen and
/// apostrophe names carry), each starting upper case, no digits.
pub fn looks_like_name(v: &str) -> bool {
    let words: Vec<&str> = v.split_whitespace().collect();
    (1..=4).contains(&words.len())
        && words.iter().all(|w| {
            let mut cs = w.chars();
            cs.next().is_some_and(|c| c.is_uppercase())
                && w.chars().all(|c| c.is_alphabetic() || "-'.".contains(c))
        })
}

/// A value that reads as a calendar date (`YYYY-MM-DD`, optionally with a time).
pub fn looks_like_date(v: &str) -> bool {
    let d = v.get(..10).unwrap_or(v);
    chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").is_ok()
}

/// The words of an identifier or a comment, lower case: `customerEmail`, `cust_email_addr`
/// and `E-Mail address` all give their words.
pub fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut prev_lower = false;
    for c in text.chars() {
        if c.is_alphanumeric() {
            if c.is_uppercase() && prev_lower && !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            prev_lower = c.is_lowercase() || c.is_ascii_digit();
            cur.extend(c.to_lowercase());
        } else {
            prev_lower = false;
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// What a column's name (or comment) says it holds. Word-level, so `shipdate` or `tip` never
/// read as an IP address and `phone_count` reads as a count, not a phone number.
pub fn name_kind(text: &str) -> Option<PiiKind> {
    let w = words(text);
    // Counts, flags and dates about a thing are not the thing (`email_count`, `phone_verified`,
    // `num_phones`); `phone_num` is the number itself.
    let about = ["count", "cnt", "total", "verified", "valid", "flag", "is", "has", "type", "sent", "opt", "status", "domain"];
    if w.iter().any(|x| about.contains(&x.as_str())) || w.first().is_some_and(|x| x == "num" || x == "n") && w.len() > 1 {
        return None;
    }
    kind_of_words(&w)
}

/// Words that may follow a personal-data noun in a name without changing what it is
/// (`phone_number`, `email_addr`); anything else after it makes it a modifier
/// (`mobile_revenue`, `cell_id`, `email_template`).
const HEAD_TAILS: &[&str] = &["number", "no", "num", "nr", "address", "addr", "1", "2", "primary", "main"];

/// Whether one of `nouns` is the head of `w`: the last word, or followed only by [`HEAD_TAILS`].
fn headed_by(w: &[String], nouns: &[&str]) -> bool {
    w.iter().enumerate().any(|(i, x)| nouns.contains(&x.as_str()) && w[i + 1..].iter().all(|t| HEAD_TAILS.contains(&t.as_str())))
}

/// What a column's comment says it holds: read from its first clause (`Customer phone number,
/// text in the form ...`), where a comment names what the column is.
pub fn comment_kind(text: &str) -> Option<PiiKind> {
    let first = text.split(['.', ';', ',', ':', '(']).next().unwrap_or("");
    let w = words(first);
    if w.len() > 8 {
        return None;
    }
    kind_of_words(&w)
}

fn kind_of_words(w: &[String]) -> Option<PiiKind> {
    let has = |x: &str| w.iter().any(|v| v == x);
    let pair = |a: &str, b: &str| w.windows(2).any(|p| p[0] == a && p[1] == b);
    let joined: String = w.concat();
    if headed_by(w, &["email", "mail", "emailaddress"]) || pair("e", "mail") || joined.ends_with("email") {
        return Some(PiiKind::Email);
    }
    if has("ssn") || pair("social", "security") || pair("national", "id") || pair("national", "insurance") || has("nino") || pair("tax", "id") || has("tin") || has("passport") {
        return Some(PiiKind::NationalId);
    }
    if has("iban") {
        return Some(PiiKind::Iban);
    }
    if ((has("card") || has("cc") || has("credit")) && (has("number") || has("no") || has("num") || has("pan") || has("card")))
        || has("pan") || joined.contains("cardnumber") || joined.contains("creditcard")
    {
        return Some(PiiKind::PaymentCard);
    }
    if headed_by(w, &["ip", "ipv4", "ipv6", "ipaddr", "ipaddress"]) {
        return Some(PiiKind::IpAddress);
    }
    if headed_by(w, &["phone", "telephone", "mobile", "cell", "cellphone", "fax", "tel", "phonenumber"]) || joined.ends_with("phone") {
        return Some(PiiKind::Phone);
    }
    if has("dob") || has("birthday") || has("birthdate") || pair("birth", "date") || pair("date", "birth") || pair("date", "of") && has("birth") || has("born") {
        return Some(PiiKind::DateOfBirth);
    }
    let name_words = ["firstname", "lastname", "surname", "forename", "fullname", "givenname", "familyname", "middlename", "maidenname"];
    if name_words.iter().any(|n| has(n))
        || ["first", "last", "given", "family", "middle", "full", "maiden", "person", "contact"].iter().any(|a| pair(a, "name"))
    {
        return Some(PiiKind::PersonName);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        assert!(is_email("ann.lee+x@mail.example.org"));
        assert!(!is_email("a@b") && !is_email("@x.com") && !is_email("user@host.c0m"));
        assert!(is_ssn("123-45-6789") && !is_ssn("666-45-6789") && !is_ssn("123-00-6789") && !is_ssn("2024-01-15"));
        assert!(is_card("4111 1111 1111 1111") && is_card("5500-0000-0000-0004"));
        assert!(!is_card("4111 1111 1111 1112") && !is_card("1234567890123452"));
        assert!(is_iban("DE89 3704 0044 0532 0130 00") && is_iban("GB82WEST12345698765432"));
        assert!(!is_iban("DE89 3704 0044 0532 0130 01"));
        assert!(is_ip("192.168.0.1") && is_ip("2001:db8::1") && !is_ip("1.2.3") && !is_ip("01.2.3.4") && !is_ip("3.14"));
        assert!(is_phone("+1 (415) 555-0132") && is_phone("25-989-741-2988") && is_phone("+49 30 1234567"));
        assert!(!is_phone("030 1234567"), "two bare groups are a phone number only when the name says so");
        assert!(!is_phone("1234567") && !is_phone("12.50") && !is_phone("2024-01-15") && !is_phone("1.2.3"));
        assert!(looks_like_name("Mary-Ann O'Neil") && !looks_like_name("Customer#000000001") && !looks_like_name("red"));
    }

    #[test]
    fn names() {
        assert_eq!(name_kind("c_email"), Some(PiiKind::Email));
        assert_eq!(name_kind("customerEmailAddress"), Some(PiiKind::Email));
        assert_eq!(name_kind("email_count"), None);
        assert_eq!(name_kind("phone_verified"), None);
        assert_eq!(name_kind("c_phone"), Some(PiiKind::Phone));
        assert_eq!(name_kind("l_shipdate"), None);
        assert_eq!(name_kind("tip_amount"), None);
        assert_eq!(name_kind("client_ip"), Some(PiiKind::IpAddress));
        assert_eq!(name_kind("date_of_birth"), Some(PiiKind::DateOfBirth));
        assert_eq!(name_kind("last_name"), Some(PiiKind::PersonName));
        assert_eq!(name_kind("p_name"), None);
        assert_eq!(name_kind("ssn"), Some(PiiKind::NationalId));
        assert_eq!(name_kind("card_number"), Some(PiiKind::PaymentCard));
        assert_eq!(name_kind("phone_num"), Some(PiiKind::Phone));
        assert_eq!(name_kind("num_phones"), None);
        assert_eq!(name_kind("mobile_revenue"), None);
        assert_eq!(name_kind("cell_id"), None);
        assert_eq!(name_kind("email_template"), None);
        assert_eq!(name_kind("EmailAddress"), Some(PiiKind::Email));
        assert_eq!(comment_kind("Customer phone number, text in the form 'CC-XXX'"), Some(PiiKind::Phone));
        assert_eq!(comment_kind("Number of emails sent to the customer last month"), None);
    }
}
