@testable import Core
import NIOCore
import NIOEmbedded
import Testing

/// Flushes asked for while a loop handles its ready sockets go out together once that loop turn's
/// work is done: every channel asked for is flushed, in the same turn, including those asked for
/// while the batch itself flushes.
struct LoopFlushBatchTests {
    @Test func flushesAskedForInOneTurnGoOutTogetherWhenItEnds() throws {
        let loop = EmbeddedEventLoop()
        let channels = (0..<3).map { _ in EmbeddedChannel(loop: loop) }
        let batch = LoopFlushBatch(eventLoop: loop)
        for (index, channel) in channels.enumerated() {
            channel.write(ByteBuffer(string: "answer \(index)"), promise: nil)
            batch.flush(channel)
        }
        for channel in channels {
            #expect(try channel.readOutbound(as: ByteBuffer.self) == nil, "nothing is sent before the turn's work ends")
        }
        loop.run()
        for (index, channel) in channels.enumerated() {
            #expect(try channel.readOutbound(as: ByteBuffer.self) == ByteBuffer(string: "answer \(index)"))
            #expect(try channel.readOutbound(as: ByteBuffer.self) == nil)
        }
        _ = try channels.map { try $0.finish() }
    }

    /// A write completed by the batch's flush can write and ask for another flush (a response
    /// completing lets the next one start): that flush is not lost. (NIO runs the task it queues
    /// in the same turn, before waiting for I/O; the embedded loop used here cannot tell turns
    /// apart, so only that it happens is checked.)
    @Test func aFlushAskedForWhileFlushingIsNotLost() throws {
        let loop = EmbeddedEventLoop()
        let first = EmbeddedChannel(loop: loop), second = EmbeddedChannel(loop: loop)
        let batch = LoopFlushBatch(eventLoop: loop)
        let written = loop.makePromise(of: Void.self)
        written.futureResult.whenSuccess {
            second.write(ByteBuffer(string: "next"), promise: nil)
            batch.flush(second)
        }
        first.write(ByteBuffer(string: "first"), promise: written)
        batch.flush(first)
        loop.run()
        #expect(try first.readOutbound(as: ByteBuffer.self) == ByteBuffer(string: "first"))
        #expect(try second.readOutbound(as: ByteBuffer.self) == ByteBuffer(string: "next"))
        // Asked for again later: a new turn flushes again.
        first.write(ByteBuffer(string: "later"), promise: nil)
        batch.flush(first)
        loop.run()
        #expect(try first.readOutbound(as: ByteBuffer.self) == ByteBuffer(string: "later"))
        _ = try first.finish()
        _ = try second.finish()
    }

    /// Counts the flushes that reach the channel's pipeline.
    final class FlushCounter: ChannelOutboundHandler, @unchecked Sendable {
        typealias OutboundIn = ByteBuffer
        var flushes = 0
        func flush(context: ChannelHandlerContext) {
            flushes += 1
            context.flush()
        }
    }

    /// A request's head and end both ask for a flush in the same turn: the channel is flushed
    /// once, and both are sent.
    @Test func aChannelAskedForTwiceInARowIsFlushedOnce() throws {
        let loop = EmbeddedEventLoop()
        let counter = FlushCounter()
        let channel = EmbeddedChannel(handler: counter, loop: loop)
        let batch = LoopFlushBatch(eventLoop: loop)
        channel.write(ByteBuffer(string: "head "), promise: nil)
        batch.flush(channel)
        channel.write(ByteBuffer(string: "end"), promise: nil)
        batch.flush(channel)
        loop.run()
        #expect(counter.flushes == 1)
        #expect(try channel.readOutbound(as: ByteBuffer.self) == ByteBuffer(string: "head "))
        #expect(try channel.readOutbound(as: ByteBuffer.self) == ByteBuffer(string: "end"))
        _ = try channel.finish()
    }
}
