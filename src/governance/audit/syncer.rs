//! The sync thread of `audit_sync = "always"`: one OS thread keeps the trail's syncs back to
//! back while statements wait for them, and wakes every statement a sync covered at once.
//!
//! Why a thread of its own: a sync driven by the statements' tasks starts only when the task
//! whose turn it is gets polled, and on a busy runtime that task waits behind other sessions'
//! work. Measured under 16 clients, a sync cycle took twice the disk's own `fdatasync` time, and
//! a statement waits for up to two cycles. The thread starts the next sync the moment the last
//! one returns if any statement wants it, and writes the lines chained meanwhile first, so one
//! write and one sync serve the whole group (group commit).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::{Condvar, Mutex};
use tokio::sync::watch;

use crate::error::LaloError;

use super::writer::{AuditLog, Segment};
use tokio::sync::MutexGuard;

/// How often an idle thread looks whether its trail is gone.
const IDLE_CHECK: Duration = Duration::from_millis(200);

/// What statements asked of the thread and what it has done.
#[derive(Default)]
struct Demand {
    /// The highest ticket a statement wants durable.
    wanted: u64,
    /// The tickets the last finished cycle covered (every line chained before it began).
    done: u64,
    /// Cycles under way (the thread's, or a statement's own: `AuditLog::sync_inline`).
    running: u32,
    /// The thread waits on the condition variable (a request must wake it).
    sleeping: bool,
    /// The trail is closed: the thread ends.
    closed: bool,
    /// The thread has ended (the trail closed, or a panic): nothing more will be synced.
    stopped: bool,
}

/// The part of the sync thread a trail holds.
pub(super) struct Syncer {
    demand: Mutex<Demand>,
    wake: Condvar,
    /// Bumped after every cycle, successful or not: waiters look at the chain again.
    cycles: watch::Sender<u64>,
}

impl Syncer {
    pub(super) fn new() -> Arc<Syncer> {
        Arc::new(Syncer { demand: Mutex::new(Demand::default()), wake: Condvar::new(), cycles: watch::Sender::new(0) })
    }

    /// Start the thread for `log`. It holds the trail only while a cycle runs, so a trail that
    /// is dropped closes its files (and releases its lock) as before.
    pub(super) fn start(self: &Arc<Self>, log: &Arc<AuditLog>) -> Result<(), LaloError> {
        let (this, weak) = (self.clone(), Arc::downgrade(log));
        let runtime = tokio::runtime::Handle::try_current().ok();
        std::thread::Builder::new()
            .name("lalo-audit-sync".into())
            .spawn(move || this.run(weak, runtime))
            .map(|_| ())
            .map_err(|e| LaloError::Config(format!("audit sync thread: {e}")))
    }

    /// The trail is being dropped: the thread ends.
    pub(super) fn close(&self) {
        self.demand.lock().closed = true;
        self.wake.notify_one();
    }

    /// Whether a sync runs or is about to: a durable line chained now rides with the next one.
    pub(super) fn busy(&self) -> bool {
        let d = self.demand.lock();
        d.running > 0 || d.wanted > d.done
    }

    /// Wait until the line of `ticket` (chained, written or not) is synced, or the trail has
    /// stopped; `check` says which (`Some` ends the wait).
    pub(super) async fn wait(&self, log: &AuditLog, ticket: u64, check: impl Fn() -> Option<Result<(), LaloError>>) -> Result<(), LaloError> {
        if let Some(done) = check() {
            return done;
        }
        if self.claim_inline() {
            // A rotation it makes due is started by the next line's write.
            let cycle = log.sync_inline();
            self.release_inline(cycle.as_ref());
            if let Some(done) = check() {
                return done;
            }
        }
        let mut cycles = self.cycles.subscribe();
        loop {
            // Marked seen before the chain is read: a cycle that ends after the read wakes us.
            cycles.borrow_and_update();
            if let Some(done) = check() {
                return done;
            }
            if !self.request(ticket) {
                return Err(LaloError::Internal("the audit sync thread has stopped; restart lalo".into()));
            }
            // The sender lives as long as this syncer.
            let _ = cycles.changed().await;
        }
    }

    /// Whether this statement may sync on its own thread: no sync runs and none is wanted.
    fn claim_inline(&self) -> bool {
        let mut d = self.demand.lock();
        if d.running > 0 || d.wanted > d.done {
            return false;
        }
        d.running += 1;
        true
    }

    /// After a statement's own sync (or its attempt): statements that came meanwhile are woken,
    /// and the thread too when they asked for more.
    fn release_inline(&self, cycle: Option<&Cycle>) {
        {
            let mut d = self.demand.lock();
            d.running -= 1;
            if let Some(c) = cycle {
                d.done = d.done.max(c.covered);
            }
            if d.sleeping && d.wanted > d.done {
                d.sleeping = false;
                self.wake.notify_one();
            }
        }
        self.cycles.send_modify(|n| *n += 1);
    }

    /// Ask the thread to sync through `ticket`; false when it has ended.
    fn request(&self, ticket: u64) -> bool {
        let mut d = self.demand.lock();
        if d.stopped {
            return false;
        }
        if ticket > d.wanted {
            d.wanted = ticket;
        }
        if d.sleeping && d.wanted > d.done {
            d.sleeping = false;
            self.wake.notify_one();
        }
        true
    }

    fn run(self: Arc<Self>, weak: Weak<AuditLog>, runtime: Option<tokio::runtime::Handle>) {
        // However the thread ends, waiters are told instead of waiting for ever.
        let _stopped = Stopped(&self);
        loop {
            {
                let mut d = self.demand.lock();
                while d.wanted <= d.done && !d.closed {
                    d.sleeping = true;
                    let idle = self.wake.wait_for(&mut d, IDLE_CHECK).timed_out();
                    d.sleeping = false;
                    if idle && weak.strong_count() == 0 {
                        return;
                    }
                }
                if d.closed {
                    return;
                }
                d.running += 1;
            }
            let Some(log) = weak.upgrade() else { return };
            let cycle = log.sync_cycle();
            {
                let mut d = self.demand.lock();
                d.running -= 1;
                // Everything chained before the cycle began is covered, or the trail has failed
                // (the waiters see it): no request up to here is outstanding.
                d.done = d.done.max(cycle.covered);
            }
            if cycle.rotate {
                if let Some(rt) = &runtime {
                    let log = log.clone();
                    rt.spawn(async move { log.rotate_if_due().await });
                }
            }
            // Let go of the trail before the waiters wake: one that closes it then closes it
            // for good (its file lock is released at once).
            drop(log);
            self.cycles.send_modify(|n| *n += 1);
        }
    }
}

/// Marks the thread ended when it returns or unwinds, and wakes every waiter.
struct Stopped<'a>(&'a Syncer);

impl Drop for Stopped<'_> {
    fn drop(&mut self) {
        self.0.demand.lock().stopped = true;
        self.0.cycles.send_modify(|n| *n += 1);
    }
}

/// What one cycle did.
pub(super) struct Cycle {
    /// The highest ticket the cycle dealt with (synced, or failed for good).
    pub covered: u64,
    /// The segment is due for rotation.
    pub rotate: bool,
}

impl AuditLog {
    /// One cycle of the sync thread: every line chained so far goes out in one write, then one
    /// sync covers them, then the head records them. Blocking locks are fine on this thread.
    pub(super) fn sync_cycle(&self) -> Cycle {
        let one_sync_at_a_time = self.sync_lock.blocking_lock();
        let seg = self.file.blocking_lock();
        self.cycle_locked(one_sync_at_a_time, seg)
    }

    /// The cycle run by a statement's own thread when no other statement waits for a sync and
    /// none runs (one client, or a quiet moment): handing it to the sync thread and back would
    /// cost two wake-ups across CPUs, in a virtual machine more than a third of the sync itself.
    /// At most one such sync runs at a time (the sync lock), so a slow disk holds up at most one
    /// runtime thread; `None` when the locks are taken (the sync thread then does it).
    pub(super) fn sync_inline(&self) -> Option<Cycle> {
        let one_sync_at_a_time = self.sync_lock.try_lock().ok()?;
        let seg = self.file.try_lock().ok()?;
        Some(self.cycle_locked(one_sync_at_a_time, seg))
    }

    fn cycle_locked(&self, _one_sync_at_a_time: MutexGuard<'_, ()>, mut seg: MutexGuard<'_, Segment>) -> Cycle {
        let ticket = self.chain.lock().ticket;
        let mut cycle = Cycle { covered: ticket, rotate: false };
        if self.poisoned.load(Ordering::Relaxed) {
            return cycle;
        }
        let (file, number, upto, lines, last, synced) = {
            // A failed write fails the statements of its lines (they find them lost); lines
            // written before it are synced all the same.
            cycle.rotate = self.write_locked(&mut seg, ticket).unwrap_or(false);
            let chain = self.chain.lock();
            (seg.file.clone(), seg.number, chain.written, chain.written_line, chain.written_hash.clone(), chain.synced)
        };
        drop(seg);
        // Nothing written since the last sync (a rotation synced it, or a statement's own sync).
        if upto <= synced {
            return cycle;
        }
        if let Err(e) = file.sync_data() {
            // The kernel may have dropped the dirty pages: what was written is not known to be
            // on disk, and a later sync could report success regardless.
            self.poisoned.store(true, Ordering::Relaxed);
            tracing::error!(error = %e, "audit sync failed: lalo refuses statements until it restarts");
            return cycle;
        }
        // The head first: a statement whose line is marked synced may read it at once (waiters
        // read the chain without the sync lock).
        self.write_head(number, lines, &last);
        {
            let mut chain = self.chain.lock();
            chain.synced = chain.synced.max(upto);
        }
        cycle
    }
}
