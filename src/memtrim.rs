//! Giving a big build's temporary memory back to the system at once. mimalloc (the binary's
//! allocator) keeps freed pages in the heap of the thread that allocated them until that
//! thread allocates again or exits; after a list load the parse's temporaries sit in the
//! heaps of idle rayon threads and of an idle blocking thread (tokio keeps it 10 s), and RSS
//! stays tens of megabytes above what the snapshot needs (issue 23: 80 MB one second after
//! a 1M-name load, 22 MB ten seconds later). `release` asks every rayon thread and the
//! calling thread to return their free pages (`mi_collect(true)`). Where mimalloc is not the
//! global allocator (the library's tests), its heaps are empty and this costs nothing.

/// Returns the free memory of the rayon pool's threads and of the calling thread to the OS.
pub fn release() {
    rayon::broadcast(|_| collect());
    collect();
}

/// The calling thread's free pages back to the OS.
pub fn collect() {
    // SAFETY: mi_collect has no preconditions; it only walks this thread's heap and the
    // allocator's own free lists.
    unsafe { libmimalloc_sys::mi_collect(true) }
}
