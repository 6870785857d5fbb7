//! The anomaly learner as a follower of the record: it hands every stored
//! record to the [`Engine`], appends the anomaly records the engine makes
//! (through the record writer, so they are chained, kept and delivered
//! like any alert), and saves the engine's state in the store: at once
//! when an alert was made, else at most every few seconds. At start-up it
//! moves its cursor back to the last record the saved state has applied,
//! so a crash loses no learning (the records since are read again).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Engine, State};
use crate::model::{FollowError, Follower, Record};
use crate::record::writer::RecordSender;
use crate::record::Store;
use crate::rules::Live;

/// The follower's name (its cursor's and its saved state's).
pub const NAME: &str = "anomaly";
/// The longest the saved state lags what was learned.
const SAVE_EVERY: Duration = Duration::from_secs(5);

/// The learner.
pub struct Learner {
    engine: Engine,
    live: Live,
    store: Arc<Store>,
    records: RecordSender,
    saved: Instant,
    dirty: bool,
    niced: bool,
    /// An anomaly record could not be handed to the writer (it has stopped):
    /// the state past the last save is not saved, so the next start reads
    /// those records again and makes the alert then.
    unsaved: bool,
}

/// Why the learner could not start.
#[derive(Debug, thiserror::Error)]
pub enum LearnerError {
    /// The store could not be read or written.
    #[error("anomaly state: {0}")]
    Store(#[from] crate::record::StoreError),
    /// The saved state could not be read back.
    #[error("anomaly state is unreadable: {0}")]
    Decode(#[from] serde_json::Error),
}

/// The saved state in `store` (empty when none was saved).
pub fn load(store: &Store) -> Result<State, LearnerError> {
    Ok(match store.state(NAME)? {
        Some(bytes) => serde_json::from_slice(&bytes)?,
        None => State::default(),
    })
}

impl Learner {
    /// The learner, resuming from the state saved in `store`; anomaly
    /// records go to `records`.
    pub fn new(live: Live, store: Arc<Store>, records: RecordSender) -> Result<Self, LearnerError> {
        let state = load(&store)?;
        if store.state(NAME)?.is_some() && store.cursor(NAME)?.seq > state.applied {
            store.advance(NAME, state.applied)?;
        }
        Ok(Learner {
            engine: Engine::new(live.anomaly(), state),
            live,
            store,
            records,
            saved: Instant::now(),
            dirty: false,
            niced: false,
            unsaved: false,
        })
    }

    fn save(&mut self) -> Result<(), FollowError> {
        let bytes = serde_json::to_vec(self.engine.save())?;
        self.store.save_state(NAME, &bytes)?;
        self.saved = Instant::now();
        self.dirty = false;
        Ok(())
    }
}

impl Follower for Learner {
    fn name(&self) -> &str {
        NAME
    }

    fn handle(&mut self, records: &[Record]) -> Result<(), FollowError> {
        if !self.niced {
            // Learning can wait: under load the pipeline and the writer go
            // first (nice 10 for this thread only).
            // SAFETY: setpriority on this thread's own id; no memory is touched.
            unsafe {
                libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, 10);
            }
            self.niced = true;
        }
        let rules = self.live.anomaly();
        if !Arc::ptr_eq(&rules, self.engine.rules()) {
            self.engine.set_rules(rules);
        }
        let mut alerted = false;
        for r in records {
            let out = self.engine.observe(r);
            for a in out.alerts {
                alerted = true;
                if self.records.send(a).is_err() {
                    self.unsaved = true;
                    return Err("the record writer has stopped".into());
                }
            }
        }
        self.dirty |= !records.is_empty();
        if !self.unsaved && (alerted || (self.dirty && self.saved.elapsed() >= SAVE_EVERY)) {
            self.save()?;
        }
        Ok(())
    }
}

impl Drop for Learner {
    fn drop(&mut self) {
        if self.dirty && !self.unsaved {
            if let Err(e) = self.save() {
                tracing::warn!(error = %e, "anomaly state not saved at stop");
            }
        }
    }
}
