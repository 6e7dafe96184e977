//! The frame checker against random and mutated frontend messages: it never panics, and every
//! message it lets through is one pgwire decodes without panicking and without reading past it.

use bytes::BytesMut;
use pgwire::messages::{DecodeContext, PgWireFrontendMessage, ProtocolVersion};

use super::*;

/// A small deterministic generator (xorshift), so a failure can be replayed from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn typed(ty: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![ty];
    m.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    m.extend_from_slice(body);
    m
}

fn cstr(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(s.as_bytes());
    out.push(0);
}

fn startup() -> Vec<u8> {
    let mut body = 196_608i32.to_be_bytes().to_vec();
    for (k, v) in [("user", "admin"), ("database", "lalo"), ("application_name", "")] {
        cstr(&mut body, k);
        cstr(&mut body, v);
    }
    body.push(0);
    let mut m = ((body.len() + 4) as i32).to_be_bytes().to_vec();
    m.extend_from_slice(&body);
    m
}

fn cancel() -> Vec<u8> {
    let mut m = 16i32.to_be_bytes().to_vec();
    m.extend_from_slice(&CANCEL_CODE.to_be_bytes());
    m.extend_from_slice(&7i32.to_be_bytes());
    m.extend_from_slice(&9i32.to_be_bytes());
    m
}

fn sasl_initial() -> Vec<u8> {
    let mut body = vec![];
    cstr(&mut body, "SCRAM-SHA-256");
    let data = b"n,,n=,r=abcdefgh";
    body.extend_from_slice(&(data.len() as i32).to_be_bytes());
    body.extend_from_slice(data);
    typed(b'p', &body)
}

/// One valid message of every typed frontend kind.
fn typed_samples() -> Vec<Vec<u8>> {
    let mut parse = vec![];
    cstr(&mut parse, "s1");
    cstr(&mut parse, "SELECT $1, $2");
    parse.extend_from_slice(&2u16.to_be_bytes());
    parse.extend_from_slice(&23u32.to_be_bytes());
    parse.extend_from_slice(&25u32.to_be_bytes());
    let mut bind = vec![];
    cstr(&mut bind, "");
    cstr(&mut bind, "s1");
    bind.extend_from_slice(&1u16.to_be_bytes());
    bind.extend_from_slice(&0i16.to_be_bytes());
    bind.extend_from_slice(&2u16.to_be_bytes());
    bind.extend_from_slice(&1i32.to_be_bytes());
    bind.push(b'7');
    bind.extend_from_slice(&(-1i32).to_be_bytes());
    bind.extend_from_slice(&1u16.to_be_bytes());
    bind.extend_from_slice(&1i16.to_be_bytes());
    let mut execute = vec![];
    cstr(&mut execute, "");
    execute.extend_from_slice(&0i32.to_be_bytes());
    let mut query = vec![];
    cstr(&mut query, "SELECT 1");
    let mut fail = vec![];
    cstr(&mut fail, "stop");
    vec![
        typed(b'Q', &query),
        typed(b'P', &parse),
        typed(b'B', &bind),
        typed(b'D', b"Ss1\0"),
        typed(b'C', b"P\0"),
        typed(b'E', &execute),
        typed(b'H', b""),
        typed(b'S', b""),
        typed(b'd', b"1\t2\n"),
        typed(b'c', b""),
        typed(b'f', &fail),
        typed(b'p', b"c=biws,r=abc,p=xyz"),
        typed(b'X', b""),
    ]
}

/// A damaged copy of `msg`: bytes flipped, cut short, grown, or its length word replaced.
fn mutate(rng: &mut Rng, msg: &[u8], len_at: usize) -> Vec<u8> {
    let mut m = msg.to_vec();
    match rng.below(7) {
        0 => {
            for _ in 0..=rng.below(4) {
                let i = rng.below(m.len());
                m[i] ^= 1 << rng.below(8);
            }
        }
        1 => m.truncate(rng.below(m.len())),
        2 => {
            let extra = rng.below(12);
            m.extend(rng.bytes(extra));
        }
        3 => {
            let len = [0, 1, 2, 3, 4, -1, -4, i32::MIN, i32::MAX, 0x4000_0000, 10_001, 7, 8][rng.below(13)];
            if m.len() >= len_at + 4 {
                m[len_at..len_at + 4].copy_from_slice(&len.to_be_bytes());
            }
        }
        4 => {
            // The length word says a little more or less than the message holds.
            if m.len() >= len_at + 4 {
                let mut word = [0u8; 4];
                word.copy_from_slice(&m[len_at..len_at + 4]);
                let len = i32::from_be_bytes(word).wrapping_add(rng.below(9) as i32 - 4);
                m[len_at..len_at + 4].copy_from_slice(&len.to_be_bytes());
            }
        }
        5 => {
            if m.len() > len_at + 4 {
                let i = len_at + 4 + rng.below(m.len() - len_at - 4);
                m[i] = [0, 0xff, b'S', b'P'][rng.below(4)];
            }
        }
        _ => {
            let n = rng.below(24);
            m = rng.bytes(n);
        }
    }
    m
}

fn context(phase: Phase) -> DecodeContext {
    let mut ctx = DecodeContext::new(ProtocolVersion::PROTOCOL3_0);
    ctx.awaiting_frontend_ssl = false;
    ctx.awaiting_frontend_startup = phase == Phase::Startup;
    ctx
}

/// Feed `stream` to a checker in random pieces, as a socket would deliver it, and decode every
/// message it passes with pgwire. Returns how many messages passed.
fn run(rng: &mut Rng, stream: &[u8]) -> usize {
    let mut checker = FrameChecker::new();
    let mut inbox: Vec<u8> = vec![];
    let mut fed = 0;
    let mut passed = 0;
    loop {
        let phase = checker.phase();
        match checker.next_frame(&inbox) {
            Ok(Some(len)) => {
                assert!(len <= inbox.len());
                // The frame followed by whatever came after it: pgwire must stop at its end.
                let mut buf = BytesMut::from(&inbox[..]);
                let decoded = PgWireFrontendMessage::decode(&mut buf, &context(phase));
                let decoded = match decoded {
                    Ok(Some(m)) => Some(m),
                    Ok(None) => panic!("a checked message was incomplete for pgwire: {:?}", &inbox[..len]),
                    Err(_) => None,
                };
                if let Some(m) = decoded {
                    // (A cancel request's longer 3.2 key is read as a 3.0 one; the connection ends
                    // right after it, so only reading past it would matter.)
                    let read = inbox.len() - buf.len();
                    if matches!(m, PgWireFrontendMessage::CancelRequest(_)) {
                        assert!(read <= len, "pgwire read past the message: {:?}", &inbox[..len]);
                    } else {
                        assert_eq!(read, len, "pgwire read past the message: {:?}", &inbox[..len]);
                    }
                    if let PgWireFrontendMessage::PasswordMessageFamily(p) = m {
                        let _ = if phase == Phase::SaslInitial {
                            p.into_sasl_initial_response().map(|_| ())
                        } else {
                            p.into_sasl_response().map(|_| ())
                        };
                    }
                }
                inbox.drain(..len);
                passed += 1;
            }
            Ok(None) => {
                if fed == stream.len() {
                    return passed;
                }
                let n = 1 + rng.below(stream.len() - fed);
                inbox.extend_from_slice(&stream[fed..fed + n]);
                fed += n;
            }
            Err(e) => {
                assert_eq!(e.sqlstate(), "08P01");
                return passed;
            }
        }
    }
}

#[test]
fn valid_messages_pass_whole() {
    let mut rng = Rng(0x5eed);
    let mut stream = startup();
    stream.extend(sasl_initial());
    let samples = typed_samples();
    for m in &samples {
        stream.extend_from_slice(m);
    }
    assert_eq!(run(&mut rng, &stream), samples.len() + 2);
    assert_eq!(run(&mut rng, &cancel()), 1);
}

#[test]
fn short_negative_and_huge_lengths_are_violations() {
    for len in [0i32, 1, 2, 3, -1, i32::MIN, 0x4000_0000] {
        let mut checker = FrameChecker::new();
        checker.next_frame(&startup()).unwrap();
        let mut msg = vec![b'd'];
        msg.extend_from_slice(&len.to_be_bytes());
        let e = checker.next_frame(&msg).unwrap_err();
        assert_eq!(e.sqlstate(), "08P01", "{len}: {e}");
    }
    for len in [0i32, 4, 7, -8, 10_001] {
        let mut msg = len.to_be_bytes().to_vec();
        msg.extend_from_slice(&196_608i32.to_be_bytes());
        msg.push(0);
        assert!(FrameChecker::new().next_frame(&msg).is_err(), "{len}");
    }
    let mut checker = FrameChecker::new();
    checker.next_frame(&startup()).unwrap();
    assert!(checker.next_frame(b"Z\0\0\0\x04").is_err(), "unknown message type");
    assert!(FrameChecker::new().next_frame(&[0, 0, 0, 8, 4, 210, 22, 47]).is_err(), "SSLRequest after startup");
}

#[test]
fn fuzzed_messages_never_panic_and_never_reach_pgwire_broken() {
    let started = std::time::Instant::now();
    let samples = typed_samples();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for round in 0..20_000 {
        let mut stream = vec![];
        match round % 4 {
            // A damaged startup packet or cancel request.
            0 => {
                let base = if rng.below(4) == 0 { cancel() } else { startup() };
                stream.extend(mutate(&mut rng, &base, 0));
            }
            // A damaged SASLInitialResponse.
            1 => {
                stream.extend(startup());
                stream.extend(mutate(&mut rng, &sasl_initial(), 1));
            }
            // Damaged messages among valid ones after authentication.
            _ => {
                stream.extend(startup());
                stream.extend(sasl_initial());
                for _ in 0..1 + rng.below(4) {
                    let m = &samples[rng.below(samples.len())];
                    if rng.below(2) == 0 {
                        stream.extend(mutate(&mut rng, m, 1));
                    } else {
                        stream.extend_from_slice(m);
                    }
                }
            }
        }
        run(&mut rng, &stream);
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
}
