@testable import Core
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
}
