import Core
import Foundation
import Synchronization
import NIOHTTP1
@testable import Plugins
import Testing

/// file-log holds the lines of one log batch and writes them when the batch ends, sooner when a
/// burst holds more than its limit, and when its configuration goes away: whole lines, in order,
/// none lost.
struct FileLogHandlerTests {
    static func request(_ path: String) -> ProxyRequestContext {
        ProxyRequestContext(requestID: "r-\(path)", method: .GET, rawPath: Substring(path), rawQuery: nil,
                            headers: HTTPHeaders([("Host", "gw.test"), ("X-Padding", String(repeating: "p", count: 900))]),
                            clientAddress: "10.0.0.9", isTLS: false)
    }

    /// The `request.uri` of each line of the file (nil for a line that is not a whole document).
    static func uris(_ path: String) -> [String?] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").map { (try? JSONValue.parse(String($0)))?["request"]?["uri"]?.stringValue }
    }

    static func withLogFile(_ body: (String) throws -> Void) throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("silverback-file-log-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        try body(directory.appendingPathComponent("batch.log").path)
    }

    @Test func theLinesOfABatchAreWrittenWhenItEnds() throws {
        try Self.withLogFile { path in
            let handler = FileLogHandler(config: ["path": .string(path), "reopen": false])
            for index in 0..<3 { handler.log(Self.request("/r/\(index)")) }
            #expect(Self.uris(path).isEmpty, "held until the batch ends")
            handler.logBatchEnded()
            #expect(Self.uris(path) == ["/r/0", "/r/1", "/r/2"])
            handler.logBatchEnded()  // once per entry of the batch: the later calls find nothing held
            handler.log(Self.request("/r/3"))
            handler.logBatchEnded()
            #expect(Self.uris(path) == ["/r/0", "/r/1", "/r/2", "/r/3"])
        }
    }

    @Test func aBurstIsWrittenInWholeLinesBeforeItsBatchEnds() throws {
        try Self.withLogFile { path in
            let handler = FileLogHandler(config: ["path": .string(path), "reopen": true])
            let count = FileLogHandler.heldLimit / 1000 + 20  // each line is over 1 KB
            for index in 0..<count { handler.log(Self.request("/burst/\(index)")) }
            let early = Self.uris(path)
            #expect(!early.isEmpty && early.count < count, "written once the held bytes reach the limit")
            #expect(early == (0..<early.count).map { "/burst/\($0)" }, "whole lines, in order")
            handler.logBatchEnded()
            #expect(Self.uris(path) == (0..<count).map { "/burst/\($0)" })
        }
    }

    /// A pipe (`/dev/stdout` in a container, a FIFO) takes each line in a write of its own, whole
    /// and in order: writes larger than `PIPE_BUF` could be interleaved with another writer's.
    @Test func aPipeGetsEveryLineWholeAndInOrder() throws {
        try Self.withLogFile { path in
            try #require(mkfifo(path, 0o600) == 0)
            let received = Mutex<Data?>(nil)
            let done = DispatchSemaphore(value: 0)
            // Opening a FIFO for writing waits for its reader.
            DispatchQueue.global().async {
                let data = FileHandle(forReadingAtPath: path)?.readDataToEndOfFile()
                received.withLock { $0 = data }
                done.signal()
            }
            var handler: FileLogHandler? = FileLogHandler(config: ["path": .string(path), "reopen": false])
            for index in 0..<5 { handler?.log(Self.request("/pipe/\(index)")) }
            handler?.logBatchEnded()
            handler = nil  // closes the pipe: the reader sees its end
            #expect(done.wait(timeout: .now() + 10) == .success)
            let text = String(decoding: received.withLock { $0 } ?? Data(), as: UTF8.self)
            let uris = text.split(separator: "\n").map { (try? JSONValue.parse(String($0)))?["request"]?["uri"]?.stringValue }
            #expect(uris == (0..<5).map { "/pipe/\($0)" })
        }
    }

    /// A reload replaces the handler: lines it still held are written as it goes.
    @Test func heldLinesAreWrittenWhenTheHandlerGoesAway() throws {
        try Self.withLogFile { path in
            var handler: FileLogHandler? = FileLogHandler(config: ["path": .string(path), "reopen": false])
            handler?.log(Self.request("/last"))
            handler = nil
            #expect(Self.uris(path) == ["/last"])
        }
    }
}
