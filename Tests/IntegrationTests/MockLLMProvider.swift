import Core
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// One request as the mock provider received it, body whole.
struct ProviderRequest: Sendable {
    let method: HTTPMethod
    let uri: String
    let headers: HTTPHeaders
    let body: [UInt8]

    var path: String { String(uri.prefix { $0 != "?" }) }
    var query: String? { uri.firstIndex(of: "?").map { String(uri[uri.index(after: $0)...]) } }
    var bodyText: String { String(decoding: body, as: UTF8.self) }
    var json: JSONValue? { try? JSONValue.parse(bytes: body) }
}

/// What the mock provider answers: status, headers and the body as chunks, each written (and
/// flushed) on its own, optionally after a pause; the last one may wait for the gate.
struct ProviderReply: Sendable {
    struct Chunk: Sendable {
        var bytes: [UInt8]
        var pauseBefore: TimeAmount = .zero

        init(text: String, pauseBefore: TimeAmount = .zero) {
            self.init(bytes: Array(text.utf8), pauseBefore: pauseBefore)
        }

        init(bytes: [UInt8], pauseBefore: TimeAmount = .zero) {
            self.bytes = bytes
            self.pauseBefore = pauseBefore
        }
    }

    var status: Int = 200
    var headers: [(name: String, value: String)] = []
    var chunks: [Chunk] = []
    /// Sends `Content-Length`; otherwise the body goes chunked.
    var declaresLength = true
    /// The last chunk waits for `MockLLMProvider.releaseGate()`.
    var holdsLastChunk = false

    var bodyLength: Int { chunks.reduce(0) { $0 + $1.bytes.count } }

    /// A whole JSON body with its Content-Length.
    static func json(_ body: String, status: Int = 200, headers: [(name: String, value: String)] = []) -> ProviderReply {
        ProviderReply(status: status, headers: [("Content-Type", "application/json")] + headers,
                      chunks: [Chunk(text: body)])
    }

    /// A JSON body sent chunked, in these pieces (the gateway must find the length itself).
    static func chunkedJSON(_ pieces: [String], status: Int = 200,
                            headers: [(name: String, value: String)] = []) -> ProviderReply {
        ProviderReply(status: status, headers: [("Content-Type", "application/json")] + headers,
                      chunks: pieces.map { Chunk(text: $0) }, declaresLength: false)
    }

    /// An event stream: one chunk per frame, `pause` before each but the first.
    static func events(_ frames: [String], contentType: String = "text/event-stream",
                       holdingLast: Bool = false, pause: TimeAmount = .zero) -> ProviderReply {
        ProviderReply(status: 200, headers: [("Content-Type", contentType)],
                      chunks: frames.enumerated().map { Chunk(text: $1, pauseBefore: $0 == 0 ? .zero : pause) },
                      declaresLength: false, holdsLastChunk: holdingLast)
    }
}

/// A scriptable LLM provider on 127.0.0.1 with a random port, for ai-proxy tests: records every
/// request and answers with the reply of `answer(with:)`'s closure, else of the per-path table
/// (`answer(path:with:)`), else a 404 naming the unscripted path.
final class MockLLMProvider: Sendable {
    typealias Responder = @Sendable (ProviderRequest) -> ProviderReply

    let port: Int
    var baseURL: String { "http://127.0.0.1:\(port)" }
    var hostHeader: String { "127.0.0.1:\(port)" }
    private let channel: any Channel
    private let state = NIOLockedValueBox(State())
    /// Whether held last chunks may go, and the replies waiting for that.
    private let gate = NIOLockedValueBox<(open: Bool, waiting: [CheckedContinuation<Void, Never>])>((false, []))

    private struct State {
        var received: [ProviderRequest] = []
        var responder: Responder?
        var table: [String: ProviderReply] = [:]
    }

    private init(port: Int, channel: any Channel) {
        self.port = port
        self.channel = channel
    }

    static func start() async throws -> MockLLMProvider {
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .bind(host: "127.0.0.1", port: 0) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    return try NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>(wrappingChannelSynchronously: channel)
                }
            }
        let provider = MockLLMProvider(port: server.channel.localAddress!.port!, channel: server.channel)
        Task {
            try? await withThrowingDiscardingTaskGroup { group in
                try await server.executeThenClose { inbound in
                    for try await connection in inbound {
                        group.addTask { try? await provider.serve(connection) }
                    }
                }
            }
        }
        return provider
    }

    func stop() async {
        releaseGate()  // no reply stays parked on a closed server
        try? await channel.close()
    }

    // MARK: Script

    /// Every request is answered by `responder` (it wins over the table).
    func answer(with responder: @escaping Responder) {
        state.withLockedValue { $0.responder = responder }
    }

    /// Requests whose path (query left out) is `path` get `reply`.
    func answer(path: String, with reply: ProviderReply) {
        state.withLockedValue { $0.table[path] = reply }
    }

    /// Lets every held last chunk go, now and from now on.
    func releaseGate() {
        let waiting = gate.withLockedValue { gate -> [CheckedContinuation<Void, Never>] in
            gate.open = true
            defer { gate.waiting = [] }
            return gate.waiting
        }
        for continuation in waiting { continuation.resume() }
    }

    // MARK: Record

    /// Every request so far, in arrival order (recorded before it is answered).
    var requests: [ProviderRequest] { state.withLockedValue { $0.received } }

    // MARK: Serving

    private func waitForGate() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let open = gate.withLockedValue { gate -> Bool in
                if !gate.open { gate.waiting.append(continuation) }
                return gate.open
            }
            if open { continuation.resume() }
        }
    }

    private func reply(to request: ProviderRequest) -> ProviderReply {
        let (responder, scripted) = state.withLockedValue { state in
            state.received.append(request)
            return (state.responder, state.table[request.path])
        }
        if let responder { return responder(request) }
        if let scripted { return scripted }
        return .json(#"{"error":{"message":"mock provider: nothing scripted for \#(request.path)"}}"#, status: 404)
    }

    private func serve(_ connection: NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>) async throws {
        try await connection.executeThenClose { inbound, outbound in
            var head: HTTPRequestHead?
            var body: [UInt8] = []
            for try await part in inbound {
                switch part {
                case .head(let h):
                    head = h
                    body = []
                case .body(let buffer):
                    body += buffer.readableBytesView
                case .end:
                    guard let head else { continue }
                    let request = ProviderRequest(method: head.method, uri: head.uri, headers: head.headers, body: body)
                    try await send(reply(to: request), outbound: outbound)
                }
            }
        }
    }

    private func send(_ reply: ProviderReply, outbound: NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>) async throws {
        var headers = HTTPHeaders()
        for (name, value) in reply.headers { headers.add(name: name, value: value) }
        if reply.declaresLength {
            headers.replaceOrAdd(name: "Content-Length", value: String(reply.bodyLength))
        } else {
            headers.replaceOrAdd(name: "Transfer-Encoding", value: "chunked")
        }
        headers.replaceOrAdd(name: "Server", value: "mock-llm-provider")
        try await outbound.write(.head(HTTPResponseHead(version: .http1_1, status: .init(statusCode: reply.status),
                                                        headers: headers)))
        for (index, chunk) in reply.chunks.enumerated() {
            if reply.holdsLastChunk && index == reply.chunks.count - 1 { await waitForGate() }
            if chunk.pauseBefore > .zero { try await Task.sleep(nanoseconds: UInt64(chunk.pauseBefore.nanoseconds)) }
            try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: chunk.bytes))))
        }
        try await outbound.write(.end(nil))
    }
}

/// Provider-shaped bodies the tests script the mock with.
enum ProviderFixtures {
    /// An OpenAI chat completion, spaced as Python's `json.dumps` writes it (so that a
    /// re-encoding gateway would be noticed).
    static func openAIChat(content: String, model: String = "gpt-4o-mini", prompt: Int = 25, completion: Int = 12) -> String {
        """
        {"id": "chatcmpl-mock", "object": "chat.completion", "created": 1700000000, "model": "\(model)", \
        "choices": [{"index": 0, "message": {"role": "assistant", "content": \(quoted(content))}, "finish_reason": "stop"}], \
        "usage": {"prompt_tokens": \(prompt), "completion_tokens": \(completion), "total_tokens": \(prompt + completion)}}
        """
    }

    /// OpenAI SSE frames: a role frame, one frame per delta, a finish frame, then `[DONE]`.
    static func openAIStream(deltas: [String], model: String = "gpt-4o-mini") -> [String] {
        func frame(_ delta: String, finish: String?) -> String {
            let reason = finish.map(quoted) ?? "null"
            return #"data: {"id":"chatcmpl-mock","object":"chat.completion.chunk","created":1700000000,"model":"\#(model)","choices":[{"index":0,"delta":\#(delta),"finish_reason":\#(reason)}]}"# + "\n\n"
        }
        return [frame(#"{"role":"assistant","content":""}"#, finish: nil)]
            + deltas.map { frame(#"{"content":\#(quoted($0))}"#, finish: nil) }
            + [frame("{}", finish: "stop"), "data: [DONE]\n\n"]
    }

    /// An Anthropic Messages response with one text block per entry of `texts`.
    static func anthropicMessage(texts: [String], model: String = "claude-3-5-haiku-20241022",
                                 input: Int = 11, output: Int = 7) -> String {
        let blocks = texts.map { #"{"type":"text","text":\#(quoted($0))}"# }.joined(separator: ",")
        return #"{"id":"msg_mock","type":"message","role":"assistant","model":"\#(model)","content":[\#(blocks)],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":\#(input),"output_tokens":\#(output)}}"#
    }

    /// Anthropic streaming events, each `event:`/`data:` pair a frame.
    static func anthropicStream(deltas: [String], model: String = "claude-3-5-haiku-20241022") -> [String] {
        func event(_ name: String, _ data: String) -> String { "event: \(name)\ndata: \(data)\n\n" }
        return [
            event("message_start", #"{"type":"message_start","message":{"id":"msg_stream","type":"message","role":"assistant","model":"\#(model)","content":[],"stop_reason":null,"usage":{"input_tokens":9,"output_tokens":1}}}"#),
            event("content_block_start", #"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#),
            event("ping", #"{"type":"ping"}"#),
        ] + deltas.map {
            event("content_block_delta", #"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":\#(quoted($0))}}"#)
        } + [
            event("content_block_stop", #"{"type":"content_block_stop","index":0}"#),
            event("message_delta", #"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":5}}"#),
            event("message_stop", #"{"type":"message_stop"}"#),
        ]
    }

    static func quoted(_ text: String) -> String { JSONValue.string(text).serialized() }
}
