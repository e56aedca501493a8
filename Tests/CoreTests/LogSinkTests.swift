@testable import Core
import NIOCore
import NIOPosix
import Synchronization
import Testing

/// The log queue is bounded: work beyond its capacity is dropped and counted, never buffered
/// without limit; queued work runs in order once the drain runs.
struct LogSinkTests {
    @Test func workBeyondTheCapacityIsDroppedAndCounted() async {
        let sink = LogSink(capacity: 3)
        let ran = Mutex<[Int]>([])
        for i in 0..<5 { sink.submit { ran.withLock { $0.append(i) } } }
        #expect(sink.droppedCount == 2)
        sink.finish()
        await sink.run()
        #expect(ran.withLock { $0 } == [0, 1, 2])
    }

    /// The drain runs while work arrives, in order, and whatever was queued before `finish()` runs.
    @Test func workQueuedWhileRunningRunsInOrderAndFinishFlushes() async {
        let sink = LogSink()
        let ran = Mutex<[Int]>([])
        let draining = Task { await sink.run() }
        for i in 0..<100 { sink.submit { ran.withLock { $0.append(i) } } }
        sink.finish()
        await draining.value
        #expect(ran.withLock { $0 } == Array(0..<100))
        sink.submit { ran.withLock { $0.append(-1) } }
        #expect(sink.droppedCount == 1, "work after finish() is refused and counted")
    }

    /// Work runs whether the drain thread is polling (work keeps coming) or asleep after a quiet
    /// spell (the submit wakes it).
    @Test func workRunsWhetherTheDrainPollsOrSleeps() async throws {
        let sink = LogSink()
        let ran = Mutex<Int>(0)
        let draining = Task { await sink.run() }
        func submitAndWait(_ expected: Int) async throws {
            sink.submit { ran.withLock { $0 += 1 } }
            for _ in 0..<500 where ran.withLock({ $0 }) < expected { try await Task.sleep(for: .milliseconds(10)) }
            #expect(ran.withLock { $0 } == expected)
        }
        try await submitAndWait(1)
        try await submitAndWait(2)  // while polling
        // Past `pollsBeforeSleeping` empty polls the thread sleeps until woken.
        try await Task.sleep(for: .milliseconds(Int(Double(LogSink.pollsBeforeSleeping) * LogSink.pollInterval * 1000) * 3))
        try await submitAndWait(3)
        sink.finish()
        await draining.value
    }

    /// Work submitted with an owning event loop is released on that loop after it ran (so what a
    /// request allocated is freed by the thread that allocated it); other work on the drain thread.
    @Test func workIsReleasedOnItsOwnersEventLoop() async throws {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let sink = LogSink()
        let record = ReleaseRecord()
        // Submitted from the loop, as requests do, and queued before the drain thread starts: the
        // loop's own references are gone by then, so only the hand-back can release on the loop.
        // More entries than one hand-back task takes: each chunk goes back.
        let owned = LogSink.releaseChunk + 3
        try await loop.submit {
            for index in 0..<owned { sink.submit(releasingOn: loop, record.work("owned-\(index)", loop: loop)) }
        }.get()
        sink.submit(record.work("ownerless", loop: loop))
        sink.finish()
        await sink.run()
        try await loop.submit {}.get()  // runs after the releases the drain queued on the loop
        #expect(record.ran.withLock { $0 } == (0..<owned).map { "owned-\($0)" } + ["ownerless"])
        let released = record.releasedOnLoop.withLock { $0 }
        #expect(released.count == owned + 1)
        let ownedOnLoop = released.filter { $0.key.hasPrefix("owned-") && $0.value }.count
        #expect(ownedOnLoop == owned, "every owned entry, in every chunk")
        #expect(released["ownerless"] == false)
    }
}

/// Which work ran, and whether each was released on the event loop.
private final class ReleaseRecord: Sendable {
    let ran = Mutex<[String]>([])
    let releasedOnLoop = Mutex<[String: Bool]>([:])

    /// Work whose only reference to a probe is its own capture: the probe's deinit tells on which
    /// thread the work was released.
    func work(_ name: String, loop: any EventLoop) -> @Sendable () -> Void {
        let probe = ReleaseProbe { self.releasedOnLoop.withLock { $0[name] = loop.inEventLoop } }
        return { withExtendedLifetime(probe) { self.ran.withLock { $0.append(name) } } }
    }
}

private final class ReleaseProbe: Sendable {
    let onRelease: @Sendable () -> Void
    init(_ onRelease: @escaping @Sendable () -> Void) { self.onRelease = onRelease }
    deinit { onRelease() }

}

extension LogSinkTests {
    /// Handlers whose log phase ran in a batch are told when the whole batch has run (file-log
    /// writes its held lines then), once per entry they logged, after every entry of the batch.
    @Test func loggersAreToldWhenTheirBatchEnds() async {
        final class Events: Sendable {
            let list = Mutex<[String]>([])
            func add(_ event: String) { list.withLock { $0.append(event) } }
        }
        final class Recorder: WithoutRequestPhases, @unchecked Sendable {
            let name: String
            let events: Events
            init(_ name: String, _ events: Events) { self.name = name; self.events = events }
            var logs: Bool { true }
            func logBatchEnded() { events.add("end \(name)") }
        }
        let events = Events()
        let first = Recorder("a", events), second = Recorder("b", events)
        let sink = LogSink()
        for (index, logger) in [first, second, first].enumerated() {
            sink.submit(loggers: [logger]) { events.add("log \(index)") }
        }
        sink.finish()
        await sink.run()  // one batch: everything was queued before the drain started
        #expect(events.list.withLock { $0 } == ["log 0", "log 1", "log 2", "end a", "end b", "end a"])
    }
}
