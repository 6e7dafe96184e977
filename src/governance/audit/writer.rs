//! Appending to the trail: lines are chained in order under a short lock; whoever holds the file
//! writes every line chained so far in one write. Statements that need their line durable then
//! share syncs (group commit): a sync covers every line written before it began, runs outside
//! the file's lock so writes go on meanwhile, and one waits for the next while it runs. Under
//! `audit_sync = "always"` the syncs run on a thread of their own (`syncer.rs`). The head
//! record is rewritten after each sync; segments rotate by size or age. A write never stops
//! half way for a caller that stops waiting (a timeout, a dropped connection): it has no await
//! in it when the file is free, and runs in a task of its own when it must wait for the file.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::Mutex;

use crate::error::LaloError;

use super::chain::line_for;
use super::files::{open_head, recover, Head};
use super::syncer::Syncer;
use super::{AuditOptions, AuditRecord, SyncMode, Wait};

/// The trail being written.
pub struct AuditLog {
    pub(super) path: PathBuf,
    pub(super) opts: AuditOptions,
    /// The first line written with the key (0: unkeyed), recorded in every head.
    keyed_from: u64,
    pub(super) chain: parking_lot::Mutex<Chain>,
    pub(super) file: Mutex<Segment>,
    /// One sync at a time; rotation takes it too (before the file's lock).
    pub(super) sync_lock: Mutex<()>,
    /// The sync thread under `audit_sync = "always"`.
    syncer: Option<Arc<Syncer>>,
    /// The head record, rewritten in place.
    head: std::fs::File,
    head_lock: parking_lot::Mutex<()>,
    /// Whether this process has cut the head file to one block yet.
    head_cut: AtomicBool,
    /// Set when a sync failed: what was written may not be on disk, so no statement may claim
    /// a durable line any more (as PostgreSQL stops after a failed fsync) until lalo restarts.
    pub(super) poisoned: AtomicBool,
}

impl Drop for AuditLog {
    fn drop(&mut self) {
        if let Some(s) = &self.syncer {
            s.close();
        }
    }
}

/// Lines chained and how far writing and syncing have got. Tickets number appends and are never
/// reused; line numbers are reused after a failed write (the lost lines never reached the file).
pub(super) struct Chain {
    last_hash: String,
    line: u64,
    pub(super) ticket: u64,
    /// Chained lines not yet written, in chain order.
    pending: String,
    pub(super) written: u64,
    pub(super) synced: u64,
    /// Ticket ranges `(after, upto]` lost to failed writes (their statements fail). Failed
    /// writes are rare and each adds one entry.
    lost: Vec<(u64, u64)>,
    /// The last line in the file: the chain goes on from it after a failed write.
    pub(super) written_hash: String,
    pub(super) written_line: u64,
}

/// Whether the line of `ticket` was lost to a failed write.
pub(super) fn lost(chain: &Chain, ticket: u64) -> bool {
    chain.lost.iter().any(|(after, upto)| ticket > *after && ticket <= *upto)
}
/// The current segment.
pub(super) struct Segment {
    pub(super) file: Arc<std::fs::File>,
    pub(super) len: u64,
    /// Rotated segments before this one.
    pub(super) number: u64,
    pub(super) opened: Instant,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AuditLog({})", self.path.display())
    }
}

pub(super) fn io_err(what: &str, e: impl std::fmt::Display) -> LaloError {
    LaloError::Internal(format!("audit log {what}: {e}"))
}

fn open_append(path: &Path) -> Result<std::fs::File, LaloError> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| LaloError::Config(format!("audit log {}: {e}", path.display())))
}

impl AuditLog {
    /// Open (or create) the trail and continue its chain. A torn last line (a crash mid-write)
    /// is cut and a `recovery` line says so; so does a head that records more lines than the
    /// files hold.
    pub async fn open(path: &Path, opts: AuditOptions) -> Result<Arc<AuditLog>, LaloError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| LaloError::Config(format!("audit log dir {}: {e}", dir.display())))?;
        }
        // The head is locked before anything else is read or cut: one writer per trail.
        let head = open_head(path)?;
        let tail = recover(path, &opts.key)?;
        let file = open_append(path)?;
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        if !opts.key.is_set() {
            tracing::warn!(
                "the audit trail has no key ([governance] audit_key_env): it reveals accidental edits, but anyone who can write the file can recompute its chain"
            );
        }
        let chain = Chain {
            last_hash: tail.last_hash.clone(),
            line: tail.lines,
            ticket: 0,
            pending: String::new(),
            written: 0,
            synced: 0,
            lost: Vec::new(),
            written_hash: tail.last_hash.clone(),
            written_line: tail.lines,
        };
        let segment = Segment { file: Arc::new(file), len, number: tail.segment, opened: Instant::now() };
        // Keyed from the head's record of it, or from the next line when the key is new.
        let keyed_from = match (opts.key.is_set(), tail.keyed_from) {
            (false, _) => 0,
            (true, 0) => tail.lines + 1,
            (true, n) => n,
        };
        let log = Arc::new(AuditLog {
            path: path.to_path_buf(),
            opts: opts.clone(),
            keyed_from,
            chain: parking_lot::Mutex::new(chain),
            file: Mutex::new(segment),
            sync_lock: Mutex::new(()),
            head,
            head_lock: parking_lot::Mutex::new(()),
            head_cut: AtomicBool::new(false),
            poisoned: AtomicBool::new(false),
            syncer: (opts.sync == SyncMode::Always).then(Syncer::new),
        });
        if let Some(s) = &log.syncer {
            s.start(&log)?;
        }
        let mut repaired = Vec::new();
        if let Some((n, aside)) = &tail.cut {
            repaired.push(format!("cut a torn last line ({n} bytes, kept in {}) left by a crash", aside.display()));
        }
        if let Some(m) = &tail.alarm {
            tracing::error!(problem = %m, "the audit trail does not add up: recorded as an alarm that verify reports");
            repaired.push(m.clone());
        }
        if repaired.is_empty() {
            // Anchor what is there now (a trail written before heads existed gets one here).
            Head::new(tail.lines, tail.segment, &tail.last_hash, log.keyed_from, &opts.key)
                .replace(&log.head)
                .map_err(|e| io_err("head", e))?;
        } else {
            let rec = AuditRecord {
                kind: "recovery".into(),
                time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                user: "lalo".into(),
                entry: "lalo".into(),
                input: format!("restart: {}", repaired.join("; ")),
                decision: if tail.alarm.is_some() { "alarm" } else { "repaired" }.into(),
                error: tail.alarm.clone(),
                ..Default::default()
            };
            log.append(rec, Wait::Durable).await?;
        }
        super::spawn_syncer(&log, opts.sync);
        Ok(log)
    }

    fn check_poisoned(&self) -> Result<(), LaloError> {
        if self.poisoned.load(Ordering::Relaxed) {
            return Err(LaloError::Internal("the audit trail is unavailable after a failed sync; restart lalo".into()));
        }
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
    /// Whether a durable line sent now would wait for its own sync alone (`always`, no sync
    /// running): a statement that has to wait for one anyway then overlaps it with its work.
    pub fn sync_idle(&self) -> bool {
        self.syncer.as_ref().is_some_and(|s| !s.busy())
    }
    /// Chain one record and return its line number once the line is in the file and, for
    /// [`Wait::Durable`] under `audit_sync = "always"`, synced. A line that cannot be written
    /// fails its statement, and so does every line chained after it in the same write.
    pub async fn append(self: &Arc<Self>, rec: AuditRecord, wait: Wait) -> Result<u64, LaloError> {
        let appended = self.append_line(rec, wait).await;
        if appended.is_err() {
            crate::metrics::audit_failure();
        }
        appended
    }

    async fn append_line(self: &Arc<Self>, mut rec: AuditRecord, wait: Wait) -> Result<u64, LaloError> {
        self.check_poisoned()?;
        let durable = wait == Wait::Durable && self.opts.sync == SyncMode::Always;
        if rec.kind.is_empty() {
            rec.kind = "statement".into();
        }
        let (ticket, line) = {
            let mut chain = self.chain.lock();
            rec.seq = chain.line + 1;
            rec.prev_hash = chain.last_hash.clone();
            let (text, hash) = line_for(&mut rec, &self.opts.key)?;
            chain.last_hash = hash;
            chain.line += 1;
            chain.ticket += 1;
            chain.pending.push_str(&text);
            chain.pending.push('\n');
            (chain.ticket, chain.line)
        };
        let this = self.clone();
        let began = std::time::Instant::now();
        let written = crate::telemetry::traced("audit", None, async {
            // The file is free: write here. The write has no await in it, so a caller that stops
            // waiting cannot cut it short; a sync it stops waiting for leaves the line written,
            // and the next sync covers it. Otherwise the line is left to a task of its own.
            // A line that must be durable while a sync runs waits in the chain: the next sync
            // writes it with every other line chained meanwhile, one write for the group.
            if durable && this.sync_running() {
                return this.sync_through(ticket).await;
            }
            if let Ok(mut seg) = this.file.try_lock() {
                let rotate = this.write_locked(&mut seg, ticket)?;
                drop(seg);
                if rotate {
                    // In a task of its own, which a caller that stops waiting cannot cut short; a
                    // durable line waits for it (the closed segment is synced: its line with it).
                    let rotating = this.clone();
                    let rotation = tokio::spawn(async move { rotating.rotate_if_due().await });
                    if durable {
                        let _ = rotation.await;
                    }
                }
                return if durable { this.sync_through(ticket).await } else { Ok(()) };
            }
            tokio::spawn(async move { this.write_through(ticket, durable).await }).await.map_err(|e| io_err("writer", e))?
        })
        .await;
        written?;
        crate::metrics::audit_write(durable.then(|| began.elapsed().as_secs_f64()));
        Ok(line)
    }

    /// Make sure the line of `ticket` is written (and synced when `durable`), by a write made
    /// meanwhile or by writing every line chained so far.
    async fn write_through(&self, ticket: u64, durable: bool) -> Result<(), LaloError> {
        let rotate = self.write_pending(ticket).await?;
        if rotate {
            self.rotate_if_due().await;
        }
        if durable {
            self.sync_through(ticket).await?;
        }
        Ok(())
    }

    /// Write every line chained so far unless a write meanwhile covered `ticket`. Returns
    /// whether the segment is due for rotation.
    ///
    /// The write runs on the caller's thread under the file's lock: it copies a few hundred bytes
    /// into the page cache, cheaper than handing it to a blocking thread, and the lock keeps the
    /// file in chain order. Syncs never hold this lock, so writes go on while a sync runs.
    async fn write_pending(&self, ticket: u64) -> Result<bool, LaloError> {
        let mut seg = self.file.lock().await;
        self.write_locked(&mut seg, ticket)
    }

    /// [`Self::write_pending`] with the file's lock held.
    pub(super) fn write_locked(&self, seg: &mut Segment, ticket: u64) -> Result<bool, LaloError> {
        self.check_poisoned()?;
        let (batch, upto, upto_line, hash) = {
            let chain = &mut *self.chain.lock();
            if lost(chain, ticket) {
                return Err(LaloError::Internal("audit log write failed".into()));
            }
            if chain.written >= ticket {
                return Ok(false);
            }
            (std::mem::take(&mut chain.pending), chain.ticket, chain.line, chain.last_hash.clone())
        };
        let mut done = 0;
        let mut failed = None;
        while done < batch.len() {
            match (&*seg.file).write(&batch.as_bytes()[done..]) {
                Ok(0) => {
                    failed = Some(std::io::Error::from(std::io::ErrorKind::WriteZero));
                    break;
                }
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = failed {
            // A partly written batch would leave half a line: cut the file back; if that fails
            // the file's end is unknown, and nothing more may be appended to it.
            if done > 0 && seg.file.set_len(seg.len).is_err() {
                self.poisoned.store(true, Ordering::Relaxed);
            }
            let chain = &mut *self.chain.lock();
            // Every line chained so far hangs on the lost ones: their statements fail too, and
            // the chain goes on from the last line in the file.
            let (after, upto_now) = (chain.written, chain.ticket);
            chain.lost.push((after, upto_now));
            chain.written = upto_now;
            chain.pending.clear();
            chain.last_hash = chain.written_hash.clone();
            chain.line = chain.written_line;
            return Err(io_err("write failed", e));
        }
        seg.len += batch.len() as u64;
        {
            let mut chain = self.chain.lock();
            chain.written = upto;
            chain.written_hash = hash.clone();
            chain.written_line = upto_line;
        }
        // Under "off" nothing is durable: the head counts written lines.
        if self.opts.sync == SyncMode::Off {
            self.write_head(seg.number, upto_line, &hash);
        }
        Ok(self.rotation_due(seg))
    }

    /// Sync until the line of `ticket` (already written) is on disk. One sync covers every line
    /// written before it began, so statements waiting meanwhile share the next one (group
    /// commit). The head is rewritten after each sync: it counts durable lines only, so a power
    /// loss never leaves it ahead of the trail.
    async fn sync_through(&self, ticket: u64) -> Result<(), LaloError> {
        if let Some(syncer) = &self.syncer {
            return syncer.wait(self, ticket, || self.durable_yet(ticket)).await;
        }
        let one_sync_at_a_time = self.sync_lock.lock().await;
        if let Some(done) = self.durable_yet(ticket) {
            return done;
        }
        // Lines chained but not yet written (this one's, those of statements that came while
        // the last sync ran) go out in one write first.
        if self.write_pending(ticket).await? {
            // Rotation takes the sync lock: after this sync.
            drop(one_sync_at_a_time);
            self.rotate_if_due().await;
            return Box::pin(self.sync_through(ticket)).await;
        }
        let (upto, lines, last) = {
            let chain = self.chain.lock();
            (chain.written, chain.written_line, chain.written_hash.clone())
        };
        let (file, number) = {
            let seg = self.file.lock().await;
            (seg.file.clone(), seg.number)
        };
        let synced = tokio::task::spawn_blocking(move || file.sync_data()).await.map_err(|e| io_err("sync", e))?;
        if let Err(e) = synced {
            // The kernel may have dropped the dirty pages: what was written is not known to be
            // on disk, and a later sync could report success regardless.
            self.poisoned.store(true, Ordering::Relaxed);
            tracing::error!(error = %e, "audit sync failed: lalo refuses statements until it restarts");
            return Err(io_err("sync", e));
        }
        self.write_head(number, lines, &last);
        {
            let mut chain = self.chain.lock();
            chain.synced = chain.synced.max(upto);
        }
        Ok(())
    }

    /// Whether the line of `ticket` is durable (`Some(Ok)`), can never be (`Some(Err)`), or
    /// still waits for a sync (`None`).
    pub(super) fn durable_yet(&self, ticket: u64) -> Option<Result<(), LaloError>> {
        // After a failed sync the next one can report success for pages the kernel dropped
        // (Linux reports a writeback error once per open file): nothing is durable any more.
        if let Err(e) = self.check_poisoned() {
            return Some(Err(e));
        }
        let chain = self.chain.lock();
        // A line lost to a failed write counts as written for the chain's sake, and a later
        // sync as synced: its statement must fail all the same.
        if lost(&chain, ticket) {
            return Some(Err(LaloError::Internal("audit log write failed".into())));
        }
        (chain.synced >= ticket).then_some(Ok(()))
    }

    /// Whether a sync runs or is about to (a durable line then waits in the chain for it).
    fn sync_running(&self) -> bool {
        match &self.syncer {
            Some(s) => s.busy(),
            None => self.sync_lock.try_lock().is_err(),
        }
    }

    /// Rewrite the head record: the line count and the last chain value, keyed. The head is not
    /// synced: an attacker edits files on the running system, where the head in the page cache
    /// is what `verify` reads; after a power loss an older head only proves less.
    pub(super) fn write_head(&self, segment: u64, lines: u64, last: &str) {
        let head = Head::new(lines, segment, last, self.keyed_from, &self.opts.key);
        // Heads are written in order: after a sync under the sync lock, after a write (mode
        // "off") or a rotation under the file's.
        let _in_order = self.head_lock.lock();
        // The first head this process writes cuts the file to one block; later ones only
        // overwrite it (no truncate, no inode update per statement).
        let written = if self.head_cut.swap(true, Ordering::Relaxed) { head.write(&self.head) } else { head.replace(&self.head) };
        if let Err(e) = written {
            tracing::error!(error = %e, "audit head write failed");
        }
        if self.opts.head_log {
            tracing::info!(target: "lalo::audit::head", lines, segment, last, mac = %head.mac, "audit head");
        }
    }

    /// Write and sync every line chained so far (the periodic sync of `batch_ms:N`, and of `end`
    /// lines under `always`; at shutdown).
    pub async fn sync_written(&self) -> Result<(), LaloError> {
        let chained = self.chain.lock().ticket;
        self.sync_through(chained).await
    }
}

#[cfg(test)]
impl AuditLog {
    /// Swap the segment's file (tests make writes fail with a read-only handle).
    pub(crate) async fn swap_file(&self, f: std::fs::File) -> Arc<std::fs::File> {
        let mut seg = self.file.lock().await;
        std::mem::replace(&mut seg.file, Arc::new(f))
    }

    pub(crate) async fn restore_file(&self, f: Arc<std::fs::File>) {
        self.file.lock().await.file = f;
    }

    /// What a failed fdatasync leaves behind.
    pub(super) fn poison(&self) {
        self.poisoned.store(true, Ordering::Relaxed);
    }
}
