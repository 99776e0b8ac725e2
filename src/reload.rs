//! Keeping the policy current without dropping a query: SIGHUP (via [`Live::reload`]), a
//! polling watch on the config file and local feed files, and the refresh timer of remote
//! feeds all rebuild the policy on a blocking thread and swap it in atomically. A rebuild
//! that fails leaves the running policy in force and logs why.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use tokio::sync::watch;

use crate::config::Config;
use crate::policy::Policy;
use crate::remote::{Fetched, Fetcher};

/// The live policy and the config it was built from.
pub struct Live {
    pub policy: Arc<ArcSwap<Policy>>,
    pub config: ArcSwap<Config>,
    path: PathBuf,
    metrics: Option<Arc<crate::metrics::Metrics>>,
    /// One rebuild at a time; a second trigger waits rather than racing the swap.
    rebuilding: Mutex<()>,
}

impl Live {
    pub fn new(config: Config, policy: Policy) -> Live {
        Live {
            path: config.source.clone(),
            policy: Arc::new(ArcSwap::from_pointee(policy)),
            config: ArcSwap::from_pointee(config),
            metrics: None,
            rebuilding: Mutex::new(()),
        }
    }

    /// Counts reloads (and their failures) into `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::Metrics>) -> Live {
        self.metrics = Some(metrics);
        self
    }

    /// Re-reads the config file and every feed and swaps in the new policy. Blocking: call
    /// it from a blocking thread. On error the running policy stays and the error is returned.
    pub fn reload(&self) -> Result<(), String> {
        let result = self.rebuild();
        if let Some(m) = &self.metrics {
            m.reloaded(result.is_ok());
        }
        result
    }

    fn rebuild(&self) -> Result<(), String> {
        let _one = self.rebuilding.lock().unwrap_or_else(|e| e.into_inner());
        let started = std::time::Instant::now();
        let config = Config::load(&self.path).map_err(|e| e.to_string())?;
        let old = self.config.load();
        if config.server.listen != old.server.listen
            || config.upstream.servers != old.upstream.servers
        {
            tracing::warn!(
                "server.listen and upstream.servers changes take effect at the next restart"
            );
        }
        let policy = Policy::build_like(&config, Some(&self.policy.load()))?;
        let count = policy.indicator_count();
        let old = self.policy.swap(Arc::new(policy));
        self.config.store(Arc::new(config));
        drop(old);
        give_back_freed_memory();
        tracing::info!(
            indicators = count,
            took_ms = started.elapsed().as_millis() as u64,
            "policy reloaded"
        );
        Ok(())
    }

    /// Reloads on a blocking thread and logs the outcome.
    pub async fn reload_logged(self: &Arc<Self>, why: &str) {
        let live = self.clone();
        match tokio::task::spawn_blocking(move || live.reload()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(
                trigger = why,
                "reload failed, keeping the running policy: {e}"
            ),
            Err(e) => tracing::error!(
                trigger = why,
                "reload panicked, keeping the running policy: {e}"
            ),
        }
    }

    /// Modification times of the config file and every local feed file.
    fn fingerprint(&self) -> Vec<Option<(SystemTime, u64)>> {
        let config = self.config.load();
        let mut paths = vec![self.path.clone()];
        paths.extend(config.feeds.iter().filter_map(|f| f.path.clone()));
        paths
            .iter()
            .map(|p| {
                std::fs::metadata(p)
                    .ok()
                    .and_then(|m| Some((m.modified().ok()?, m.len())))
            })
            .collect()
    }
}

/// Polls the config and local feed files every `interval`; a change that has settled (the
/// same on two polls in a row, so a file being written is not read half-way) triggers a reload.
pub async fn watch_files(live: Arc<Live>, interval: Duration, mut stopped: watch::Receiver<bool>) {
    let mut applied = live.fingerprint();
    let mut pending: Option<Vec<Option<(SystemTime, u64)>>> = None;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stopped.changed() => return,
        }
        let now = live.fingerprint();
        if now == applied {
            pending = None;
            continue;
        }
        if pending.as_ref() == Some(&now) {
            live.reload_logged("file change").await;
            // Whether or not it worked, this state has been tried; wait for the next change.
            applied = live.fingerprint();
            pending = None;
        } else {
            pending = Some(now);
        }
    }
}

/// Downloads every remote feed when due (at start, then every `refresh`), and reloads when
/// one changed. Feeds added by a reload are picked up on the next tick.
pub async fn refresh_remote(live: Arc<Live>, fetcher: Fetcher, mut stopped: watch::Receiver<bool>) {
    let mut last_try: std::collections::HashMap<String, std::time::Instant> = Default::default();
    loop {
        let config = live.config.load_full();
        let mut changed = false;
        for feed in config.feeds.iter().filter(|f| f.url.is_some()) {
            let every = feed.refresh.unwrap_or(Duration::from_secs(3600));
            let name = feed.name.get_ref();
            if last_try.get(name).is_some_and(|t| t.elapsed() < every) {
                continue;
            }
            last_try.insert(name.clone(), std::time::Instant::now());
            match fetcher.fetch(feed).await {
                Ok(Fetched::Changed) => {
                    tracing::info!(feed = %name, "remote feed downloaded");
                    changed = true;
                }
                Ok(Fetched::NotModified) => {
                    tracing::debug!(feed = %name, "remote feed not modified")
                }
                Err(e) => {
                    tracing::warn!(feed = %name, "refresh failed, keeping the last good copy: {e}")
                }
            }
        }
        if changed {
            live.reload_logged("remote feed refresh").await;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = stopped.changed() => return,
        }
    }
}

/// A rebuild frees a whole policy's worth of small allocations; glibc keeps such memory in its
/// arenas unless asked, which shows up as RSS creeping up reload after reload.
pub fn give_back_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory held by the allocator.
    unsafe {
        libc::malloc_trim(0);
    }
}
