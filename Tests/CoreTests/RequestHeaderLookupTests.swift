import NIOHTTP1
import Testing
@testable import Core

/// `ProxyRequestContext.header(_:)` reads a header as Kong's `kong.request.get_header` does.
struct RequestHeaderLookupTests {
    func context(_ headers: [(String, String)]) -> ProxyRequestContext {
        ProxyRequestContext(requestID: "r", method: .GET, rawPath: "/", rawQuery: nil, headers: HTTPHeaders(headers),
                            clientAddress: "127.0.0.1", isTLS: false)
    }

    @Test func caseAndDashesAgainstUnderscoresDoNotMatter() {
        let c = context([("X-Model", "first"), ("x-model", "second"), ("X_Tenant", "t"), ("Accept", "*/*")])
        #expect(c.header("x-model") == "first", "the first occurrence")
        #expect(c.header("X_MODEL") == "first")
        #expect(c.header("x-tenant") == "t", "a header sent with an underscore")
        #expect(c.header("accept") == "*/*")
        #expect(c.header("x-mode") == nil)
        #expect(c.header("x-models") == nil)
        #expect(c.header("") == nil)
    }

    @Test func onlyDashAndUnderscoreAreFolded() {
        #expect(HeaderName.sameForKong("a-b", "A_B"))
        #expect(!HeaderName.sameForKong("a.b", "a_b"))
        #expect(!HeaderName.sameForKong("é", "É"), "ASCII case only, as nginx lower-cases")
        #expect(HeaderName.sameForKong("", ""))
    }
}
