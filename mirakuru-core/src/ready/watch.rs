//! inotify on the directory of a file the service will create (a pid file, a unix socket), so
//! its appearance is seen when it happens instead of at the next poll. Watching the directory,
//! set up before the spawn, cannot miss a file created early (readiness.md §6).

use std::ffi::OsString;
use std::path::Path;

/// Events on one file name in one directory; `None` where inotify is unavailable (macOS, a
/// file system without it, exhausted `max_user_watches`): callers then poll on a schedule.
#[derive(Debug)]
pub(crate) struct DirWatch {
    #[cfg(target_os = "linux")]
    inotify: nix::sys::inotify::Inotify,
    #[cfg(target_os = "linux")]
    name: OsString,
}

/// What [`DirWatch::drain`] saw happen to the file.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Seen {
    /// Anything at all.
    pub(crate) changed: bool,
    /// A writer closed it, or it was renamed into place.
    pub(crate) written: bool,
}

impl DirWatch {
    #[cfg(target_os = "linux")]
    pub(crate) fn new(file: &Path) -> Option<DirWatch> {
        use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
        let dir = match file.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let name = file.file_name()?.to_os_string();
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).ok()?;
        // Creation, atomic rename into place, writes and the final close of a writer.
        let mask = AddWatchFlags::IN_CREATE
            | AddWatchFlags::IN_MOVED_TO
            | AddWatchFlags::IN_MODIFY
            | AddWatchFlags::IN_CLOSE_WRITE
            | AddWatchFlags::IN_ATTRIB;
        inotify.add_watch(dir, mask).ok()?;
        Some(DirWatch { inotify, name })
    }

    #[cfg(not(target_os = "linux"))]
    pub(crate) fn new(_file: &Path) -> Option<DirWatch> {
        None
    }

    /// Consumes pending events and says what happened to our file.
    #[cfg(target_os = "linux")]
    pub(crate) fn drain(&self) -> Seen {
        use nix::sys::inotify::AddWatchFlags;
        let mut seen = Seen::default();
        while let Ok(events) = self.inotify.read_events() {
            if events.is_empty() {
                break;
            }
            for e in events {
                let overflow = e.mask.contains(AddWatchFlags::IN_Q_OVERFLOW);
                if overflow || e.name.as_deref() == Some(self.name.as_os_str()) {
                    seen.changed = true;
                    // A rename into place is a finished write too.
                    seen.written |= overflow
                        || e.mask
                            .intersects(AddWatchFlags::IN_CLOSE_WRITE | AddWatchFlags::IN_MOVED_TO);
                }
            }
        }
        seen
    }

    #[cfg(not(target_os = "linux"))]
    pub(crate) fn drain(&self) -> Seen {
        Seen::default()
    }
}

#[cfg(target_os = "linux")]
impl std::os::fd::AsFd for DirWatch {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.inotify.as_fd()
    }
}

#[cfg(not(target_os = "linux"))]
impl std::os::fd::AsFd for DirWatch {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        unreachable!("DirWatch::new returns None without inotify")
    }
}
