@testable import Plugins
import Testing

/// requestPrompt's Lua cost function (spec ai-plugins §5.3) through the Swift wrapper: results,
/// failures, limits that user pcalls cannot swallow, the sandbox's contents and `kong.request`.
struct RequestPromptFunctionTests {
    static let chatBody = #"""
        {"model":"gpt-4o","messages":[{"role":"system","content":"Be \"terse\"\n"},
        {"role":"user","content":"caf\u00e9 \ud83d\ude00 \/"},{"role":"assistant","content":null}],
        "temperature":-1.5e-1,"stream":false}
        """#

    static let request = RequestPromptFunction.Request(
        method: "POST", path: "/v1/chat/completions", rawQuery: "a=1&b=x%20y&a=2",
        headers: [("content-type", "application/json"), ("x-prompt-count", "42"),
                  ("accept", "a"), ("accept", "b"), ("accept", "c")],
        query: [("a", "1"), ("b", "x y"), ("a", "2")],
        body: Array(chatBody.utf8))

    func cost(_ source: String, _ request: RequestPromptFunction.Request = request,
              instructions: Int = 1_000_000, milliseconds: Int = 100) -> Result<Double, RequestPromptFunction.Failure> {
        RequestPromptFunction(source: source, instructionLimit: instructions, timeLimitMilliseconds: milliseconds)
            .cost(of: request)
    }

    /// The message of a failure, or nil.
    func failureMessage(_ result: Result<Double, RequestPromptFunction.Failure>) -> String? {
        switch result {
        case .success: nil
        case .failure(.badReturn(let type)): type
        case .failure(.runtime(let message)), .failure(.limit(let message)): message
        }
    }

    // MARK: The rest of the PDK a cost function may read

    /// `kong.client`, `kong.router`, `kong.request`'s host/scheme/port, `ngx.now/time`, `ngx.req`
    /// and LuaJIT's `bit`, as Kong's handler sandbox offers them.
    @Test func theSandboxOffersTheClientTheRouterNgxAndBit() {
        var request = Self.request
        request.facts = [("host", "api.example.com"), ("scheme", "https"), ("port", "8443"),
                         ("forwarded_host", "public.example"), ("forwarded_scheme", "https"), ("forwarded_port", "443"),
                         ("client_ip", "10.0.0.2"), ("forwarded_ip", "203.0.113.9"),
                         ("consumer.id", "c-1"), ("consumer.username", "alice"), ("credential.id", "k-1"),
                         ("route.id", "r-1"), ("route.name", "chat"), ("service.id", "s-1")]
        func value(_ expression: String) -> Double? { try? cost("return \(expression)", request).get() }
        #expect(value("kong.request.get_host() == 'api.example.com' and kong.request.get_port()") == 8443)
        #expect(value("kong.request.get_forwarded_port()") == 443)
        #expect(value("(kong.request.get_scheme() == 'https' and kong.client.get_protocol() == 'https') and 1 or 0") == 1)
        #expect(value("(kong.client.get_ip() == '10.0.0.2' and kong.client.get_forwarded_ip() == '203.0.113.9') and 1 or 0") == 1)
        #expect(value("(kong.client.get_consumer().username == 'alice' and kong.client.get_consumer().custom_id == nil) and 1 or 0") == 1)
        #expect(value("(kong.client.get_credential().id == 'k-1' and kong.client.get_credential().consumer.id == 'c-1') and 1 or 0") == 1)
        #expect(value("(kong.router.get_route().name == 'chat' and kong.router.get_service().name == nil) and 1 or 0") == 1)
        #expect(value("ngx.now() - ngx.time() < 1 and ngx.time() > 1700000000 and 1 or 0") == 1)
        #expect(value("#ngx.req.get_headers().accept + (ngx.req.get_method() == 'POST' and 10 or 0)") == 13)
        #expect(value("ngx.req.get_uri_args().b == 'x y' and #ngx.req.get_body_data() or 0") == Double(Self.chatBody.utf8.count))
        #expect(value("bit.band(0xff, 0x0f) + bit.bor(1, 2) + bit.bxor(3, 1)") == 20, "15 + 3 + 2")
        #expect(value("bit.lshift(1, 31)") == -2147483648, "32-bit signed, as LuaJIT")
        #expect(value("bit.rshift(-1, 28) + bit.arshift(-16, 2) + bit.bnot(0) + bit.tobit(2^32 + 5)") == 15, "15 - 4 - 1 + 5")
        #expect(value("bit.tohex(255) == '000000ff' and bit.tohex(-1, -4) == 'FFFF' and 1 or 0") == 1)
        #expect(value("#bit.tohex(1, -2^31) + #bit.tohex(1, 2^31) + #bit.tohex(1, 100)") == 24, "at most 8 digits, never past the buffer")
        #expect(value("bit.tobit(1.5) + bit.tobit(2.5) + bit.tobit(-1.5)") == 2, "nearest, ties to even: 2 + 2 - 2")
        var noConsumer = request
        noConsumer.facts.removeAll { $0.0.hasPrefix("consumer.") }
        #expect((try? cost("return kong.client.get_credential().id == 'k-1' and kong.client.get_credential().consumer == nil and 1 or 0",
                           noConsumer).get()) == 1, "a credential without a consumer is still a credential")
        // Without a consumer or route: nil, as Kong's.
        #expect((try? cost("return (kong.client.get_consumer() == nil and kong.router.get_route() == nil) and 1 or 0").get()) == 1)
        #expect(failureMessage(cost("kong.client.x = 1 return 1", request))?.contains("Cannot modify kong.client.x") == true)
        #expect(failureMessage(cost("bit.band = nil return 1", request))?.contains("Cannot modify bit.band") == true)
    }

    // MARK: Compiling

    @Test func aSyntaxErrorIsLuasMessage() {
        #expect(RequestPromptFunction.compileProblem("return (") == #"[string "return ("]:1: unexpected symbol near '<eof>'"#)
        #expect(RequestPromptFunction.compileProblem("local x = 1\nreturn x +") == #"[string "local x = 1..."]:2: unexpected symbol near '<eof>'"#)
        #expect(RequestPromptFunction.compileProblem("return 100") == nil)
    }

    @Test func binaryChunksAreRefused() {
        #expect(RequestPromptFunction.compileProblem("\u{1B}Lua\u{51}") == "attempt to load a binary chunk")
    }

    @Test func aSourceThatDoesNotCompileFailsAtRunTimeToo() {
        #expect(failureMessage(cost("return (")) == #"[string "return ("]:1: unexpected symbol near '<eof>'"#)
    }

    // MARK: Results

    @Test func aNumberIsTheCost() {
        #expect(cost("return 100") == .success(100))
        #expect(cost("return 2.5 * 2") == .success(5))
        #expect(cost("return 1, 'ignored'") == .success(1))
    }

    @Test(arguments: [("return \"x\"", "string"), ("return \"5\"", "string"), ("return nil", "nil"),
                      ("local x = 1", "nil"), ("return {}", "table"), ("return true", "boolean")])
    func anythingButANumberIsABadReturn(_ source: String, _ type: String) {
        #expect(cost(source) == .failure(.badReturn(type: type)))
    }

    @Test func errorsAreRuntimeFailures() {
        #expect(cost(#"error("boom")"#) == .failure(.runtime(#"[string "error("boom")"]:1: boom"#)))
        #expect(cost("error({})") == .failure(.runtime("(error object is a table value)")))
        #expect(cost("return nil + 1") == .failure(.runtime(#"[string "return nil + 1"]:1: attempt to perform arithmetic on a nil value"#)))
    }

    // MARK: Limits

    @Test func anEndlessLoopHitsTheInstructionLimit() {
        #expect(cost("while true do end") == .failure(.limit("instruction limit exceeded")))
    }

    @Test func pcallCannotSwallowALimit() {
        #expect(cost("pcall(function() while true do end end) return 1") == .failure(.limit("instruction limit exceeded")))
        #expect(cost("while true do pcall(function() while true do end end) end") == .failure(.limit("instruction limit exceeded")))
    }

    @Test func anEndlessLoopWithoutAnInstructionLimitHitsTheTimeLimit() {
        #expect(cost("while true do end", instructions: 0, milliseconds: 30) == .failure(.limit("time limit exceeded")))
    }

    @Test func aMemoryBombHitsALimit() {
        // One interned string repeated: whichever limit comes first (slow builds reach time first).
        let bomb = cost(#"local t={} for i=1,1e9 do t[i]=string.rep("x",1000) end"#)
        guard case .failure(.limit) = bomb else { Issue.record("not a limit: \(bomb)"); return }
        // Distinct strings, no instruction or tight time limit: memory it is, pcall or not.
        let distinct = #"local t={} for i=1,1e9 do t[i]=string.rep("x",1000)..i end"#
        #expect(cost(distinct, instructions: 0, milliseconds: 10_000) == .failure(.limit("memory limit exceeded")))
        #expect(cost("pcall(function() \(distinct) end) return 1", instructions: 0, milliseconds: 10_000)
                == .failure(.limit("memory limit exceeded")))
        #expect(cost(#"return #string.rep("x", 2^30)"#) == .failure(.limit("memory limit exceeded")))
    }

    @Test func theBodyDoesNotEatTheScriptsMemory() {
        var big = Self.request
        big.body = Array(("{\"messages\":[{\"content\":\"" + String(repeating: "x", count: 20 << 20) + "\"}]}").utf8)
        // 40 MiB of copies against a 16 MiB limit: only the body allowance lets this through.
        #expect(cost("return #kong.request.get_raw_body() + #kong.request.get_body().messages[1].content", big,
                     milliseconds: 10_000) == .success(Double(big.body!.count + (20 << 20))))
    }

    @Test func cLoopsOverASparseTableAreCharged() {
        // Explicit keys stay in the hash part, where #t follows 1, 2, 4, ...: 2^29 for 30 entries.
        let sparse = "local t = {" + (0...29).map { "[\(1 << $0)]=1," }.joined() + "} "
        #expect(cost(sparse + "return #t") == .success(Double(1 << 29)))
        #expect(cost(sparse + "table.insert(t, 1, 0) return 1") == .failure(.limit("instruction limit exceeded")))
        #expect(cost(sparse + "table.remove(t, 1) return 1") == .failure(.limit("instruction limit exceeded")))
    }

    /// Matching runs in C, where no hook fires: each call is charged by its subject's size.
    @Test func matchingBigSubjectsIsCharged() {
        #expect(cost("local s = string.rep('a', 1e6) for i = 1, 100 do s:find('b') end return 1")
                == .failure(.limit("instruction limit exceeded")))
        #expect(cost("local s = string.rep('a', 1e3) for i = 1, 100 do s:find('b') end return 1") == .success(1))
    }

    @Test func patternsDeepEnoughToOverflowTheStackAreRefused() {
        let message = failureMessage(cost("local s = string.rep('a', 1e5) return #s:match(string.rep('a?', 1e5))"))
        #expect(message?.hasSuffix("pattern too complex") == true)
    }

    // MARK: kong.request

    @Test func theRawBodyIsTheRequestBody() {
        #expect(cost("return #kong.request.get_raw_body()") == .success(Double(Self.chatBody.utf8.count)))
        var bodiless = Self.request
        bodiless.body = nil
        #expect(cost("return kong.request.get_raw_body() == '' and 1 or 0", bodiless) == .success(1))
    }

    @Test func aJSONBodyIsDecoded() {
        #expect(cost("return #kong.request.get_body().messages") == .success(3))
        let checks = """
            local b = kong.request.get_body() local m = b.messages
            return (m[1].content == 'Be "terse"\\n' and m[2].content == 'caf\\195\\169 \\240\\159\\152\\128 /'
              and m[3].content == ngx.null and b.temperature == -0.15 and b.stream == false) and 1 or 0
            """
        #expect(cost(checks) == .success(1))
    }

    @Test(arguments: ["", "[1,]", #"{"a":}"#, #""str""#, "42", "[1] x", #"{"a":"\ud800"}"#, "[01]",
                      String(repeating: "[", count: 300) + String(repeating: "]", count: 300)])
    func aBodyThatIsNotAJSONObjectOrArrayIsNoBody(_ body: String) {
        var request = Self.request
        request.body = Array(body.utf8)
        #expect(cost("local b, err = kong.request.get_body() return b == nil and err == 'invalid json body' and 1 or 0", request)
                == .success(1))
    }

    @Test func getBodyFollowsTheContentType() {
        var untyped = Self.request
        untyped.headers = []
        #expect(cost("local b, err = kong.request.get_body() return err == 'missing content type' and 1 or 0", untyped) == .success(1))
        #expect(cost("return #kong.request.get_body('application/json').messages", untyped) == .success(3))
        #expect(cost("local b, err = kong.request.get_body('text/plain') return err == \"unsupported content type 'text/plain'\" and 1 or 0")
                == .success(1))
    }

    @Test func headersAreCaseInsensitive() {
        #expect(cost("return tonumber(kong.request.get_header('X-Prompt-Count'))") == .success(42))
        #expect(cost("return tonumber(kong.request.get_header('x_prompt_count'))") == .success(42))
        #expect(cost("return kong.request.get_header('missing') == nil and 1 or 0") == .success(1))
        #expect(cost("return kong.request.get_header('accept') == 'a' and 1 or 0") == .success(1), "the first of repeated values")
    }

    @Test func repeatedHeadersAndQueryArgumentsAreArrays() {
        let headers = "local a = kong.request.get_headers().accept return (#a == 3 and a[1] == 'a' and a[3] == 'c') and 1 or 0"
        #expect(cost(headers) == .success(1))
        #expect(cost("return kong.request.get_headers()['X-PROMPT-COUNT'] == '42' and 1 or 0") == .success(1))
        let query = """
            local q = kong.request.get_query()
            return (#q.a == 2 and q.a[2] == '2' and q.b == 'x y' and kong.request.get_query_arg('a') == '1') and 1 or 0
            """
        #expect(cost(query) == .success(1))
    }

    @Test func methodPathAndQueryAreTheRequests() {
        let source = """
            local r = kong.request
            return (r.get_method() == 'POST' and r.get_path() == '/v1/chat/completions'
              and r.get_raw_query() == 'a=1&b=x%20y&a=2') and 1 or 0
            """
        #expect(cost(source) == .success(1))
    }

    @Test func kongIsReadOnly() {
        #expect(cost("kong.request.x = 1 return 1")
                == .failure(.runtime(#"[string "kong.request.x = 1 return 1"]:1: Cannot modify kong.request.x. Protected by the sandbox."#)))
        #expect(failureMessage(cost("kong.x = 1 return 1"))?.hasSuffix("Cannot modify kong.x. Protected by the sandbox.") == true)
        #expect(cost("kong.log.err('x') kong.log.info('x') kong.log.debug('x') return 7") == .success(7), "logging is a no-op")
    }

    // MARK: The sandbox

    @Test func dangerousFunctionsAreAbsent() {
        let source = """
            return os.execute == nil and io == nil and require == nil and load == nil and loadstring == nil
              and setfenv == nil and string.dump == nil and ("").dump == nil and 1 or 0
            """
        #expect(cost(source) == .success(1))
        let more = """
            return (getfenv == nil and setmetatable == nil and getmetatable == nil and rawset == nil and debug == nil
              and collectgarbage == nil and package == nil and dofile == nil and os.exit == nil and os.getenv == nil) and 1 or 0
            """
        #expect(cost(more) == .success(1))
        // gfind: Debian's Lua keeps it as an alias of the unguarded gmatch. os.date: shared static buffers.
        #expect(cost(#"return (string.gfind == nil and ("").gfind == nil and os.date == nil) and 1 or 0"#) == .success(1))
    }

    @Test func theStandardSubsetIsThere() {
        let source = """
            return (pcall and xpcall and select and unpack and rawget and _VERSION == 'Lua 5.1' and string.format
              and table.concat and math.floor and os.time and ('abc'):upper() == 'ABC') and 1 or 0
            """
        #expect(cost(source) == .success(1))
    }

    @Test func eachCallStartsFromAFreshState() {
        let function = RequestPromptFunction(source: "counter = (counter or 0) + 1 return counter")
        #expect(function.cost(of: Self.request) == .success(1))
        #expect(function.cost(of: Self.request) == .success(1))
    }
}
