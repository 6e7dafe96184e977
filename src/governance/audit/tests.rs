//! The trail under attack and under failure: edits, cut tails, recomputed chains, reordered and
//! deleted lines, torn writes, failed writes, rotation.

use std::path::Path;

use super::*;

fn rec(i: u64) -> AuditRecord {
    AuditRecord { user: "u".into(), input: format!("select {i}"), decision: "allowed".into(), rows: i, ..Default::default() }
}

fn keyed() -> AuditOptions {
    AuditOptions { key: Key::new(Some(b"a secret only lalo knows".to_vec())), ..Default::default() }
}

async fn write(path: &Path, opts: AuditOptions, n: u64) {
    let log = AuditLog::open(path, opts).await.unwrap();
    for i in 0..n {
        log.append(rec(i), Wait::Durable).await.unwrap();
    }
    // A rotation the last line started may still hold the trail: it is closed once that ends.
    while Arc::strong_count(&log) > 1 {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
}

fn reason(v: Verification) -> (usize, String) {
    match v {
        Verification::Broken { line, reason, .. } => (line, reason),
        other => panic!("expected a break, got {other:?}"),
    }
}

fn intact(v: Verification) -> usize {
    match v {
        Verification::Intact { lines, .. } => lines,
        other => panic!("expected an intact trail, got {other:?}"),
    }
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path).unwrap().lines().map(String::from).collect()
}

fn put(path: &Path, lines: &[String]) {
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

/// Statements appending at once share writes; every line lands once, chained in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_keep_one_unbroken_chain() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("audit.log");
    let log = AuditLog::open(&p, keyed()).await.unwrap();
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let log = log.clone();
            let wait = if i % 2 == 0 { Wait::Durable } else { Wait::Written };
            tokio::spawn(async move { log.append(rec(i), wait).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(intact(verify(&p, &keyed().key).unwrap()), 200);
    let text = std::fs::read_to_string(&p).unwrap();
    for i in 0..200 {
        assert_eq!(text.matches(&format!("\"select {i}\"")).count(), 1, "line {i} once");
    }
}

/// A line the trail reports durable is counted by the head (which counts synced lines only)
/// when its statement goes on, whether its sync ran on the sync thread, shared with others', or
/// on the statement's own thread; and statements that wait together share syncs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_line_is_synced_before_its_statement_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("audit.log");
    let log = AuditLog::open(&p, keyed()).await.unwrap();
    let tasks: Vec<_> = (0..8u64)
        .map(|t| {
            let (log, p) = (log.clone(), p.clone());
            tokio::spawn(async move {
                for i in 0..40 {
                    let line = log.append(rec(t * 100 + i), Wait::Durable).await.unwrap();
                    // The head is rewritten in place: a read may meet a rewrite half done.
                    let head = (0..100).find_map(|_| Head::read(&p).ok().flatten()).expect("a head");
                    assert!(head.lines >= line, "line {line} reported durable, head counts {}", head.lines);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(intact(verify(&p, &keyed().key).unwrap()), 320);
}

#[tokio::test]
async fn edits_deletions_and_reorders_are_found() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("audit.log");
    write(&p, AuditOptions::default(), 3).await;
    // Reopening continues the chain.
    write(&p, AuditOptions::default(), 1).await;
    assert_eq!(intact(verify(&p, &Key::default()).unwrap()), 4);
    let original = lines(&p);

    put(&p, &original.iter().map(|l| l.replacen("select 1", "select 9", 1)).collect::<Vec<_>>());
    assert_eq!(reason(verify(&p, &Key::default()).unwrap()).0, 2);

    let mut deleted = original.clone();
    deleted.remove(1);
    put(&p, &deleted);
    assert_eq!(reason(verify(&p, &Key::default()).unwrap()).0, 2);

    let mut swapped = original.clone();
    swapped.swap(1, 2);
    put(&p, &swapped);
    let (line, why) = reason(verify(&p, &Key::default()).unwrap());
    assert_eq!(line, 2, "{why}");
}

/// Without the key an attacker can rewrite lines and recompute a SHA-256 chain, but not the keyed
/// chain lalo wrote: verify with the key names the first rewritten line.
#[tokio::test]
async fn a_chain_recomputed_without_the_key_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("audit.log");
    write(&p, keyed(), 4).await;
    assert_eq!(intact(verify(&p, &keyed().key).unwrap()), 4);
    // Without the key, verify refuses to call a keyed trail intact.
    assert!(verify(&p, &Key::default()).is_err());

    // The attacker edits line 3 and recomputes every chain value after it, as SHA-256 ...
    let mut forged = lines(&p);
    let mut prev = {
        let (_, h) = chain::split_line(&forged[1]).unwrap();
        h.to_string()
    };
    for l in forged.iter_mut().skip(2) {
        let (body, _) = chain::split_line(l).unwrap();
        let mut r: AuditRecord = serde_json::from_str(&body).unwrap();
        r.input = r.input.replace("select", "SELECT nothing to see");
        r.prev_hash = prev.clone();
        let (text, h) = chain::line_for(&mut r, &Key::default()).unwrap();
        *l = text;
        prev = h;
    }
    put(&p, &forged);
    let (line, why) = reason(verify(&p, &keyed().key).unwrap());
    assert_eq!(line, 3, "{why}");
    // ... or with a key of their own.
    let mut forged = lines(&p);
    let theirs = Key::new(Some(b"guess".to_vec()));
    let (body, _) = chain::split_line(&forged[2]).unwrap();
    let mut r: AuditRecord = serde_json::from_str(&body).unwrap();
    let (text, _) = chain::line_for(&mut r, &theirs).unwrap();
    forged[2] = text;
    put(&p, &forged);
    assert_eq!(reason(verify(&p, &keyed().key).unwrap()).0, 3);
}

/// A keyed trail of five lines, its last two cut off.
async fn five_lines_cut_to_three(p: &Path) {
    write(p, keyed(), 5).await;
    let mut cut = lines(p);
    cut.truncate(3);
    put(p, &cut);
}

/// Cutting lines off the end leaves a trail that chains perfectly; the head says it is short.
#[tokio::test]
async fn lines_cut_from_the_end_are_found() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("audit.log");
    five_lines_cut_to_three(&p).await;
    let (line, why) = reason(verify(&p, &keyed().key).unwrap());
    assert!(why.contains("cut from the end"), "{why}");
    assert_eq!(line, 4);
    // A head rewritten to match, without the key, does not pass.
    let mut head = Head::read(&p).unwrap().unwrap();
    head.lines = 3;
    std::fs::write(head_path(&p), head.bytes()).unwrap();
    assert!(reason(verify(&p, &keyed().key).unwrap()).1.contains("MAC"));
    // Nor does deleting the head.
    std::fs::remove_file(head_path(&p)).unwrap();
    assert!(reason(verify(&p, &keyed().key).unwrap()).1.contains("no head"));
}

/// A crash mid-write leaves half a line: verify says so; the next start cuts it, records that it
/// did, and the trail verifies again.
#[tokio::test]
async fn a_torn_last_line_is_cut_and_recorded_at_restart() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("audit.log");
    write(&p, keyed(), 3).await;
    let mut bytes = std::fs::read(&p).unwrap();
    bytes.extend_from_slice(b"{\"seq\":4,\"kind\":\"statement\",\"time\":\"2026");
    std::fs::write(&p, &bytes).unwrap();
    assert!(reason(verify(&p, &keyed().key).unwrap()).1.contains("torn"));
    write(&p, keyed(), 1).await;
    assert_eq!(intact(verify(&p, &keyed().key).unwrap()), 5);
    let all = lines(&p);
    assert!(all[3].contains("\"kind\":\"recovery\"") && all[3].contains("torn"), "{}", all[3]);
    // The cut bytes are kept beside the log, not destroyed.
    let kept: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("audit.log.cut-"))
        .collect();
    assert_eq!(kept.len(), 1);
    assert!(std::fs::read_to_string(kept[0].path()).unwrap().starts_with("{\"seq\":4"));
}

/// Taking the newline off a whole, valid last line does not make a restart cut it.
#[tokio::test]
async fn a_whole_last_line_without_its_newline_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("audit.log");
    write(&p, keyed(), 3).await;
    let text = std::fs::read_to_string(&p).unwrap();
    std::fs::write(&p, text.trim_end()).unwrap();
    write(&p, keyed(), 1).await;
    assert_eq!(intact(verify(&p, &keyed().key).unwrap()), 4);
    assert!(!std::fs::read_to_string(&p).unwrap().contains("recovery"));
}

/// Cutting lines and deleting the head, then letting lalo restart, does not launder the cut:
/// the restart records an alarm and verify reports it from then on.
#[tokio::test]
async fn a_restart_does_not_launder_a_cut_with_a_deleted_head() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("audit.log");
    five_lines_cut_to_three(&p).await;
    std::fs::remove_file(head_path(&p)).unwrap();
    write(&p, keyed(), 1).await;
    let (line, why) = reason(verify(&p, &keyed().key).unwrap());
    assert_eq!(line, 4, "{why}");
    assert!(why.contains("head record is missing"), "{why}");
}

/// A forged unkeyed trail beside the head of an empty keyed trail (the same for every empty
/// trail under one key) does not pass.
#[tokio::test]
async fn an_unkeyed_trail_under_a_replayed_empty_head_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("audit.log");
    drop(AuditLog::open(&p, keyed()).await.unwrap());
    let empty_head = std::fs::read(head_path(&p)).unwrap();
    // Built without any key, as an attacker would.
    let q = dir.path().join("forged.log");
    {
        let log = AuditLog::open(&q, AuditOptions::default()).await.unwrap();
        log.append(rec(1), Wait::Durable).await.unwrap();
    }
    std::fs::write(head_path(&q), &empty_head).unwrap();
    let (line, why) = reason(verify(&q, &keyed().key).unwrap());
    assert_eq!(line, 1, "{why}");
}

/// A line that cannot be written fails its statement and leaves no gap: the next line chains on
/// from the last line in the file, and the whole file still verifies.
#[tokio::test]
async fn a_failed_write_leaves_the_chain_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let log = AuditLog::open(&path, keyed()).await.expect("open");
    log.append(rec(1), Wait::Durable).await.expect("first");
    log.append(rec(2), Wait::Durable).await.expect("second");
    let writable = log.swap_file(std::fs::File::open(&path).expect("read-only handle")).await;
    assert!(log.append(rec(3), Wait::Durable).await.is_err(), "a line that cannot be written fails its statement");
    log.restore_file(writable).await;
    log.append(rec(4), Wait::Durable).await.expect("after the failure");
    assert_eq!(intact(verify(&path, &keyed().key).expect("verify")), 3);
}

/// After a failed sync nothing may be called durable: a later sync can report success for pages
/// the kernel dropped. Lines written before it are not counted by the head, and every statement
/// waiting for durability fails.
#[tokio::test]
async fn after_a_failed_sync_nothing_is_durable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let log = AuditLog::open(&path, keyed()).await.expect("open");
    log.append(rec(1), Wait::Durable).await.expect("first");
    log.append(rec(2), Wait::Written).await.expect("written, not yet synced");
    let before = files::Head::read(&path).expect("head").expect("a head").lines;
    log.poison();
    assert!(log.sync_written().await.is_err(), "the periodic sync stops");
    assert!(log.append(rec(3), Wait::Durable).await.is_err(), "a statement waiting for durability fails");
    assert_eq!(files::Head::read(&path).expect("head").expect("a head").lines, before, "the head does not move");
}

/// Segments rotate by size; the chain runs across them and verify walks them in order; a
/// missing segment, first or in the middle, breaks it.
#[tokio::test]
async fn rotated_segments_verify_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("audit.log");
    let opts = AuditOptions { rotate_bytes: 600, ..keyed() };
    write(&p, opts.clone(), 12).await;
    write(&p, opts, 3).await;
    let segments = files::rotated(&p);
    assert!(segments.len() >= 3, "{segments:?}");
    match verify(&p, &keyed().key).unwrap() {
        Verification::Intact { lines, segments: n, .. } => {
            assert_eq!(lines, 15);
            assert_eq!(n, segments.len() + 1);
        }
        other => panic!("{other:?}"),
    }
    let middle = &segments[1].1;
    let saved = std::fs::read(middle).unwrap();
    std::fs::remove_file(middle).unwrap();
    assert!(reason(verify(&p, &keyed().key).unwrap()).1.contains("prev_hash"));
    std::fs::write(middle, saved).unwrap();
    std::fs::remove_file(&segments[0].1).unwrap();
    assert!(reason(verify(&p, &keyed().key).unwrap()).1.contains("earlier segments"));
}

/// One writer per trail: a second one would interleave its chain with the first's and rotate
/// its segments away. It is refused while the first is open and admitted once it closed.
#[tokio::test]
async fn a_second_writer_on_one_trail_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("audit.log");
    let first = AuditLog::open(&p, keyed()).await.expect("open");
    first.append(rec(1), Wait::Durable).await.expect("append");
    let refused = AuditLog::open(&p, keyed()).await.expect_err("a second writer");
    assert!(refused.to_string().contains("in use"), "{refused}");
    drop(first);
    write(&p, keyed(), 2).await;
    assert_eq!(intact(verify(&p, &keyed().key).expect("verify")), 3);
}

#[test]
fn sync_modes_parse() {
    assert_eq!("always".parse::<SyncMode>().unwrap(), SyncMode::Always);
    assert_eq!("off".parse::<SyncMode>().unwrap(), SyncMode::Off);
    assert_eq!("batch_ms:5".parse::<SyncMode>().unwrap(), SyncMode::Batch(std::time::Duration::from_millis(5)));
    for bad in ["sometimes", "batch_ms:", "batch_ms:0", "batch_ms:x"] {
        assert!(bad.parse::<SyncMode>().is_err(), "{bad}");
    }
}
