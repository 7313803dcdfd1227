//! The process trees still running, so that the exit hook can stop what tests leaked: an
//! executor in a static, one passed to `mem::forget`, a shared fixture.

use super::at_exit::{at_exit, try_lock_briefly};
use super::teardown::{self, Ending};
use super::tree::Tree;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Once};

static LIVE: Mutex<Vec<Arc<Tree>>> = Mutex::new(Vec::new());
static HOOK: Once = Once::new();
static EXITING: AtomicBool = AtomicBool::new(false);

pub(super) fn register(tree: Arc<Tree>) {
    HOOK.call_once(|| at_exit(stop_all_at_exit));
    LIVE.lock().unwrap_or_else(|p| p.into_inner()).push(tree);
}

/// The processes the trees that run own for sure: their leaders (children of this binary, but
/// services of their own) and what they adopted.
pub(super) fn owned() -> Vec<u32> {
    let live = LIVE.lock().unwrap_or_else(|p| p.into_inner()).clone();
    live.iter().flat_map(|t| std::iter::once(t.leader()).chain(t.adopted())).collect()
}

/// The leaders of the trees still starting, with their start times.
pub(super) fn starting_leaders() -> Vec<(u32, u64)> {
    let live = LIVE.lock().unwrap_or_else(|p| p.into_inner()).clone();
    live.iter().filter(|t| t.starting()).map(|t| (t.leader(), t.leader_start())).collect()
}

pub(super) fn unregister(tree: &Arc<Tree>) {
    if EXITING.load(Ordering::Acquire) {
        return; // the hook owns the list now
    }
    LIVE.lock().unwrap_or_else(|p| p.into_inner()).retain(|t| !Arc::ptr_eq(t, tree));
}

/// At a normal exit, stops what is left, gracefully and all at once, as each executor's own
/// stop would — every tree in the same passes over `/proc`.
fn stop_all_at_exit() {
    EXITING.store(true, Ordering::Release);
    let trees: Vec<Arc<Tree>> = match try_lock_briefly(&LIVE) {
        Some(mut live) => std::mem::take(&mut *live),
        None => return,
    };
    let endings: Vec<Ending<'_>> = trees
        .iter()
        .map(|tree| Ending {
            tree,
            first: tree.plan.stop_signal,
            grace: tree.plan.stop_timeout,
            then: tree.plan.kill_signal,
        })
        .collect();
    teardown::terminate(&endings);
    trees.iter().for_each(Tree::finish_at_exit);
}
