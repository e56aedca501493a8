import LuaSandbox
import NIOCore
import NIOPosix

/// requestPrompt's cost function (spec ai-plugins §5.3): `config.request_prompt_count_function`,
/// a Lua 5.1 function body run per request in a fresh sandboxed state (Sources/LuaSandbox) with a
/// read-only `kong.request`. Its first return value, a number, is the request's cost.
struct RequestPromptFunction: Sendable {
    struct Request: Sendable {
        var method: String
        var path: String
        /// Without the `?`.
        var rawQuery: String
        /// Lower-cased names; a repeated header appears once per value.
        var headers: [(String, String)]
        /// Percent-decoded arguments in request order; repeated names repeat.
        var query: [(String, String)]
        var body: [UInt8]?
        /// `ProxyRequestContext.pdkFacts`: `kong.client`, `kong.router`, host, scheme, port.
        var facts: [(String, String)] = []
    }

    enum Failure: Error, Equatable {
        /// The function returned something other than a number (a numeric string included);
        /// `type` is its Lua type name.
        case badReturn(type: String)
        /// A Lua error (message with position), or a source that does not compile.
        case runtime(String)
        /// "instruction limit exceeded", "time limit exceeded" or "memory limit exceeded".
        case limit(String)
    }

    /// Memory the script may use per byte of request body, on top of `memoryLimit`: the body's own
    /// copies (`get_raw_body`'s string, `get_body`'s tables) should not eat the script's budget.
    static let memoryPerBodyByte = 8

    private let source: [UInt8]
    let instructionLimit: Int
    let timeLimitMilliseconds: Int
    let memoryLimit: Int

    /// Lua's message when `source` does not compile (Kong reports it as
    /// `error parsing prompt function: <message>`), nil when it does.
    static func compileProblem(_ source: String) -> String? {
        let capacity = 512
        var detail = [CChar](repeating: 0, count: capacity)
        let status = Array(source.utf8).withUnsafeBufferPointer { bytes in
            bytes.withMemoryRebound(to: CChar.self) { sb_lua_check($0.baseAddress, $0.count, &detail, capacity) }
        }
        guard status != 0 else { return nil }
        return String(decoding: detail.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Limits of 0 are off. The instruction budget also counts function calls and elements the
    /// table library moves, so loops inside C functions are bounded too.
    init(source: String, instructionLimit: Int = 1_000_000, timeLimitMilliseconds: Int = 100,
         memoryLimit: Int = 16 << 20) {
        self.source = Array(source.utf8)
        self.instructionLimit = instructionLimit
        self.timeLimitMilliseconds = timeLimitMilliseconds
        self.memoryLimit = memoryLimit
    }

    func cost(of request: Request) -> Result<Double, Failure> {
        // Every string C reads lives in one arena, so a single pointer (valid for the whole call)
        // covers them all; the body is lent without a copy.
        var arena: [UInt8] = []
        func add(_ text: String) -> Range<Int> {
            let start = arena.count
            arena.append(contentsOf: text.utf8)
            return start..<arena.count
        }
        let method = add(request.method), path = add(request.path), rawQuery = add(request.rawQuery)
        let headers = request.headers.map { (add($0.0), add($0.1)) }
        let query = request.query.map { (add($0.0), add($0.1)) }
        let facts = request.facts.map { (add($0.0), add($0.1)) }
        let memory = memoryLimit > 0 ? memoryLimit + Self.memoryPerBodyByte * (request.body?.count ?? 0) : 0

        var result = sb_lua_result()
        arena.withUnsafeBufferPointer { arenaBytes in
            arenaBytes.withMemoryRebound(to: CChar.self) { chars in
                func at(_ range: Range<Int>) -> UnsafePointer<CChar>? { chars.baseAddress.map { $0 + range.lowerBound } }
                func pairs(_ list: [(Range<Int>, Range<Int>)]) -> [sb_lua_pair] {
                    list.map { sb_lua_pair(name: at($0.0), name_len: $0.0.count, value: at($0.1), value_len: $0.1.count) }
                }
                let headerPairs = pairs(headers), queryPairs = pairs(query), factPairs = pairs(facts)
                headerPairs.withUnsafeBufferPointer { headerBuffer in
                    queryPairs.withUnsafeBufferPointer { queryBuffer in
                        factPairs.withUnsafeBufferPointer { factBuffer in
                            withBody(request.body) { body, bodyCount in
                                var input = sb_lua_request(
                                    method: at(method), method_len: method.count,
                                    path: at(path), path_len: path.count,
                                    raw_query: at(rawQuery), raw_query_len: rawQuery.count,
                                    headers: headerBuffer.baseAddress, header_count: headerBuffer.count,
                                    query: queryBuffer.baseAddress, query_count: queryBuffer.count,
                                    body: body, body_len: bodyCount, has_body: request.body == nil ? 0 : 1,
                                    facts: factBuffer.baseAddress, fact_count: factBuffer.count)
                                source.withUnsafeBufferPointer { sourceBytes in
                                    sourceBytes.withMemoryRebound(to: CChar.self) { sourceChars in
                                        sb_lua_run(sourceChars.baseAddress, sourceChars.count, &input, instructionLimit,
                                                   timeLimitMilliseconds, memory, &result)
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }

        let detail = withUnsafeBytes(of: result.detail) { raw in
            String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
        switch result.status {
        case SB_LUA_OK: return .success(result.number)
        case SB_LUA_BAD_RETURN: return .failure(.badReturn(type: detail))
        case SB_LUA_LIMIT: return .failure(.limit(detail))
        default: return .failure(.runtime(detail))
        }
    }

    /// Threads the functions run on: never an event loop, whose other connections would wait.
    private static let threads: NIOThreadPool = {
        let pool = NIOThreadPool(numberOfThreads: 2)
        pool.start()
        return pool
    }()

    /// `cost(of:)` on the sandbox threads. Pattern matching runs in C where the sandbox cannot
    /// look at the clock, so a call may overrun its time limit: the request then gets a limit
    /// failure once twice the limit has passed, whatever the thread is still doing.
    func costOffTheEventLoops(of request: Request) async -> Result<Double, Failure> {
        let loop = MultiThreadedEventLoopGroup.singleton.any()
        let promise = loop.makePromise(of: Result<Double, Failure>.self)
        let function = self
        Self.threads.submit { state in
            promise.succeed(state == .active ? function.cost(of: request) : .failure(.limit("sandbox unavailable")))
        }
        if timeLimitMilliseconds > 0 {
            // Completing twice is ignored: whichever comes first answers.
            loop.scheduleTask(in: .milliseconds(Int64(2 * timeLimitMilliseconds))) {
                promise.succeed(.failure(.limit("time limit exceeded")))
            }
        }
        return (try? await promise.futureResult.get()) ?? .failure(.limit("sandbox unavailable"))
    }

    private func withBody<R>(_ body: [UInt8]?, _ run: (UnsafePointer<CChar>?, Int) -> R) -> R {
        guard let body else { return run(nil, 0) }
        return body.withUnsafeBufferPointer { bytes in
            bytes.withMemoryRebound(to: CChar.self) { run($0.baseAddress, $0.count) }
        }
    }
}
