//! A growable list for the reaper, which may not use the allocator (it is a fork of a
//! multi-threaded process: a lock held by a thread that no longer exists would deadlock it).
//!
//! The room is reserved from the kernel at once — as many entries as there can be processes
//! (`pid_max`), halved until the kernel agrees — and its pages are only backed as they are
//! written, so a list of ten entries costs ten entries of memory. Nothing is capped below the
//! number of processes the system can hold.

use rustix::mm::{MapFlags, ProtFlags};

/// A list of `T` in memory mapped straight from the kernel. Never freed: it lives until the
/// reaper exits.
#[derive(Debug)]
pub(crate) struct Table<T: Copy> {
    ptr: *mut T,
    len: usize,
    capacity: usize,
}

impl<T: Copy> Table<T> {
    /// Room for up to `capacity` entries, or as many as the kernel grants (at least 1,024);
    /// `None` if not even that.
    pub(crate) fn with_capacity(capacity: usize) -> Option<Table<T>> {
        let mut capacity = capacity.max(1024);
        loop {
            let bytes = capacity.checked_mul(std::mem::size_of::<T>())?;
            let flags = MapFlags::PRIVATE | MapFlags::NORESERVE;
            let prot = ProtFlags::READ | ProtFlags::WRITE;
            // SAFETY: a new anonymous mapping aliases nothing; its address is page-aligned,
            // so aligned for any `T`.
            match unsafe { rustix::mm::mmap_anonymous(std::ptr::null_mut(), bytes, prot, flags) } {
                Ok(ptr) => return Some(Table { ptr: ptr.cast::<T>(), len: 0, capacity }),
                Err(_) if capacity > 1024 => capacity /= 2,
                Err(_) => return None,
            }
        }
    }

    /// Appends `value`; false when there is no room left.
    pub(crate) fn push(&mut self, value: T) -> bool {
        if self.len == self.capacity {
            return false;
        }
        // SAFETY: `len < capacity`, so the slot lies inside the mapping, which only this
        // table uses.
        unsafe { self.ptr.add(self.len).write(value) };
        self.len += 1;
        true
    }

    /// Empties the list (its memory stays reserved).
    pub(crate) fn clear(&mut self) {
        self.len = 0;
    }

    /// Removes entry `i`, putting the last one in its place.
    pub(crate) fn swap_remove(&mut self, i: usize) {
        if i < self.len {
            let last = self.as_slice()[self.len - 1];
            self.as_mut_slice()[i] = last;
            self.len -= 1;
        }
    }

    pub(crate) fn as_slice(&self) -> &[T] {
        // SAFETY: the first `len` entries were written by `push`, inside the mapping.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    pub(crate) fn as_mut_slice(&mut self) -> &mut [T] {
        // SAFETY: as for `as_slice`, and `&mut self` makes the borrow exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}
