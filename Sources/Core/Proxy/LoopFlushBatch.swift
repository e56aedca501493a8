import NIOCore

/// The flushes one event loop's proxied exchanges ask for while it handles a batch of ready
/// sockets, issued together once that batch is handled (as a task of the same loop tick, which NIO
/// runs after the tick's I/O events and before it waits again).
///
/// Why: each flush is a `write(2)` that wakes the peer reading that socket (the upstream or the
/// client). Issued one by one between reads, every write can wake a peer that then finds a single
/// request, answers it and sleeps again: on a machine whose cores the gateway shares with its
/// peers, those wake-ups and context switches cost more than the gateway's own work. Issued
/// together, a peer woken by the first write finds the others' bytes when it runs. Latency is
/// unchanged: the flush still happens before the loop waits for more I/O.
///
/// Used only on its loop (like `UpstreamPool`, which holds it).
final class LoopFlushBatch {
    private let eventLoop: any EventLoop
    private var pending: [any Channel] = []
    /// The list being flushed (swapped with `pending`, so flushing never allocates).
    private var flushing: [any Channel] = []
    private var scheduled = false

    init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
        pending.reserveCapacity(64)
        flushing.reserveCapacity(64)
    }

    /// Flushes `channel` before this loop next waits for I/O.
    func flush(_ channel: any Channel) {
        assert(eventLoop.inEventLoop, "a loop's flush batch is used on that loop only")
        // A request's head and its end often ask in the same turn: one flush covers both.
        if let last = pending.last, last === channel { return }
        pending.append(channel)
        guard !scheduled else { return }
        scheduled = true
        eventLoop.assumeIsolatedUnsafeUnchecked().execute { self.flushPending() }
    }

    private func flushPending() {
        scheduled = false
        // A flush can complete writes whose callbacks ask for more flushes: those go to `pending`
        // and a new task.
        swap(&pending, &flushing)
        for channel in flushing { channel.flush() }
        flushing.removeAll(keepingCapacity: true)
    }
}
