//! Rotating the trail's current segment into a numbered one, by size or age: the closed segment
//! is synced and renamed, a fresh file takes its place, and the chain goes on across the boundary.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use crate::error::LaloError;

use super::files::{rotated, segment_path};
use super::writer::{io_err, AuditLog, Segment};

impl AuditLog {
    /// Rotate when the segment is due, after the syncs in flight (so a sync never runs on a
    /// segment already closed without the head knowing).
    pub(super) async fn rotate_if_due(&self) {
        let _one_sync_at_a_time = self.sync_lock.lock().await;
        let mut seg = self.file.lock().await;
        if self.poisoned.load(Ordering::Relaxed) || !self.rotation_due(&seg) {
            return;
        }
        if let Err(e) = self.rotate(&mut seg).await {
            tracing::error!(error = %e, "audit segment rotation failed; writing on in the current segment");
        }
    }

    pub(super) fn rotation_due(&self, seg: &Segment) -> bool {
        let by_size = self.opts.rotate_bytes > 0 && seg.len >= self.opts.rotate_bytes;
        let by_age = self.opts.rotate_secs > 0 && seg.len > 0 && seg.opened.elapsed().as_secs() >= self.opts.rotate_secs;
        by_size || by_age
    }

    /// Close the current segment (synced) as the next numbered one and start an empty one; the
    /// chain goes on across the boundary.
    async fn rotate(&self, seg: &mut Segment) -> Result<(), LaloError> {
        // Never over an existing segment (one left by an earlier, interrupted rotation).
        let next = rotated(&self.path).last().map(|(n, _)| *n).unwrap_or(0).max(seg.number) + 1;
        let (path, to, file) = (self.path.clone(), segment_path(&self.path, next), seg.file.clone());
        // Err: the error and whether the trail must stop (a failed sync, or a segment that could
        // not be put back after the new one failed to open: the file's state is unknown).
        let fresh = tokio::task::spawn_blocking(move || -> Result<std::fs::File, (std::io::Error, bool)> {
            file.sync_data().map_err(|e| (e, true))?;
            if to.exists() {
                return Err((std::io::Error::new(std::io::ErrorKind::AlreadyExists, format!("{} exists", to.display())), false));
            }
            std::fs::rename(&path, &to).map_err(|e| (e, false))?;
            let fresh = match std::fs::OpenOptions::new().create(true).append(true).open(&path) {
                Ok(f) => f,
                Err(e) => {
                    // Undo: the closed segment goes back to being the current one.
                    return Err(match std::fs::rename(&to, &path) {
                        Ok(()) => (e, false),
                        Err(undo) => (undo, true),
                    });
                }
            };
            // The rename is done either way: a failed directory sync only means a power loss
            // could undo it (the closed segment's lines are synced).
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                if let Err(e) = std::fs::File::open(dir).and_then(|d| d.sync_all()) {
                    tracing::error!(error = %e, "audit rotation: the directory sync failed");
                }
            }
            Ok(fresh)
        })
        .await
        .map_err(|e| io_err("rotation", e))?;
        let fresh = match fresh {
            Ok(f) => f,
            Err((e, stop)) => {
                if stop {
                    self.poisoned.store(true, Ordering::Relaxed);
                    tracing::error!(error = %e, "audit rotation failed: lalo refuses statements until it restarts");
                }
                return Err(io_err("rotation", e));
            }
        };
        seg.file = Arc::new(fresh);
        seg.len = 0;
        seg.number = next;
        seg.opened = Instant::now();
        // The file's lock is held: nothing is written meanwhile. The head before the lines are
        // marked synced (waiters read the chain without the sync lock).
        let (lines, last, written) = {
            let chain = self.chain.lock();
            (chain.written_line, chain.written_hash.clone(), chain.written)
        };
        self.write_head(seg.number, lines, &last);
        let mut chain = self.chain.lock();
        chain.synced = chain.synced.max(written);
        Ok(())
    }
}
